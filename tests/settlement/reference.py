"""The reference implementation of a statement's inputs: the readings read row by row
into Python objects, each period's average worked out reading by reading
(:func:`settlement.statement.period_average_kw`) and each unit's digest from its rows
(:func:`settlement.statement.readings_digest`). This is how settlement read its inputs
before they were read as arrays (settlement.inputs.unit_batches); the equivalence test
settles the same month both ways and compares every statement line."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta

from dispatch import readings as dispatch_readings
from dispatch.models import AvailabilityDeclaration, Contract, MeterReading
from settlement import inputs, statement


def unit_inputs(contract: Contract, terms: statement.Terms, first: datetime,
                after: datetime) -> tuple[dict[str, statement.UnitInput],
                                          dict[str, frozenset[date]]]:
    """Each contracted unit's metered kW per period (from the look-back start, for
    baselines), nominations, declared availability spans, and dispatched days."""
    units = list(contract.units.order_by("reference"))
    lookback = timedelta(days=(terms.baseline.lookback_days if terms.baseline else 30) + 2)
    since = first - lookback
    rows = MeterReading.objects.filter(
        unit__in=units, superseded_at__isnull=True, start__gte=since,
        start__lt=after).order_by("unit_id", "reading_type", "start").values_list(
        "unit_id", "reading_type", "start", "end", "value", "version", "received_at")
    measured: dict[int, list] = defaultdict(list)
    reactive: dict[int, list] = defaultdict(list)  # kVArh, averaged like USAGE
    nominated: dict[int, dict] = defaultdict(dict)
    arrived: dict[int, dict] = defaultdict(dict)
    digests: dict[int, list] = defaultdict(list)
    for unit_id, kind, start, end, value, version, received in rows.iterator():
        digests[unit_id].append((kind, start.isoformat(), version, value))
        if kind == dispatch_readings.BASELINE:
            nominated[unit_id][start] = value
            arrived[unit_id][start] = received
        elif kind == dispatch_readings.GB_REACTIVE:
            reactive[unit_id].append((start, end, dispatch_readings.USAGE, value))
        else:
            measured[unit_id].append((start, end, kind, value))
    declared: dict[int, list] = defaultdict(list)
    for row in AvailabilityDeclaration.objects.filter(
            unit__in=units, superseded_at__isnull=True, start__lt=after, end__gt=first):
        declared[row.unit_id].append((row.start, row.end, row.available_kw, row.declared_at))
    days = inputs.dispatched_days([u.pk for u in units], since, after)
    lost = inputs.comms_lost_spans({u.site_id for u in units}, first, after)
    found = {}
    for unit in units:
        spans = dispatch_readings.declared_profile(declared[unit.pk], first, after)
        found[unit.reference] = statement.UnitInput(
            reference=unit.reference, direction=unit.direction, capacity_kw=unit.capacity_kw,
            actual_kw=statement.period_average_kw(measured[unit.pk], terms.period_minutes),
            nominated_kw=nominated[unit.pk], nominated_received=arrived[unit.pk],
            declarations=tuple((s.start, s.end, s.available_kw) for s in spans
                               if s.available_kw is not None),
            readings_sha256=statement.readings_digest(digests[unit.pk]),
            readings_count=len(digests[unit.pk]), comms_lost=tuple(lost.get(unit.site_id, ())),
            reactive_kvar=statement.period_average_kw(reactive[unit.pk], terms.period_minutes))
    return found, {unit.reference: days.get(unit.pk, frozenset()) for unit in units}


def statement_document(contract: Contract, year: int, month: int, version: int) -> dict:
    """The statement document computed from the reference inputs."""
    terms = inputs.terms_of(contract)
    first, after = statement.month_bounds(year, month)
    units, days = unit_inputs(contract, terms, first, after)
    return statement.build_statement(
        terms=terms, year=year, month=month, version=version, units=units,
        dispatches=inputs.month_dispatches(contract, first, after), dispatched_days=days)
