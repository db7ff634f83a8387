"""Settlement reads: which statements a caller may see. Bodies are rendered by
``settlement.api.serializers.StatementSerializer``; lists are narrowed by
``settlement.filters.StatementFilterSet``."""

from __future__ import annotations

from django.db.models import QuerySet

from dispatch.fsp_office import Office
from dispatch.scope import Scope
from settlement import inputs
from settlement.models import Statement
from vtn.errors import NotFound


def visible_statements(*, client_id: str, is_operator: bool,
                       scope: Scope | None = None,
                       office: Office | None = None) -> QuerySet[Statement]:
    """Operators see the statements of the operators in their ``scope`` (None: every one);
    an FSP's back ``office`` sees those of its FSP registrations, and an FSP site's VEN
    those of its own FSP, once issued (drafts are the operator's working copies)."""
    rows = Statement.objects.select_related("contract__operator", "contract__fsp",
                                            "contract__product")
    if is_operator:
        return rows if scope is None else \
            rows.filter(contract__operator__code__in=scope.operators)
    if office is not None:
        return rows.filter(contract__fsp_id__in=office.fsp_ids).exclude(
            status=Statement.Status.DRAFT)
    fsp = inputs.fsp_of_client(client_id)
    if fsp is None:
        return rows.none()
    return rows.filter(contract__fsp=fsp).exclude(status=Statement.Status.DRAFT)


def find_statement(statement_id: str, *, client_id: str, is_operator: bool,
                   scope: Scope | None = None, office: Office | None = None) -> Statement:
    """A statement the caller may see; any other is not found (an operator's reach outside
    its scope is also written to the security log)."""
    rows = visible_statements(client_id=client_id, is_operator=is_operator, scope=scope,
                              office=office)
    found = rows.filter(pk=int(statement_id)).first() if statement_id.isdigit() else None
    if found is None and scope is not None and is_operator and statement_id.isdigit():
        hidden = Statement.objects.filter(pk=int(statement_id)).values_list(
            "contract__operator__code", flat=True).first()
        if hidden is not None:
            scope.refuse(f"statement {statement_id}", hidden)
    if found is None:
        raise NotFound(f"no statement {statement_id}")
    return found
