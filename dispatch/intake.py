"""Availability declarations and meter readings from a site's reports (docs/
gb-dispatch-profile.md sections 10 and 11). Called for every report written on an FSP's
standing AVAILABILITY or METERING event (routed here by ``dispatch.report_routing``); each
report becomes one :class:`ReportIntake` saying what was stored, what was a duplicate or
a correction, and what was rejected.

Nothing is merged silently: a reading for a period that already has a different
reading is rejected unless the interval is marked ``GB_CORRECTION``; a correction adds a
new version and marks the earlier one superseded (kept for the record and for
settlement's audit). A declaration of a window already declared supersedes the earlier
declaration the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from dispatch import audit, fsp_office, readings, report_signatures, rules
from dispatch.models import (
    AvailabilityDeclaration,
    DispatchUnit,
    FspSite,
    MeterReading,
    ReportIntake,
    SiteSigningKey,
)
from gbflex_profile import report_signing
from vtn.errors import BadRequest
from vtn.models import Report

# Readings of USAGE and DEMAND are measurements: none may end later than this after the
# moment they arrive. BASELINE readings (nominations) may be for the future.
CLOCK_TOLERANCE = timedelta(minutes=5)


def _reporting_site(report: Report) -> FspSite | None:
    return FspSite.objects.filter(ven__client_id=report.client_id).select_related(
        "fsp__operator").first()


def record_readings(report: Report, *, now: datetime | None = None) -> ReportIntake | None:
    """Record the meter readings of a report classified as metering
    (:mod:`dispatch.report_routing`); None when no FSP site's VEN sent it."""
    site = _reporting_site(report)
    if site is None:
        return None
    return _record_readings(site, report, now or timezone.now())


def record_declarations(report: Report, *,
                        now: datetime | None = None) -> ReportIntake | None:
    """Record the availability declarations of a report classified as availability
    (:mod:`dispatch.report_routing`); None when no FSP site's VEN sent it."""
    site = _reporting_site(report)
    if site is None:
        return None
    return _record_declarations(site, report, now or timezone.now())


@transaction.atomic
def _record_readings(site: FspSite, report: Report, now: datetime) -> ReportIntake:
    units = {unit.reference: unit for unit in
             DispatchUnit.objects.select_for_update().filter(site=site).order_by("pk")}
    parsed, rejected = readings.parse_readings(
        report_signing.content_resources(report.resources), report.payload_descriptors, units)
    intake = _new_intake(site, report, ReportIntake.Kind.METERING, now)
    outcome = take_in([(units[reading.unit].pk, reading) for reading in parsed],
                      intakes={unit.pk: intake.pk for unit in units.values()}, now=now)
    intake.stored, intake.duplicates = outcome.stored, outcome.duplicates
    intake.corrections = outcome.corrections
    _check_deferred_constraints()
    return _finish(intake, rejected + [rejection for _, rejection in outcome.rejected])


@dataclass
class Outcome:
    """What became of a batch of readings: how many were stored as new, were duplicates or
    corrections, and which were rejected (with their position in the batch)."""

    stored: int = 0
    duplicates: int = 0
    corrections: int = 0
    rejected: list[tuple[int, readings.Rejection]] = field(default_factory=list)


Key = tuple[int, str, datetime]


def take_in(items: Sequence[tuple[int, readings.Reading]], *, intakes: Mapping[int, int],
            now: datetime) -> Outcome:
    """Store readings (``(unit pk, reading)``) against what is held, the one rule for
    every way readings arrive: a reading for a period with no current reading is stored;
    the same reading again is a duplicate; a different one is rejected as a conflict
    unless it is a correction, which adds version n+1 and marks version n superseded.
    Measured readings ending in the future are rejected. ``intakes`` names the intake
    (pk) each unit's rows belong to. Run it in a transaction holding the units' rows
    locked; it reads what is held with one query per reading type and writes in bulk
    (per round: a batch that names one period twice is taken in order, the repeat in a
    second round)."""
    outcome = Outcome()
    pending = list(enumerate(items))
    while pending:
        seen: set[Key] = set()
        this_round: list[tuple[int, int, readings.Reading]] = []
        later: list[tuple[int, int, readings.Reading]] = []
        for position, (unit_pk, reading) in pending:
            key = (unit_pk, reading.reading_type, reading.start)
            (later if key in seen else this_round).append((position, unit_pk, reading))
            seen.add(key)
        _take_round(this_round, intakes, now, outcome)
        pending = [(position, (unit_pk, reading)) for position, unit_pk, reading in later]
    outcome.rejected.sort(key=lambda pair: pair[0])
    return outcome


def _take_round(batch: list[tuple[int, int, readings.Reading]], intakes: Mapping[int, int],
                now: datetime, outcome: Outcome) -> None:
    held = _held(batch)
    fresh: list[tuple] = []  # the columns of FRESH_COLUMNS
    replaced: dict[int, MeterReading] = {}  # held pk -> its correction
    latest = now + CLOCK_TOLERANCE
    for position, unit_pk, reading in batch:
        if reading.end > latest and reading.reading_type != readings.BASELINE:
            outcome.rejected.append((position, _rejection(
                reading, "invalid", "a measured reading cannot end in the future")))
            continue
        current = held.get((unit_pk, reading.reading_type, reading.start)) if held else None
        if current is None:
            fresh.append((unit_pk, reading.reading_type, reading.start, reading.end,
                          reading.value, reading.quality, 1, now, intakes[unit_pk]))
            outcome.stored += 1
        elif (current.end, current.value, current.quality) == (reading.end, reading.value,
                                                               reading.quality):
            outcome.duplicates += 1
        elif not reading.correction:
            outcome.rejected.append((position, _rejection(
                reading, "conflict", f"version {current.version} for this period says "
                f"{_show(current.value)} over {rules.iso(current.start)}/"
                f"{rules.iso(current.end)}; send {readings.GB_CORRECTION} [true] "
                "to correct it")))
        else:
            replaced[current.pk] = MeterReading(
                unit_id=unit_pk, reading_type=reading.reading_type, start=reading.start,
                end=reading.end, value=reading.value, quality=reading.quality,
                version=current.version + 1, received_at=now, intake_id=intakes[unit_pk])
            outcome.corrections += 1
    _insert_fresh(fresh)
    if replaced:  # the old versions stop being current before the new ones are written
        MeterReading.objects.filter(pk__in=list(replaced)).update(superseded_at=now)
        MeterReading.objects.bulk_create(list(replaced.values()), batch_size=2000)
        old = [MeterReading(pk=pk, superseded_by=row) for pk, row in replaced.items()]
        MeterReading.objects.bulk_update(old, ["superseded_by"], batch_size=1000)


MICRO = Decimal("0.000001")  # MeterReading.value's decimal places
FRESH_COLUMNS = ("unit_id", "reading_type", "start", "end", "value", "quality", "version",
                 "received_at", "intake_id")


def _insert_fresh(rows: list[tuple]) -> None:
    """Insert new readings (tuples of :data:`FRESH_COLUMNS`): with ``COPY`` on PostgreSQL,
    the database's fastest way in, in the caller's transaction (the table's constraints
    hold as for any insert); with a bulk insert elsewhere (SQLite, the embedded default)."""
    if not rows:
        return
    if connection.vendor != "postgresql":
        MeterReading.objects.bulk_create(
            [MeterReading(**dict(zip(FRESH_COLUMNS, row, strict=True))) for row in rows],
            batch_size=2000)
        return
    table = connection.ops.quote_name(MeterReading._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(name) for name in FRESH_COLUMNS)
    with connection.cursor() as cursor:
        raw = cursor.cursor  # the psycopg cursor under Django's wrapper
        with raw.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            copy.write(_copy_text(rows))


def _copy_text(rows: list[tuple]) -> str:
    """``rows`` in COPY's text format. Only the reading type and quality are text, and
    both come from closed sets (no tab, newline or backslash to escape); times are
    aware datetimes, values Decimals or None (COPY's null)."""
    null = "\\N"
    spans: dict[tuple[datetime, datetime], str] = {}
    tails: dict[tuple[int, datetime, int], str] = {}
    shown_values: dict[Decimal | None, str] = {None: null}
    lines = []
    for unit, kind, start, end, value, quality, version, received, intake in rows:
        span = spans.get((start, end))
        if span is None:
            span = spans[start, end] = f"{start.isoformat()}\t{end.isoformat()}"
        shown = shown_values.get(value)
        if shown is None:  # equal values have equal texts once rounded as Django rounds
            shown = shown_values[value] = str(value.quantize(MICRO))
        tail = tails.get((version, received, intake))
        if tail is None:
            tail = tails[version, received, intake] = \
                f"{version}\t{received.isoformat()}\t{intake}\n"
        lines.append(f"{unit}\t{kind}\t{span}\t{shown}\t{quality}\t{tail}")
    return "".join(lines)


def _held(batch: list[tuple[int, int, readings.Reading]]) -> dict[Key, MeterReading]:
    """The current readings of the periods ``batch`` names, with one query per reading
    type (only the columns compared). The type is matched by equality so that the unit,
    type and start bound the scan of the current readings' index; with a list of types
    PostgreSQL reads every reading held of each unit instead."""
    if not batch:
        return {}
    first = min(reading.start for _, _, reading in batch)
    last = max(reading.start for _, _, reading in batch)
    unit_pks = {unit_pk for _, unit_pk, _ in batch}
    held: dict[Key, MeterReading] = {}
    for reading_type in {reading.reading_type for _, _, reading in batch}:
        rows = MeterReading.objects.filter(
            unit_id__in=unit_pks, reading_type=reading_type, start__gte=first,
            start__lte=last, superseded_at__isnull=True).only(
            "pk", "unit_id", "reading_type", "start", "end", "value", "quality", "version")
        held.update(((row.unit_id, row.reading_type, row.start), row) for row in rows)
    return held


def _rejection(reading: readings.Reading, outcome: str, detail: str) -> readings.Rejection:
    return readings.Rejection(reading.unit, reading.reading_type, rules.iso(reading.start),
                              outcome, detail)


@transaction.atomic
def _record_declarations(site: FspSite, report: Report, now: datetime) -> ReportIntake:
    units = {unit.reference: unit for unit in
             DispatchUnit.objects.select_for_update().filter(site=site)}
    parsed, rejected = readings.parse_declarations(
        report_signing.content_resources(report.resources), units)
    intake = _new_intake(site, report, ReportIntake.Kind.AVAILABILITY, now)
    for declaration in parsed:
        unit = units[declaration.unit]
        if declaration.start < now:
            rejected.append(readings.Rejection(
                declaration.unit, readings.GB_AVAILABLE_KW, rules.iso(declaration.start), "late",
                "availability is declared before its window starts"))
            continue
        held = AvailabilityDeclaration.objects.filter(
            unit=unit, start=declaration.start, end=declaration.end,
            superseded_at__isnull=True).first()
        if held is not None and held.available_kw == declaration.available_kw:
            intake.duplicates += 1
            continue
        if held is not None:
            AvailabilityDeclaration.objects.filter(pk=held.pk).update(superseded_at=now)
        row = AvailabilityDeclaration.objects.create(
            unit=unit, start=declaration.start, end=declaration.end,
            available_kw=declaration.available_kw, declared_at=now, intake=intake)
        if held is not None:
            AvailabilityDeclaration.objects.filter(pk=held.pk).update(superseded_by=row)
            intake.corrections += 1
        else:
            intake.stored += 1
    return _finish(intake, rejected)


def _new_intake(site: FspSite, report: Report, kind: str, now: datetime) -> ReportIntake:
    """The intake of ``report``, with the site's signature of it when it has one."""
    signature = report_signatures.signature_of(site, report, now)
    return ReportIntake.objects.create(
        site=site, kind=kind, report_id=report.pk, client_id=report.client_id,
        received_at=now, jws=signature.jws if signature else "",
        kid=signature.kid if signature else "",
        signed=signature.statement if signature else None,
        signed_at=signature.signed_at if signature else None)


def _check_deferred_constraints() -> None:
    """Check now the foreign keys PostgreSQL defers to the commit (two per reading
    written): otherwise they are checked while the transaction holds the audit chain's
    lock (:mod:`dispatch.audit`), and every other intake waits for them. Later
    statements are deferred again as usual."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")


def _finish(intake: ReportIntake, rejected: list[readings.Rejection]) -> ReportIntake:
    """Count the rejections, save, and append the intake to the audit chain (in the same
    transaction as what it records)."""
    intake.rejected = len(rejected)
    intake.problems = [r.as_dict() for r in rejected]
    intake.save(update_fields=["stored", "duplicates", "corrections", "rejected", "problems"])
    audit.record_intake(intake)
    return intake


def _show(value) -> str:
    return "MISSING" if value is None else str(value)


# --- readings posted in bulk by an FSP's back office --------------------------------------------

@dataclass(frozen=True)
class BulkIntake:
    """What one bulk request stored: one intake per site whose units it named."""

    intakes: list[ReportIntake]

    @property
    def stored(self) -> int:
        return sum(intake.stored for intake in self.intakes)

    @property
    def duplicates(self) -> int:
        return sum(intake.duplicates for intake in self.intakes)

    @property
    def corrections(self) -> int:
        return sum(intake.corrections for intake in self.intakes)


def record_bulk_readings(*, office: fsp_office.Office, rows: object, client_id: str,
                         now: datetime | None = None) -> BulkIntake:
    """Take in the readings an FSP's back office posts in bulk (the dispatch API's
    ``POST fsp/meter-readings``; rows as :func:`dispatch.readings.parse_bulk_rows` reads them),
    all or nothing: when any row is faulty, names a unit the office does not reach, may
    only arrive signed (its site has a key and its operator requires signed reports),
    or conflicts with a held reading without being a correction, a :class:`BadRequest`
    lists every such row and nothing is written. Otherwise the rows are stored by
    :func:`take_in` (duplicates counted, corrections versioned, as for reports) in one
    transaction, with one intake per site in the audit chain."""
    at = now or timezone.now()
    parsed, errors = readings.parse_bulk_rows(rows)
    if errors:
        raise BadRequest(_refusal(errors), errors=errors[:BULK_LISTED_ERRORS])
    with transaction.atomic():
        units = _office_units(office, parsed)
        placed, errors = _place_rows(parsed, units)
        errors += _unsigned_refusals(placed, units)
        if errors:
            raise BadRequest(_refusal(errors), errors=errors[:BULK_LISTED_ERRORS])
        locked = list(DispatchUnit.objects.select_for_update().filter(
            pk__in={unit_pk for unit_pk, _ in placed}).order_by("pk").values_list(
            "pk", flat=True))
        sites = FspSite.objects.select_related("fsp__operator").in_bulk(
            {units[pk].site_id for pk in locked})
        intakes = {site_id: ReportIntake.objects.create(
            site=site, kind=ReportIntake.Kind.METERING, channel=ReportIntake.Channel.BULK,
            report_id="", client_id=client_id, received_at=at)
            for site_id, site in sites.items()}
        items = [(unit_pk, reading) for unit_pk, row in placed for reading in row.readings]
        outcome = take_in(items, intakes={pk: intakes[units[pk].site_id].pk for pk in locked},
                          now=at)
        if outcome.rejected:
            rows_of = [row.number for _, row in placed for _ in row.readings]
            errors = [f"readings[{rows_of[position]}]: {rejection.outcome}: {rejection.detail}"
                      for position, rejection in outcome.rejected]
            raise BadRequest(_refusal(errors), errors=errors[:BULK_LISTED_ERRORS])
        _count_per_intake(items, intakes, units)
        _check_deferred_constraints()
        for intake in intakes.values():
            _finish(intake, [])
    return BulkIntake(list(intakes.values()))


# A refusal lists at most this many faulty rows (and says how many there were).
BULK_LISTED_ERRORS = 1000


def _refusal(errors: list[str]) -> str:
    shown = "" if len(errors) <= BULK_LISTED_ERRORS else \
        f" (the first {BULK_LISTED_ERRORS} are listed)"
    return (f"{len(errors)} reading row(s) refused{shown}; nothing was stored. Correct them "
            "and send the request again.")


def _office_units(office: fsp_office.Office,
                  parsed: list[readings.BulkRow]) -> dict[int, DispatchUnit]:
    """The office's units any row may name, by pk (one query)."""
    named = {(row.fsp, row.unit) for row in parsed}  # few distinct among many rows
    references = {unit.split("/", 1)[-1] if fsp is None else unit for fsp, unit in named}
    return DispatchUnit.objects.filter(
        fsp_id__in=office.fsp_ids, reference__in=references).select_related(
        "fsp__operator").only("pk", "reference", "site_id", "fsp__identifier",
                              "fsp__operator__code", "fsp__operator__require_signed_reports"
                              ).in_bulk()


def _place_rows(parsed: list[readings.BulkRow], units: dict[int, DispatchUnit]
                ) -> tuple[list[tuple[int, readings.BulkRow]], list[str]]:
    """Each row with the pk of the unit it names; a unit the office does not reach is
    answered exactly as one that does not exist."""
    by_reference: dict[str, list[DispatchUnit]] = {}
    for unit in units.values():
        by_reference.setdefault(unit.reference, []).append(unit)
    placed: list[tuple[int, readings.BulkRow]] = []
    errors: list[str] = []
    # Rows name few units many times over: each spelling is looked up once, to the pk of
    # its unit or what is wrong with it.
    answers: dict[tuple[str | None, str, str | None], int | str] = {}
    for row in parsed:
        named = (row.fsp, row.unit, row.operator)
        answer = answers.get(named)
        if answer is None:
            answer = answers[named] = _unit_named(row, by_reference)
        if isinstance(answer, int):
            placed.append((answer, row))
        else:
            errors.append(f"readings[{row.number}]: {answer}")
    return placed, errors


def _unit_named(row: readings.BulkRow, by_reference: dict[str, list[DispatchUnit]]
                ) -> int | str:
    """The pk of the unit ``row`` names, or why it names none."""
    fsp, reference = row.fsp, row.unit
    if fsp is None and "/" in reference:
        fsp, reference = reference.split("/", 1)
    found = [unit for unit in by_reference.get(reference, [])
             if (fsp is None or unit.fsp.identifier == fsp) and
             (row.operator is None or unit.fsp.operator.code == row.operator.upper())]
    if not found:
        return f"unknown_unit: no dispatch unit {reference!r}" + (
            f" of FSP {fsp!r}" if fsp else "")
    if len(found) > 1:
        return (f"ambiguous_unit: unit reference {reference!r} is used by several of your "
                "registrations; name the fsp and operator")
    return found[0].pk


def _unsigned_refusals(placed: list[tuple[int, readings.BulkRow]],
                       units: dict[int, DispatchUnit]) -> list[str]:
    """Rows for units whose readings may only arrive signed by their site: the site has
    an unrevoked key and its operator requires signed reports. A back office holds no
    site's key, so such readings come through the site's signed metering reports."""
    candidates = {units[pk].site_id for pk in {pk for pk, _ in placed}
                  if units[pk].fsp.operator.require_signed_reports}
    if not candidates:
        return []
    signing = set(SiteSigningKey.objects.filter(
        site_id__in=candidates, revoked_at__isnull=True).values_list("site_id", flat=True))
    return [f"readings[{row.number}]: signature_required: the site of unit "
            f"{units[pk].reference!r} signs its readings and network operator "
            f"{units[pk].fsp.operator.code} requires signed readings; send them in the "
            "site's signed metering report" for pk, row in placed
            if units[pk].site_id in signing]


def _count_per_intake(items: list[tuple[int, readings.Reading]],
                      intakes: dict[int, ReportIntake], units: dict[int, DispatchUnit]
                      ) -> None:
    """Each site's intake counts what became of its own rows."""
    counted = MeterReading.objects.filter(intake__in=list(intakes.values())).values(
        "intake_id", "version")
    by_pk = {intake.pk: intake for intake in intakes.values()}
    for row in counted.annotate(n=Count("pk")):
        intake = by_pk[row["intake_id"]]
        if row["version"] == 1:
            intake.stored += row["n"]
        else:
            intake.corrections += row["n"]
    per_unit: dict[int, int] = {}
    for unit_pk, _ in items:
        per_unit[unit_pk] = per_unit.get(unit_pk, 0) + 1
    sent: dict[int, int] = {}
    for unit_pk, count in per_unit.items():
        site_id = units[unit_pk].site_id
        sent[site_id] = sent.get(site_id, 0) + count
    for site_id, intake in intakes.items():
        intake.duplicates = sent[site_id] - intake.stored - intake.corrections
