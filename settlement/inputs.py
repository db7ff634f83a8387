"""Reads what a statement is computed from, turning rows into the plain inputs of
:mod:`settlement.statement`. This is the only module of settlement that imports the
dispatch app: every other settlement module reads contracts, dispatches, readings and
sites through the functions here (the model classes are named from here too, for type
hints)."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from django.core.exceptions import EmptyResultSet
from django.db import connections
from django.db.models import QuerySet

from dispatch import readings as dispatch_readings
from dispatch import selectors as dispatch_selectors
from dispatch.models import (
    AvailabilityDeclaration,
    CommsState,
    CommsTransition,
    Contract,
    DispatchInstruction,
    DispatchRevision,
    DispatchUnit,
    Fsp,
    FspSite,
    MeterReading,
    ReadingDay,
)
from dispatch.rules import STATUSES
from dispatch.scope import Scope
from gbflex_profile import jose
from settlement import statement
from settlement.calc import metering, money
from settlement.calc.delivery import DeficiencyRule
from settlement.calc.periods import london_day, period_start_containing
from settlement.models import DispatchSettlement, SettlementTerms
from vtn import timing

if TYPE_CHECKING:
    import psycopg

RUN, STOPS = STATUSES[1], STATUSES[2:]  # "run"; "stop", "emergency-stop"

# Contract and DispatchInstruction are the dispatch types the rest of settlement names
# (for type hints) from here.


# --- contracts, dispatches and sites, as settlement finds them --------------------------------

def find_contract(identifier: str, *, operator: str | None = None,
                  scope: Scope | None = None) -> Contract:
    """The contract ``identifier`` (of ``operator`` when several share it, within
    ``scope``); NotFound or BadRequest as the dispatch API answers them."""
    return dispatch_selectors.find_contract(identifier, operator=operator, scope=scope)


def contracts(*, operator: str = "", fsp: str = "", contract: str = "") -> list[Contract]:
    """Contracts by operator code and identifier, narrowed by the filters given."""
    rows = Contract.objects.select_related("operator", "fsp", "product").order_by(
        "operator__code", "identifier")
    if operator:
        rows = rows.filter(operator__code=operator.upper())
    if fsp:
        rows = rows.filter(fsp__identifier=fsp)
    if contract:
        rows = rows.filter(identifier=contract)
    return list(rows)


def contract_by_id(contract_id: int) -> Contract:
    return Contract.objects.get(pk=contract_id)


def lock_contract(contract: Contract) -> None:
    """Row-lock ``contract`` until the end of the caller's transaction, so two runs never
    write the same contract's statements at once."""
    Contract.objects.select_for_update().filter(pk=contract.pk).first()


def dispatch_by_id(dispatch_id: int) -> DispatchInstruction | None:
    return DispatchInstruction.objects.select_related("contract", "unit").filter(
        pk=dispatch_id).first()


def ended_dispatches(now: datetime, *, settled_since: datetime) -> list[DispatchInstruction]:
    """Dispatches whose service ended by ``now``, except those settled since
    ``settled_since``."""
    return list(DispatchInstruction.objects.select_related("contract", "unit").filter(
        service_end__lte=now).exclude(settlement__status=DispatchSettlement.Status.SETTLED,
                                      settlement__computed_at__gte=settled_since))


def readings_arrived_after(instruction: DispatchInstruction, moment: datetime) -> bool:
    """Whether any meter reading of the dispatch's unit arrived after ``moment``."""
    return MeterReading.objects.filter(unit=instruction.unit, received_at__gt=moment).exists()


class RevisionRow(NamedTuple):
    """What settlement reads of a dispatch revision (read as plain rows: a month's
    revisions are thousands)."""

    instruction_id: int
    number: int
    status: str
    urgency: str
    instruction_time: datetime
    service_start: datetime
    service_end: datetime
    document: dict  # the signed Appendix A document
    signature: str  # its compact JWS


def _revision_rows(revisions: QuerySet[DispatchRevision]) -> list[RevisionRow]:
    return [RevisionRow(*row) for row in _rows(revisions.order_by(
        "instruction_id", "number").values_list(*RevisionRow._fields))]


def revisions_of(instruction: DispatchInstruction) -> list[RevisionRow]:
    return _revision_rows(DispatchRevision.objects.filter(instruction=instruction))


def fsp_of_client(client_id: str) -> Fsp | None:
    """The FSP whose site's VEN is the OAuth2 client ``client_id``; None: no FSP site."""
    site = FspSite.objects.filter(ven__client_id=client_id).select_related("fsp").first()
    return None if site is None else site.fsp


# --- statement inputs ---------------------------------------------------------------------------


def terms_of(contract: Contract) -> statement.Terms:
    stored = SettlementTerms.objects.filter(contract=contract).first() or SettlementTerms(
        contract=contract)
    scaling = None
    if stored.scale_below is not None or stored.nothing_below is not None:
        scaling = money.PerformanceScaling(scale_below=stored.scale_below,
                                           nothing_below=stored.nothing_below)
    try:
        baseline = statement.parse_baseline(contract.baseline_method)
    except ValueError:
        baseline = None
    try:
        reactive_baseline: statement.BaselineSpec | None = statement.parse_baseline(
            contract.reactive_baseline_method, reactive=True)
    except ValueError:
        reactive_baseline = None
    windows = tuple((timing.parse_datetime(w["start"]), timing.parse_datetime(w["end"]))
                    for w in contract.service_windows)
    return statement.Terms(
        operator=contract.operator.code, contract=contract.identifier,
        fsp=contract.fsp.identifier, product=contract.product.code,
        currency=contract.currency,
        utilisation=money.UtilisationTerms(
            price_gbp=contract.utilisation_price,
            penalty_rate_gbp=stored.penalty_rate_gbp,
            penalty_basis=money.PenaltyBasis(stored.penalty_basis), scaling=scaling),
        availability_price_gbp_per_mw_h=contract.availability_price,
        availability_paid=contract.product.availability_paid,
        baseline=baseline, baseline_text=contract.baseline_method or statement.DEFAULT_BASELINE,
        service_windows=windows, period_minutes=stored.period_minutes,
        pay_over_delivery=stored.pay_over_delivery,
        deficiency_rule=DeficiencyRule(stored.deficiency_rule),
        comms_loss_unavailable=contract.comms_loss_availability ==
        Contract.CommsLoss.UNAVAILABLE,
        reactive_price_gbp_per_mvarh=contract.reactive_utilisation_price,
        emergency_premium_percent=contract.emergency_premium_percent,
        reactive_baseline=reactive_baseline,
        reactive_baseline_text=contract.reactive_baseline_method
        or statement.DEFAULT_REACTIVE_BASELINE)


def meter_window(contract: Contract) -> timedelta:
    stored = SettlementTerms.objects.filter(contract=contract).first()
    return timedelta(hours=stored.meter_window_hours if stored else 48)


def _segments(revision: RevisionRow, since: datetime | None,
              until: datetime | None) -> list[statement.Segment]:
    """The setpoints of ``revision`` as held segments, clipped to [since, until)."""
    timings = revision.document["serviceTimings"]
    segments = []
    for index, point in enumerate(timings):
        start = max(timing.parse_datetime(point["setpointTime"]), revision.service_start)
        end = timing.parse_datetime(timings[index + 1]["setpointTime"]) \
            if index + 1 < len(timings) else revision.service_end
        if since is not None:
            start = max(start, since)
        if until is not None:
            end = min(end, until)
        if end > start:
            price = point.get("pricePerUnit")
            segments.append(statement.Segment(
                start, end, point["setpointType"].lower(), Decimal(str(point["volume"])),
                revision.number, service_type=str(point.get("serviceType", "REAL")).lower(),
                urgency=revision.urgency,
                price_per_unit_gbp=None if price is None else Decimal(str(price))))
    return segments


def dispatch_input(reference: str, unit: str,
                   revisions: list[RevisionRow]) -> statement.DispatchInput | None:
    """What was ordered, period by period: each RUN revision's setpoints from the moment
    it was instructed (the first from the service start) until the next revision, cut
    short by a later stop. A later revision never changes what an earlier one ordered
    for a time before it was instructed. None for a dispatch that never ran."""
    run = [r for r in revisions if r.status == RUN]
    if not run:
        return None
    settled = run[-1]
    stops = [r for r in revisions if r.status in STOPS and r.number > settled.number]
    stopped_at = stops[0].instruction_time if stops else None
    segments = []
    for index, revision in enumerate(run):
        since = revision.instruction_time if index else None
        until = run[index + 1].instruction_time if index + 1 < len(run) else None
        segments += _segments(revision, since, until)
    return statement.DispatchInput(
        reference=reference, revision=settled.number, unit=unit, segments=tuple(segments),
        document_sha256=signed_document_sha256(settled), stopped_at=stopped_at)


def signed_document_sha256(revision: RevisionRow | DispatchRevision) -> str:
    """SHA-256 of the revision's canonical document, taken from what its signature signs:
    a revision's compact JWS carries RFC 8785 canonical JSON of its document as the
    payload, the very bytes :func:`settlement.statement.document_sha256` hashes, so
    they are decoded rather than written again. (A revision without a signature, as only
    one built in memory is, has its document written.)"""
    parts = revision.signature.split(".")
    if len(parts) != 3:
        return statement.document_sha256(revision.document)
    return hashlib.sha256(jose.b64url_decode(parts[1])).hexdigest()


def month_dispatches(contract: Contract, first: datetime,
                     after: datetime) -> list[statement.DispatchInput]:
    """The contract's dispatches whose service starts within [first, after)."""
    window = {"contract": contract, "service_start__gte": first, "service_start__lt": after}
    instructions = _rows(DispatchInstruction.objects.filter(**window).values_list(
        "pk", "reference", "unit__reference"))
    by_dispatch = defaultdict(list)
    for revision in _revision_rows(DispatchRevision.objects.filter(
            **{f"instruction__{name}": value for name, value in window.items()})):
        by_dispatch[revision.instruction_id].append(revision)
    found = (dispatch_input(reference, unit, by_dispatch[pk])
             for pk, reference, unit in instructions)
    return [d for d in found if d is not None]


def dispatched_days(unit_ids: list[int], since: datetime,
                    until: datetime) -> dict[int, frozenset[date]]:
    """London days on which each unit ran a dispatch (of any contract): not baseline days."""
    days: dict[int, set[date]] = defaultdict(set)
    rows = DispatchRevision.objects.filter(
        instruction__unit_id__in=unit_ids, status=RUN,
        instruction__service_start__lt=until, instruction__service_end__gt=since).values_list(
        "instruction__unit_id", "service_start", "service_end").order_by().distinct()
    for unit_id, start, end in _rows(rows):
        day = london_day(start)
        while day <= london_day(end - timedelta(microseconds=1)):
            days[unit_id].add(day)
            day += timedelta(days=1)
    return {unit_id: frozenset(found) for unit_id, found in days.items()}


def unit_inputs(contract: Contract, terms: statement.Terms, first: datetime,
                after: datetime, *, only: str | None = None
                ) -> tuple[dict[str, statement.UnitInput], dict[str, frozenset[date]]]:
    """Each contracted unit's (or just unit ``only``'s) inputs, all at once: what
    :func:`unit_batches` streams, gathered (for a single dispatch, or a small contract)."""
    inputs: dict[str, statement.UnitInput] = {}
    days: dict[str, frozenset[date]] = {}
    for batch, batch_days in unit_batches(contract, terms, first, after, only=only):
        inputs.update(batch)
        days.update(batch_days)
    return inputs, days


# Units settled together: their readings are read and worked out in one go, and each
# batch costs a few queries whatever its size. The memory a batch needs does not grow with
# the contract (some 60 MB for 100 units' 300,000 readings and what is worked out from
# them). The next batch's readings are asked for before this one is worked out, so
# PostgreSQL reads them meanwhile.
BATCH_UNITS = 100


def unit_batches(contract: Contract, terms: statement.Terms, first: datetime,
                 after: datetime, *, only: str | None = None, batch_units: int | None = None
                 ) -> Iterator[tuple[dict[str, statement.UnitInput],
                                     dict[str, frozenset[date]]]]:
    """The contracted units (or just unit ``only``) in batches of ``batch_units``, in
    order of reference: each unit's metered kW per period (from the look-back start, for
    baselines), nominations, declared availability spans, comms-lost spans and the digest
    of its readings, with the London days each unit was dispatched. A batch's readings are
    read in one query and worked out as arrays (:mod:`settlement.calc.metering`).

    On PostgreSQL the queries go through the connection's pipeline: the next batch's
    readings query is sent before this batch is worked out (and handed to the caller), so
    the server computes it meanwhile. It is the same connection and transaction: a query
    the caller makes in between waits its turn behind it."""
    ordered = contract.units.order_by("reference")
    units = list(ordered.filter(reference=only) if only else ordered)
    lookback = timedelta(days=max(spec.lookback_days if spec else 30 for spec in (
        terms.baseline, terms.reactive_baseline)) + 2)
    since = first - lookback
    size = batch_units or BATCH_UNITS
    # The first batch is a fifth of the others: nothing overlaps its query, so it is short;
    # the rest of the units are read while Python works it out.
    lead = max(1, size // 5)
    batches = [units[index:index + size] for index in range(lead, len(units), size)]
    if units:
        batches.insert(0, units[:lead])
    connection = connections[MeterReading.objects.db]
    if connection.vendor != "postgresql" or len(batches) < 2:
        for batch in batches:
            yield _batch_inputs(_batch_queries(batch, terms, since, first, after,
                                               _send_readings(batch, since, after)),
                                terms, first, after)
        return

    connection.ensure_connection()
    with connection.connection.pipeline():
        pending: psycopg.Cursor | None = _send_readings(batches[0], since, after)
        for index, batch in enumerate(batches):
            queried = _batch_queries(batch, terms, since, first, after, pending)
            pending = _send_readings(batches[index + 1], since, after) \
                if index + 1 < len(batches) else None
            yield _batch_inputs(queried, terms, first, after)


@dataclass
class _Queried:
    """What the database holds for a batch of units (see :func:`_batch_queries`)."""

    units: list[DispatchUnit]
    table: metering.PeriodTable  # metered power (USAGE, DEMAND)
    reactive_table: metering.PeriodTable  # reactive energy (GB_REACTIVE, read as USAGE)
    digest_columns: dict[str, np.ndarray]  # of statement.readings_digests
    counts: list[int]  # readings per unit
    measured: dict[int, list]
    reactive: dict[int, list]
    nominated: dict[int, dict]
    arrived: dict[int, dict]
    declared: dict[int, list]
    days: dict[int, frozenset[date]]
    lost: dict[int, list[tuple[datetime, datetime]]]


def _batch_queries(units: list[DispatchUnit], terms: statement.Terms, since: datetime,
                   first: datetime, after: datetime,
                   pending: psycopg.Cursor | None) -> _Queried:
    """A batch's rows: its readings (the result of ``pending``, the query
    :func:`_send_readings` sent; None: read through the ORM) as period tables, then every
    other input (what the reading-by-reading rule needs, nominations, declarations,
    dispatched days, comms losses), read through the ORM."""
    ids = [unit.pk for unit in units]
    minutes = terms.period_minutes
    origin = period_start_containing(since, minutes)
    periods = -(-(after - origin) // timedelta(minutes=minutes))
    columns, reactive_columns, digest_columns = _batch_readings(ids, since, after, pending)
    table = metering.period_table(**columns, unit_count=len(units), origin=origin,
                                  periods=periods, minutes=minutes)
    # Reactive energy (kVArh) is averaged per period as USAGE is.
    reactive_table = metering.period_table(**reactive_columns, unit_count=len(units),
                                           origin=origin, periods=periods, minutes=minutes)
    irregular = [units[row].pk for row in np.flatnonzero(table.irregular).tolist()]
    measured: dict[int, list] = defaultdict(list)
    for unit_id, start, end, kind, value in _rows(_current_readings(irregular, since, after).filter(
            reading_type__in=(dispatch_readings.USAGE, dispatch_readings.DEMAND)).values_list(
            "unit_id", "start", "end", "reading_type", "value")):
        measured[unit_id].append((start, end, kind, value))
    reactive: dict[int, list] = defaultdict(list)  # kVArh, averaged like USAGE
    for unit_id, start, end, value in _rows(_current_readings(
            [units[row].pk for row in np.flatnonzero(reactive_table.irregular).tolist()],
            since, after).filter(reading_type=dispatch_readings.GB_REACTIVE).values_list(
            "unit_id", "start", "end", "value")):
        reactive[unit_id].append((start, end, dispatch_readings.USAGE, value))
    nominated: dict[int, dict] = defaultdict(dict)
    arrived: dict[int, dict] = defaultdict(dict)
    for unit_id, start, value, received in _rows(_current_readings(ids, since, after).filter(
            reading_type=dispatch_readings.BASELINE).values_list(
            "unit_id", "start", "value", "received_at")):
        nominated[unit_id][start] = value
        arrived[unit_id][start] = received
    declared: dict[int, list] = defaultdict(list)
    for unit_id, start, end, kw, at in _rows(AvailabilityDeclaration.objects.filter(
            unit_id__in=ids, superseded_at__isnull=True, start__lt=after,
            end__gt=first).values_list("unit_id", "start", "end", "available_kw",
                                       "declared_at")):
        declared[unit_id].append((start, end, kw, at))
    return _Queried(
        units=units, table=table, reactive_table=reactive_table,
        digest_columns=digest_columns,
        counts=np.bincount(columns["units"], minlength=len(units)).tolist(),
        measured=measured, reactive=reactive, nominated=nominated, arrived=arrived,
        declared=declared, days=dispatched_days(ids, since, after),
        lost=comms_lost_spans({u.site_id for u in units}, first, after))


def _batch_inputs(queried: _Queried, terms: statement.Terms, first: datetime, after: datetime
                  ) -> tuple[dict[str, statement.UnitInput], dict[str, frozenset[date]]]:
    """The batch's unit inputs from its rows, worked out without the database: the
    readings digests, each unit's metered kW, nominations, declared spans and comms
    losses."""
    units, minutes = queried.units, terms.period_minutes
    digests = statement.readings_digests(**queried.digest_columns, kinds=_KINDS,
                                         scale=metering.VALUE_SCALE,
                                         null=metering.NULL_VALUE, unit_count=len(units))
    slots = metering.period_slots(queried.table)
    inputs = {}
    for row, unit in enumerate(units):
        spans = dispatch_readings.declared_profile(queried.declared[unit.pk], first, after)
        actual_kw: Mapping[datetime, Decimal | None] = metering.MeteredKw(
            queried.table, row, slots) if unit.pk not in queried.measured else \
            statement.period_average_kw(queried.measured[unit.pk], minutes)
        reactive_kvar: Mapping[datetime, Decimal | None] = metering.MeteredKw(
            queried.reactive_table, row, slots) if unit.pk not in queried.reactive else \
            statement.period_average_kw(queried.reactive[unit.pk], minutes)
        inputs[unit.reference] = statement.UnitInput(
            reference=unit.reference, direction=unit.direction, capacity_kw=unit.capacity_kw,
            actual_kw=actual_kw, nominated_kw=queried.nominated[unit.pk],
            nominated_received=queried.arrived[unit.pk],
            declarations=tuple((s.start, s.end, s.available_kw) for s in spans
                               if s.available_kw is not None),
            readings_sha256=digests[row], readings_count=queried.counts[row],
            comms_lost=tuple(queried.lost.get(unit.site_id, ())), reactive_kvar=reactive_kvar)
    return inputs, {unit.reference: queried.days.get(unit.pk, frozenset()) for unit in units}


def _rows(query: QuerySet) -> list[tuple]:
    """The rows of a ``values_list`` query of plain columns (numbers, text, timestamps). On
    PostgreSQL they are read in binary: the driver decodes timestamps in C (the same aware
    UTC datetimes as the ORM's, which parses text in Python, several microseconds each)."""
    connection = connections[query.db]
    if connection.vendor != "postgresql":
        return list(query)
    import psycopg

    try:
        sql, params = query.query.sql_with_params()
    except EmptyResultSet:  # the ORM's answer too: no query, no rows (e.g. ``__in=[]``)
        return []
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params, binary=True)
        rows = cursor.fetchall()
        if len(cursor.description or ()) != len(query.query.values_select):
            raise ValueError("_rows reads the named columns only (no ordering added to a "
                             "DISTINCT, no annotations)")
        return rows


def _current_readings(unit_ids: list[int], since: datetime,
                      after: datetime) -> QuerySet[MeterReading]:
    """The current (not superseded) readings of the units starting in [since, after), in
    the order a statement's readings digest takes them."""
    return MeterReading.objects.filter(
        unit_id__in=unit_ids, superseded_at__isnull=True, start__gte=since,
        start__lt=after).order_by("unit_id", "reading_type", "start")


# PostgreSQL: the current readings come packed per unit, type and UTC day
# (:class:`dispatch.models.ReadingDay`, kept by a trigger on the readings), put in the
# digest's order (unit, type, start) once read: a month of a unit's half-hourly readings is
# a few dozen rows read without a Python object per reading. A day's readings are
# fixed-width big-endian int8 fields (start and end in microseconds since 2000-01-01 UTC,
# version, value in millionths or NULL_VALUE).
_KINDS = (dispatch_readings.USAGE, dispatch_readings.DEMAND, dispatch_readings.BASELINE,
          dispatch_readings.GB_REACTIVE)
_KIND_CODE = {dispatch_readings.USAGE: metering.USAGE, dispatch_readings.DEMAND: metering.DEMAND}
_DAYS_SQL = """
SELECT d.unit_id, d.reading_type, d.day, d.readings
FROM {table} d
WHERE d.unit_id = ANY(%s) AND d.day >= %s AND d.day <= %s
  AND d.reading_type IN ('USAGE', 'DEMAND', 'BASELINE', 'GB_REACTIVE')
"""
_PACKED = np.dtype([("start", ">i8"), ("end", ">i8"), ("version", ">i8"), ("value", ">i8")])


def _send_readings(units: list[DispatchUnit], since: datetime,
                   after: datetime) -> psycopg.Cursor | None:
    """Send the query of the units' packed reading days (on PostgreSQL; else None: they
    are read through the ORM) and return its cursor without waiting for the answer,
    which :func:`_batch_readings` takes. In pipeline mode the server computes it
    meanwhile. The cursor binds on the server, so that the packed days come back as
    binary bytea (Django's client-side cursors take them as hex text, twice the bytes for
    the server to write and for the driver to decode)."""
    connection = connections[MeterReading.objects.db]
    if connection.vendor != "postgresql":
        return None
    import psycopg

    ids = [unit.pk for unit in units]
    connection.ensure_connection()
    cursor = psycopg.Cursor(connection.connection)
    cursor.execute(_DAYS_SQL.format(table=ReadingDay._meta.db_table),
                   (ids, _utc_day(since), _utc_day(after - timedelta(microseconds=1))),
                   binary=True)
    return cursor


def _utc_day(instant: datetime) -> date:
    return instant.astimezone(UTC).date()


def _batch_readings(unit_ids: list[int], since: datetime, after: datetime,
                    pending: psycopg.Cursor | None
                    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray],
                               dict[str, np.ndarray]]:
    """The batch's current readings starting in [since, after): as the parallel arrays of
    :func:`settlement.calc.metering.period_table` (``units`` as positions in
    ``unit_ids``), once for the metered power (USAGE, DEMAND) and once for the reactive
    energy (GB_REACTIVE, read as USAGE); and as the arrays of
    :func:`settlement.statement.readings_digests`, all types. ``pending``: the cursor of
    the query :func:`_send_readings` sent (None: read them through the ORM)."""
    position = {unit_id: index for index, unit_id in enumerate(unit_ids)}
    if pending is not None:
        with pending:
            found = pending.fetchall()
        # Put in order here (the batch's units, then type and day): a sort on the server
        # would carry the packed days along, megabytes spilled to disk.
        days = sorted(found, key=lambda day: (position[day[0]], day[1], day[2]))
        counts = [len(blob) // _PACKED.itemsize for _, _, _, blob in days]
        rows = np.frombuffer(b"".join(blob for _, _, _, blob in days), dtype=_PACKED)
        units = np.repeat(np.array([position[unit_id] for unit_id, _, _, _ in days],
                                   dtype=np.int64), counts)
        kind_index = np.repeat(np.array([_KINDS.index(kind) for _, kind, _, _ in days],
                                        dtype=np.int64), counts)
        # Days are whole UTC days: keep the readings starting in [since, after).
        starts = rows["start"].astype(np.int64)
        inside = (starts >= metering.to_microseconds(since)) & (
            starts < metering.to_microseconds(after))
        if not inside.all():
            rows, units, kind_index = rows[inside], units[inside], kind_index[inside]
    else:  # the same rows, read through the ORM
        listed = sorted(_current_readings(unit_ids, since, after).values_list(
            "unit_id", "reading_type", "start", "end", "version", "value"),
            key=lambda row: position[row[0]])
        units = np.array([position[row[0]] for row in listed], dtype=np.int64)
        kind_index = np.array([_KINDS.index(row[1]) for row in listed], dtype=np.int64)
        rows = np.array([(metering.to_microseconds(start), metering.to_microseconds(end),
                          version, metering.NULL_VALUE if value is None
                          else int(value.scaleb(metering.VALUE_SCALE)))
                         for _, _, start, end, version, value in listed], dtype=_PACKED)
    starts, values = rows["start"].astype(np.int64), rows["value"].astype(np.int64)
    codes = np.array([_KIND_CODE.get(kind, metering.OTHER) for kind in _KINDS], dtype=np.int64)
    columns = {"units": units, "kinds": codes[kind_index], "starts": starts,
               "ends": rows["end"].astype(np.int64), "values": values}
    reactive = np.where(kind_index == _KINDS.index(dispatch_readings.GB_REACTIVE),
                        metering.USAGE, metering.OTHER)
    reactive_columns = {**columns, "kinds": reactive}
    digest_columns = {"units": units, "kind_index": kind_index, "starts": starts,
                      "versions": rows["version"].astype(np.int64), "values": values}
    return columns, reactive_columns, digest_columns


def comms_lost_spans(site_ids: set[int], first: datetime,
                     after: datetime) -> dict[int, list[tuple[datetime, datetime]]]:
    """Per site, the spans within [first, after) during which it was comms lost: from each
    transition to ``comms_lost`` until the next transition away from it (or ``after``)."""
    spans: dict[int, list[tuple[datetime, datetime]]] = defaultdict(list)
    state_at_first = {}
    for site_id, to_state in CommsTransition.objects.filter(
            site_id__in=site_ids, at__lt=first).order_by("site_id", "at", "id").values_list(
            "site_id", "to_state"):
        state_at_first[site_id] = to_state
    lost_since = {site_id: first for site_id, state in state_at_first.items()
                  if state == CommsState.COMMS_LOST}
    for site_id, to_state, at in CommsTransition.objects.filter(
            site_id__in=site_ids, at__gte=first, at__lt=after).order_by(
            "at", "id").values_list("site_id", "to_state", "at"):
        if to_state == CommsState.COMMS_LOST:
            lost_since.setdefault(site_id, at)
        elif site_id in lost_since:
            start = lost_since.pop(site_id)
            if start < at:
                spans[site_id].append((start, at))
    for site_id, start in lost_since.items():
        spans[site_id].append((start, after))
    return spans
