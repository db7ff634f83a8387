"""Settlement reads: which statements a caller may see. Bodies are rendered by
``settlement.api.serializers.StatementSerializer``; lists are narrowed by
``settlement.filters.StatementFilterSet``."""

from __future__ import annotations

from django.db.models import QuerySet

from settlement import inputs
from settlement.models import Statement
from vtn.errors import NotFound


def visible_statements(*, client_id: str, is_operator: bool) -> QuerySet[Statement]:
    """Operators see every statement; an FSP site's VEN sees its own FSP's statements once
    issued (drafts are the operator's working copies)."""
    rows = Statement.objects.select_related("contract__operator", "contract__fsp",
                                            "contract__product")
    if is_operator:
        return rows
    fsp = inputs.fsp_of_client(client_id)
    if fsp is None:
        return rows.none()
    return rows.filter(contract__fsp=fsp).exclude(status=Statement.Status.DRAFT)


def find_statement(statement_id: str, *, client_id: str, is_operator: bool) -> Statement:
    rows = visible_statements(client_id=client_id, is_operator=is_operator)
    found = rows.filter(pk=int(statement_id)).first() if statement_id.isdigit() else None
    if found is None:
        raise NotFound(f"no statement {statement_id}")
    return found
