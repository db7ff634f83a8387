"""The operator API's list filters (django-filter FilterSets over the selectors' querysets)."""

from __future__ import annotations

import django_filters as df
from django.db.models import QuerySet

from dispatch import readings, selectors
from dispatch.models import CommsState, DispatchInstruction, FspSite, MeterReading, ReportIntake
from dispatch.rules import STATUSES
from vtn.api.query_filters import AwareDateTimeFilter, upper


class DispatchFilterSet(df.FilterSet):
    operator = df.CharFilter(field_name="operator__code", method=upper)
    fsp = df.CharFilter(field_name="unit__fsp__identifier")
    unit = df.CharFilter(field_name="unit__reference")
    status = df.ChoiceFilter(choices=[(s, s) for s in STATUSES])
    product = df.CharFilter(field_name="contract__product__code", method=upper)
    # the service period overlaps [from, to); "from" is a Python keyword
    locals()["from"] = AwareDateTimeFilter(field_name="service_end", lookup_expr="gt")
    to = AwareDateTimeFilter(field_name="service_start", lookup_expr="lt")

    class Meta:
        model = DispatchInstruction
        fields: list[str] = []


class SiteFilterSet(df.FilterSet):
    operator = df.CharFilter(field_name="fsp__operator__code", method=upper)
    fsp = df.CharFilter(field_name="fsp__identifier")
    state = df.ChoiceFilter(field_name="comms_state", choices=CommsState.choices)

    class Meta:
        model = FspSite
        fields: list[str] = []


class MeterReadingFilterSet(df.FilterSet):
    operator = df.CharFilter(field_name="unit__fsp__operator__code", method=upper)
    fsp = df.CharFilter(field_name="unit__fsp__identifier")
    unit = df.CharFilter(method="filter_unit", help_text="unit reference, or FSP/REF")
    type = df.ChoiceFilter(field_name="reading_type",
                           choices=[(t, t) for t in readings.READING_TYPES])
    locals()["from"] = AwareDateTimeFilter(field_name="start", lookup_expr="gte")
    to = AwareDateTimeFilter(field_name="start", lookup_expr="lt")
    history = df.ChoiceFilter(choices=[("true", "true"), ("false", "false")],
                              method="filter_history")

    class Meta:
        model = MeterReading
        fields: list[str] = []

    def filter_unit(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        data = self.form.cleaned_data
        return queryset.filter(unit=selectors.find_unit(
            value, fsp=data.get("fsp") or None, operator=data.get("operator") or None))

    def filter_history(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset  # applied in filter_queryset, also when absent

    def filter_queryset(self, queryset: QuerySet) -> QuerySet:
        queryset = super().filter_queryset(queryset)
        if self.form.cleaned_data.get("history") != "true":
            queryset = queryset.filter(superseded_at__isnull=True)  # current versions
        return queryset


class ReportIntakeFilterSet(df.FilterSet):
    operator = df.CharFilter(field_name="site__fsp__operator__code", method=upper)
    fsp = df.CharFilter(field_name="site__fsp__identifier")
    kind = df.ChoiceFilter(choices=ReportIntake.Kind.choices)
    report = df.CharFilter(field_name="report_id")

    class Meta:
        model = ReportIntake
        fields: list[str] = []
