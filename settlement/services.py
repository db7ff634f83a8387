"""Settlement writes: compute a contract's monthly statement (new draft, refreshed draft,
or a new version when an issued one's inputs changed), the statement lifecycle, and the
settlement of single dispatches. Every function is idempotent and safe to run twice at
once: the contract row is locked while its statements are written, and the unique
constraints on (contract, month, version) and on the one draft back that up."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from django.db import connections, transaction
from django.utils import timezone

from settlement import inputs, statement
from settlement.calc.periods import london_day
from settlement.inputs import Contract, DispatchInstruction
from settlement.models import DispatchSettlement, Dispute, Statement, WrittenDocument
from vtn.errors import BadRequest, Conflict, Forbidden
from vtn.memory import collection_paused

Status = Statement.Status
OPEN = (Status.ISSUED, Status.ACCEPTED, Status.DISPUTED)


@dataclass(frozen=True)
class Month:
    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Month:
        try:
            year, month = (int(part) for part in text.split("-"))
            date(year, month, 1)
        except ValueError as exc:
            raise BadRequest(f"month must be YYYY-MM, not {text!r}") from exc
        return cls(year, month)

    @classmethod
    def of(cls, instant: datetime) -> Month:
        day = london_day(instant)
        return cls(day.year, day.month)

    @property
    def first_day(self) -> date:
        return date(self.year, self.month, 1)

    def bounds(self) -> tuple[datetime, datetime]:
        return statement.month_bounds(self.year, self.month)

    def previous(self) -> Month:
        return Month(self.year - (self.month == 1), (self.month - 2) % 12 + 1)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


def compute_document(contract: Contract, month: Month, version: int) -> dict:
    """The statement document of ``contract`` for ``month`` from the current inputs."""
    terms = inputs.terms_of(contract)
    first, after = month.bounds()
    dispatches = inputs.month_dispatches(contract, first, after)
    # Streamed: one batch of units' readings in memory at a time.
    parts = (statement.settle_units(terms=terms, year=month.year, month=month.month,
                                    units=units, dispatches=dispatches, dispatched_days=days)
             for units, days in inputs.unit_batches(contract, terms, first, after))
    return statement.assemble_statement(terms=terms, year=month.year, month=month.month,
                                        version=version, parts=parts, dispatches=dispatches)


def _content(document: dict) -> str:
    """The digest of what a statement says, whatever its version number."""
    return statement.document_sha256({k: v for k, v in document.items() if k != "version"})


def settle_month(*, contract: Contract, month: Month,
                 now: datetime | None = None) -> Statement:
    """Compute the contract's statement for the month and keep it: the first time as
    draft version 1; a draft is refreshed in place; when the latest version is issued (or
    later) and the inputs now give a different statement, a new draft version is added.
    Running it again with the same inputs changes nothing."""
    now = now or timezone.now()
    # A month of a large contract builds some millions of objects (its lines, their
    # figures), nearly all kept until the statement is written: the cyclic collector
    # would walk them again and again and find nothing to free.
    with collection_paused(), transaction.atomic():
        inputs.lock_contract(contract)
        latest = Statement.objects.filter(contract=contract, month=month.first_day).order_by(
            "-version").first()
        if latest is not None and latest.status == Status.DRAFT:
            written = _written(compute_document(contract, month, latest.version))
            if written.sha256 != latest.sha256:
                _fill(latest, written, now)
                _save(latest)
            return latest
        version = latest.version + 1 if latest else 1
        document = compute_document(contract, month, version)
        if latest is not None and _content(document) == _content(latest.document):
            return latest
        row = Statement(contract=contract, month=month.first_day, version=version)
        _fill(row, _written(document), now)
        _save(row)
        return row


def settle_month_once(*, contract: Contract, month: Month, requested_at: datetime | None = None,
                      now: datetime | None = None) -> tuple[Statement, bool]:
    """:func:`settle_month`, unless the contract's statement for the month was computed at
    or after ``requested_at``: that one is the answer, not computed again (a task handed
    out twice, or retried). Returns the statement and whether it was computed now."""
    with transaction.atomic():
        inputs.lock_contract(contract)  # a second run waits here, then finds the first's
        if requested_at is not None:
            latest = Statement.objects.filter(contract=contract, month=month.first_day,
                                              computed_at__gte=requested_at).order_by(
                "-version").first()
            if latest is not None:
                return latest, False
        return settle_month(contract=contract, month=month, now=now), True


@dataclass(frozen=True)
class _Written:
    """A computed statement document with its canonical JSON written once: the digest is
    taken from it and the row stores it as it is."""

    document: WrittenDocument
    sha256: str


def _written(document: dict) -> _Written:
    canonical = statement.canonical_bytes(document)
    return _Written(WrittenDocument(document, canonical.decode()),
                    hashlib.sha256(canonical).hexdigest())


def _fill(row: Statement, written: _Written, now: datetime) -> None:
    row.document = written.document
    row.sha256 = written.sha256
    row.net_gbp = Decimal(written.document["totals"]["netGbp"])
    row.held_lines = written.document["totals"]["heldLines"]
    row.computed_at = now


def _save(row: Statement) -> None:
    """Save a computed statement. On PostgreSQL its values go to the server as bound
    parameters (psycopg's server-side binding) instead of being written into the SQL
    text as Django's cursors do: a document is a megabyte or two of JSON, which the
    server would read through once more as a literal, about 15 ms of its time each."""
    connection = connections[Statement.objects.db]
    if connection.vendor != "postgresql":
        row.save()
        return
    from django.db.backends.postgresql.base import ServerBindingCursor

    connection.ensure_connection()
    driver = connection.connection
    client_binding, driver.cursor_factory = driver.cursor_factory, ServerBindingCursor
    try:
        row.save()
    finally:
        driver.cursor_factory = client_binding


def _locked(statement_id: int) -> Statement:
    return Statement.objects.select_for_update().select_related("contract__fsp").get(
        pk=statement_id)


def _require(row: Statement, *allowed: str, action: str) -> None:
    if row.status not in allowed:
        raise Conflict(f"statement {row.pk} is {row.status}; it cannot be {action}")


@transaction.atomic
def issue(*, statement_id: int, now: datetime | None = None) -> Statement:
    """Draft -> issued; the earlier versions still open become superseded."""
    row = _locked(statement_id)
    _require(row, Status.DRAFT, action="issued")
    now = now or timezone.now()
    Statement.objects.filter(contract=row.contract, month=row.month, status__in=OPEN).exclude(
        pk=row.pk).update(status=Status.SUPERSEDED)
    row.status, row.issued_at = Status.ISSUED, now
    row.save(update_fields=["status", "issued_at"])
    return row


def _check_answerer(client_id: str) -> None:
    """A site's gateway (the VEN client of an FSP site) never answers a statement; the
    FSP's commercial back office does (the API and the console check its role)."""
    if inputs.fsp_of_client(client_id) is not None:
        raise Forbidden("A site's gateway cannot answer statements; the FSP's commercial "
                        "back office does.")


@transaction.atomic
def accept(*, statement_id: int, client_id: str, now: datetime | None = None) -> Statement:
    """Issued -> accepted by ``client_id`` (the FSP's commercial back office)."""
    _check_answerer(client_id)
    row = _locked(statement_id)
    _require(row, Status.ISSUED, action="accepted")
    row.status, row.answered_at, row.answered_by = Status.ACCEPTED, now or timezone.now(), \
        client_id
    row.save(update_fields=["status", "answered_at", "answered_by"])
    return row


@transaction.atomic
def dispute(*, statement_id: int, client_id: str, reason: str, lines: list[dict],
            now: datetime | None = None) -> Dispute:
    """Issued -> disputed, with a reason and optionally the lines in question."""
    _check_answerer(client_id)
    row = _locked(statement_id)
    _require(row, Status.ISSUED, action="disputed")
    if not reason.strip():
        raise BadRequest("a dispute needs a reason")
    numbers = {line["line"] for line in row.document["lines"]}
    unknown = sorted(item["line"] for item in lines if item["line"] not in numbers)
    if unknown:
        raise BadRequest(f"the statement has no lines {', '.join(map(str, unknown))}")
    now = now or timezone.now()
    row.status, row.answered_at, row.answered_by = Status.DISPUTED, now, client_id
    row.save(update_fields=["status", "answered_at", "answered_by"])
    return Dispute.objects.create(statement=row, reason=reason, lines=lines,
                                  raised_by=client_id, raised_at=now)


@transaction.atomic
def resolve(*, statement_id: int, resolution: str, now: datetime | None = None) -> Statement:
    """The operator closes the disputes of a statement with a resolution; it may then be
    finalised as it stands, or superseded by issuing a corrected version."""
    row = _locked(statement_id)
    _require(row, Status.DISPUTED, action="resolved")
    if not resolution.strip():
        raise BadRequest("a resolution needs a text")
    row.disputes.filter(resolved_at__isnull=True).update(resolution=resolution,
                                                         resolved_at=now or timezone.now())
    return row


@transaction.atomic
def finalise(*, statement_id: int, now: datetime | None = None) -> Statement:
    """Accepted (or disputed with every dispute resolved) -> final."""
    row = _locked(statement_id)
    _require(row, Status.ACCEPTED, Status.DISPUTED, action="finalised")
    if row.disputes.filter(resolved_at__isnull=True).exists():
        raise Conflict(f"statement {row.pk} has unresolved disputes")
    row.status, row.finalised_at = Status.FINAL, now or timezone.now()
    row.save(update_fields=["status", "finalised_at"])
    return row


def save_dispatch_settlement(*, instruction: DispatchInstruction,
                             now: datetime | None = None) -> DispatchSettlement | None:
    """Settle one dispatch from the current inputs (kept as its latest settlement);
    None for a dispatch that never ran."""
    contract = instruction.contract
    terms = inputs.terms_of(contract)
    ordered = inputs.dispatch_input(instruction.reference, instruction.unit.reference,
                                    inputs.revisions_of(instruction))
    if ordered is None:
        return None
    first, after = Month.of(instruction.service_start).bounds()
    units, days = inputs.unit_inputs(contract, terms, first, after, only=ordered.unit)
    lines, _, _ = statement.dispatch_lines(
        terms, ordered, units[ordered.unit], dispatched_days=days[ordered.unit])
    held = any(line["kind"] == "held" for line in lines)
    net = sum((Decimal(line["netGbp"]) for line in lines if line["kind"] != "held"),
              Decimal("0.00"))  # real and reactive lines, emergency premiums included
    with transaction.atomic():
        row, _ = DispatchSettlement.objects.select_for_update().update_or_create(
            dispatch=instruction, defaults={
                "status": DispatchSettlement.Status.HELD if held else
                DispatchSettlement.Status.SETTLED,
                "lines": lines, "net_gbp": net, "sha256": statement.document_sha256(
                    {"lines": lines}), "computed_at": now or timezone.now()})
    return row
