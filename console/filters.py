"""The filters of the console's lists (django-filter FilterSets over the selectors'
querysets). They only narrow what a list shows; paging is ``console.views.common.paged``.
Statements use ``settlement.filters.StatementFilterSet``, the filter the settlement API
uses too."""

from __future__ import annotations

import django_filters as df
from django.db.models import QuerySet

from console.forms import UtcDateTimeField
from dispatch import registry, rules
from dispatch.models import (
    AuditEntry,
    CommsState,
    Contract,
    DispatchInstruction,
    DispatchRevision,
    DispatchUnit,
    Fsp,
    FspSite,
)

# Who the conformance sandbox's scenarios issue dispatches as (conformance.scenarios).
CONFORMANCE_ISSUER = "conformance"
OPERATORS = [(code, code) for code in registry.NETWORK_OPERATORS]
ANY = "any"


class UtcDateTimeFilter(df.DateTimeFilter):
    field_class = UtcDateTimeField

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("help_text", "24-hour, YYYY-MM-DD HH:MM")  # the label says UTC
        super().__init__(*args, **kwargs)


def _upper(queryset: QuerySet, name: str, value: str) -> QuerySet:
    return queryset.filter(**{name: value.upper()})


class DispatchFilter(df.FilterSet):
    operator = df.ChoiceFilter(field_name="operator__code", choices=OPERATORS,
                               empty_label=ANY, label="Operator")
    fsp = df.CharFilter(field_name="unit__fsp__identifier", label="FSP")
    unit = df.CharFilter(field_name="unit__reference", label="Unit")
    product = df.CharFilter(field_name="contract__product__code", method=_upper,
                            label="Product")
    status = df.ChoiceFilter(choices=[(s, s.replace("-", " ")) for s in rules.STATUSES],
                             empty_label=ANY, label="Status")
    active_from = UtcDateTimeFilter(field_name="service_end", lookup_expr="gt",
                                    label="Active after")
    active_until = UtcDateTimeFilter(field_name="service_start", lookup_expr="lt",
                                     label="Active before")
    conformance = df.ChoiceFilter(
        label="Conformance sandbox dispatches", method="_conformance", empty_label="shown",
        choices=[("hide", "hidden"), ("only", "only these")])

    class Meta:
        model = DispatchInstruction
        fields: list[str] = []

    def _conformance(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        """Dispatches whose first revision the sandbox issued: hidden, or only these."""
        theirs = DispatchRevision.objects.filter(
            number=1, issued_by=CONFORMANCE_ISSUER).values("instruction_id")
        return queryset.exclude(pk__in=theirs) if value == "hide" else \
            queryset.filter(pk__in=theirs)


class AuditFilter(df.FilterSet):
    operator = df.CharFilter(field_name="operator_code", method=_upper, label="Operator")
    dispatch_ref = df.CharFilter(label="Dispatch reference")
    kind = df.ChoiceFilter(choices=[(k, k.replace("_", " ").replace("ack ", "acknowledgement ")
                                     ) for k in AuditEntry.Kind.values], empty_label=ANY,
                           label="Kind")
    since = UtcDateTimeFilter(field_name="time", lookup_expr="gte", label="From")
    until = UtcDateTimeFilter(field_name="time", lookup_expr="lt", label="Until")

    class Meta:
        model = AuditEntry
        fields: list[str] = []


def _registry_filter(model, operator: str, fsp: str, comms: str | None) -> type:
    """A FilterSet for one of the registry's lists; all four read the same query
    parameters (operator, FSP, and the comms state where the list has one), so one form
    narrows the whole page."""
    fields = {
        "operator": df.ChoiceFilter(field_name=operator, choices=OPERATORS, empty_label=ANY,
                                    label="Operator"),
        "fsp": df.CharFilter(field_name=fsp, label="FSP"),
    }
    if comms:
        fields["comms"] = df.ChoiceFilter(
            field_name=comms, label="Comms state (sites, units)", empty_label=ANY,
            choices=[(s, s.replace("_", " ")) for s in CommsState.values])
    meta = type("Meta", (), {"model": model, "fields": []})
    return type(f"{model.__name__}Filter", (df.FilterSet,), {**fields, "Meta": meta})


FspFilter = _registry_filter(Fsp, "operator__code", "identifier", None)
SiteFilter = _registry_filter(FspSite, "fsp__operator__code", "fsp__identifier", "comms_state")
UnitFilter = _registry_filter(DispatchUnit, "fsp__operator__code", "fsp__identifier",
                              "comms_state")
ContractFilter = _registry_filter(Contract, "operator__code", "fsp__identifier", None)
