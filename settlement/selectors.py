"""Settlement reads: which statements a caller may see, and their JSON shape."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet

from dispatch.models import FspSite
from dispatch.rules import iso
from settlement.models import Statement
from settlement.services import Month
from vtn.errors import BadRequest, NotFound


def visible_statements(*, client_id: str, is_operator: bool) -> QuerySet[Statement]:
    """Operators see every statement; an FSP site's VEN sees its own FSP's statements once
    issued (drafts are the operator's working copies)."""
    rows = Statement.objects.select_related("contract__operator", "contract__fsp",
                                            "contract__product")
    if is_operator:
        return rows
    site = FspSite.objects.filter(ven__client_id=client_id).select_related("fsp").first()
    if site is None:
        return rows.none()
    return rows.filter(contract__fsp=site.fsp).exclude(status=Statement.Status.DRAFT)


@dataclass(frozen=True)
class StatementFilters:
    month: str = ""  # YYYY-MM (Europe/London)
    operator: str = ""
    fsp: str = ""
    contract: str = ""
    status: str = ""


def filter_statements(rows: QuerySet[Statement],
                      filters: StatementFilters) -> QuerySet[Statement]:
    """``rows`` narrowed by ``filters``; a bad month or status is a BadRequest."""
    if filters.month:
        rows = rows.filter(month=Month.parse(filters.month).first_day)
    if filters.status:
        if filters.status not in Statement.Status.values:
            raise BadRequest(f"status must be one of {', '.join(Statement.Status.values)}")
        rows = rows.filter(status=filters.status)
    if filters.operator:
        rows = rows.filter(contract__operator__code=filters.operator.upper())
    if filters.fsp:
        rows = rows.filter(contract__fsp__identifier=filters.fsp)
    if filters.contract:
        rows = rows.filter(contract__identifier=filters.contract)
    return rows.prefetch_related("disputes")


def find_statement(statement_id: str, *, client_id: str, is_operator: bool) -> Statement:
    rows = visible_statements(client_id=client_id, is_operator=is_operator)
    found = rows.filter(pk=int(statement_id)).first() if statement_id.isdigit() else None
    if found is None:
        raise NotFound(f"no statement {statement_id}")
    return found


def statement_as_dict(row: Statement, *, document: bool = False) -> dict:
    body = {
        "id": row.pk, "operator": row.contract.operator.code,
        "contract": row.contract.identifier, "fsp": row.contract.fsp.identifier,
        "product": row.contract.product.code, "month": f"{row.month:%Y-%m}",
        "version": row.version, "status": row.status, "netGbp": str(row.net_gbp),
        "heldLines": row.held_lines, "sha256": row.sha256,
        "computedAt": iso(row.computed_at),
        "issuedAt": iso(row.issued_at) if row.issued_at else None,
        "answeredAt": iso(row.answered_at) if row.answered_at else None,
        "finalisedAt": iso(row.finalised_at) if row.finalised_at else None,
        "disputes": [{"reason": d.reason, "lines": d.lines, "raisedAt": iso(d.raised_at),
                      "resolution": d.resolution or None,
                      "resolvedAt": iso(d.resolved_at) if d.resolved_at else None}
                     for d in row.disputes.all()],
    }
    if document:
        body["document"] = row.document
    return body
