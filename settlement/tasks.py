"""Celery tasks of settlement (scheduled with django-celery-beat; editable in the admin).
Each is idempotent: running it twice, or on two workers at once, gives the same rows."""

from __future__ import annotations

from datetime import datetime, timedelta

from celery import current_task, shared_task
from django.utils import timezone

from settlement import inputs, services
from settlement.inputs import DispatchInstruction
from settlement.models import DispatchSettlement, Statement
from vtn import timing

SETTLE_DUE_DISPATCHES = "settlement.tasks.settle_due_dispatches"
SETTLE_DISPATCH = "settlement.tasks.settle_dispatch"
RECOMPUTE_DRAFTS = "settlement.tasks.recompute_drafts"
ISSUE_MONTHLY_STATEMENTS = "settlement.tasks.issue_monthly_statements"
SETTLE_STATEMENT = "settlement.tasks.settle_statement"
SETTLE_STATEMENTS = "settlement.tasks.settle_statements"


@shared_task(name=SETTLE_STATEMENT, acks_late=True, reject_on_worker_lost=True)
def settle_statement(contract_id: int, month: str, requested_at: str | None = None) -> dict:
    """One contract's statement for ``month`` (YYYY-MM), as :func:`services.settle_month`
    keeps it. Acknowledged only when done, so a task whose worker dies is run again by
    another; running it twice, or on two workers at once, keeps one statement: the
    contract is locked while it is written, and a statement computed after
    ``requested_at`` (when the task was sent) is taken as it is, not computed again."""
    row, computed = services.settle_month_once(
        contract=inputs.contract_by_id(contract_id), month=services.Month.parse(month),
        requested_at=timing.parse_datetime(requested_at) if requested_at else None)
    request = current_task.request if current_task else None
    return {"statement": row.pk, "contractId": contract_id, "month": month,
            "version": row.version, "status": row.status, "sha256": row.sha256,
            "computed": computed, "worker": getattr(request, "hostname", None) or ""}


@shared_task(name=SETTLE_STATEMENTS)
def settle_statements(month: str | None = None) -> list[str]:
    """Send one :func:`settle_statement` task per contract for ``month`` (default: the
    previous Europe/London month), for as many workers as there are to share; the ids of
    the tasks sent."""
    target = services.Month.parse(month) if month else services.Month.of(
        timezone.now()).previous()
    sent = timezone.now().isoformat()
    return [settle_statement.delay(contract.pk, str(target), sent).id
            for contract in sorted(inputs.contracts(), key=lambda row: row.pk)]


@shared_task(name=SETTLE_DISPATCH)
def settle_dispatch(dispatch_id: int) -> dict | None:
    instruction = inputs.dispatch_by_id(dispatch_id)
    return None if instruction is None else _settle(instruction)


def _settle(instruction: DispatchInstruction) -> dict | None:
    row = services.save_dispatch_settlement(instruction=instruction)
    return None if row is None else {"dispatch": instruction.reference, "status": row.status,
                                     "netGbp": str(row.net_gbp)}


def due_dispatches(now: datetime) -> list[DispatchInstruction]:
    """Dispatches whose meter-data window has closed and that are not settled, are held,
    or have meter readings newer than their settlement."""
    due = []
    candidates = inputs.ended_dispatches(now, settled_since=now - timedelta(days=35))
    for instruction in candidates:
        if instruction.service_end + inputs.meter_window(instruction.contract) > now:
            continue
        settled = getattr(instruction, "settlement", None)
        if settled is not None and settled.status == DispatchSettlement.Status.SETTLED and \
                not inputs.readings_arrived_after(instruction, settled.computed_at):
            continue
        due.append(instruction)
    return due


@shared_task(name=SETTLE_DUE_DISPATCHES)
def settle_due_dispatches() -> list[dict]:
    """Settle every dispatch whose meter-data window has closed (and re-settle held ones
    when data has arrived since)."""
    now = timezone.now()
    return [result for instruction in due_dispatches(now)
            if (result := _settle(instruction)) is not None]


@shared_task(name=RECOMPUTE_DRAFTS)
def recompute_drafts() -> list[dict]:
    """Nightly: recompute every statement not yet final, so late or corrected meter data
    refreshes drafts and yields new versions of issued statements."""
    open_rows = Statement.objects.exclude(status__in=[Statement.Status.FINAL,
                                                      Statement.Status.SUPERSEDED])
    pairs = sorted(set(open_rows.values_list("contract_id", "month")))
    results = []
    for contract_id, month in pairs:
        contract = inputs.contract_by_id(contract_id)
        row = services.settle_month(contract=contract,
                                    month=services.Month(month.year, month.month))
        results.append({"statement": row.pk, "version": row.version, "status": row.status})
    return results


@shared_task(name=ISSUE_MONTHLY_STATEMENTS)
def issue_monthly_statements(month: str | None = None) -> list[dict]:
    """Monthly: compute every contract's statement for the month (default: the previous
    Europe/London month) and issue the drafts."""
    target = services.Month.parse(month) if month else services.Month.of(
        timezone.now()).previous()
    results = []
    for contract in sorted(inputs.contracts(), key=lambda row: row.pk):
        row = services.settle_month(contract=contract, month=target)
        if row.status == Statement.Status.DRAFT:
            row = services.issue(statement_id=row.pk)
        results.append({"statement": row.pk, "contract": contract.identifier,
                        "version": row.version, "status": row.status})
    return results
