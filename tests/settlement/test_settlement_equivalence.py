"""The statement run reads each batch of units' readings as arrays
(settlement.inputs.unit_batches, settlement.calc.metering); the reference reads them row
by row into Python objects (tests/settlement/reference.py), as settlement did before.
Both settle the same month of random data for a few hundred units under every baseline
method, and every statement line, total and digest must be the same."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection

from dispatch import issuing, onboarding, programs, registry
from dispatch.models import Contract, DispatchUnit, MeterReading, ReportIntake
from dispatch.rules import Timing
from settlement import inputs, services, statement
from settlement.models import SettlementTerms
from tests.settlement import reference

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

MONTH = services.Month(2026, 10)  # ends with the autumn clock change (25 October)
UNITS = 200
# (baseline method, period minutes, terms) of each contract; units are shared out in turn.
CONTRACTS = [
    ("high-3-of-5", 30, {"penalty_rate_gbp": Decimal("50")}),
    ("average-4", 30, {"scale_below": Decimal("0.8"), "nothing_below": Decimal("0.5")}),
    ("meter-before-4", 30, {"pay_over_delivery": True, "deficiency_rule": "adjusted_baseline",
                            "penalty_rate_gbp": Decimal("12.5"),
                            "penalty_basis": "per_mw_per_period"}),
    ("nominated", 30, {}),
    ("high-2-of-4", 15, {"penalty_rate_gbp": Decimal("3"), "penalty_basis": "flat_per_period"}),
]


def _value(rng: random.Random, base: float) -> Decimal | None:
    if rng.random() < 0.004:
        return None  # flagged missing
    digits = rng.choice((3, 3, 3, 6))
    return Decimal(f"{base + rng.uniform(-8, 8):.{digits}f}")


# A reading as stored: unit, type, start, end, value (None: missing), quality, received,
# intake; version 1 (a correction, below, adds version 2).
Reading = tuple[int, str, datetime, datetime, Decimal | None, str, datetime, int]
COLUMNS = ("unit_id", "reading_type", "start", "end", "value", "quality", "received_at",
           "intake_id")


def _store(rows: list[Reading]) -> None:
    """Insert the readings: with COPY on PostgreSQL (a hundred times faster than INSERTs),
    the rows written in COPY's text format here rather than one call per row."""
    if connection.vendor != "postgresql":
        MeterReading.objects.bulk_create(
            [MeterReading(**dict(zip(COLUMNS, row, strict=True)), version=1) for row in rows],
            batch_size=5000)
        return
    instants: dict[datetime, str] = {}

    def instant(value: datetime) -> str:
        text = instants.get(value)
        if text is None:
            text = instants[value] = value.isoformat()
        return text

    quoted = ", ".join(f'"{column}"' for column in (*COLUMNS, "version"))
    missing = "\\N"
    lines = [f"{unit}\t{kind}\t{instant(start)}\t{instant(end)}\t"
             f"{missing if value is None else value}\t{quality}\t{instant(received)}\t"
             f"{intake}\t1\n"
             for unit, kind, start, end, value, quality, received, intake in rows]
    with connection.cursor() as cursor, cursor.connection.cursor().copy(
            f"COPY {MeterReading._meta.db_table} ({quoted}) FROM STDIN") as copy:
        for first in range(0, len(lines), 10000):
            copy.write("".join(lines[first:first + 10000]))


@pytest.fixture
def fleet(db):
    """UNITS units (a fifth exporting) in five contracts, with dispatches in the last
    fortnight of October, readings from mid-September (some DEMAND, some missing, some
    corrected, some at 15 minutes, one off the grid), nominations and declarations."""
    programs.load_products()
    rng = random.Random(20261029)
    specs = []
    for index in range(UNITS):
        direction = "export" if index % 5 == 4 else "import"
        specs.append(registry.parse_unit_spec(f"e{index:03d}:400:{direction}"))
    onboarding.onboard_fsp(operator="ENWL", fsp="eqv", site="main", units=specs)
    references = [f"e{index:03d}" for index in range(UNITS)]
    reactive = {ref for index, ref in enumerate(references) if index % 9 == 2}
    DispatchUnit.objects.filter(reference__in=reactive).update(capacity_kvar=Decimal(300))
    contracts = []
    for number, (method, minutes, terms) in enumerate(CONTRACTS):
        members = references[number::len(CONTRACTS)]
        contract = onboarding.create_contract(
            operator="ENWL", identifier=f"C-EQ{number}", fsp="eqv", product="DYNAMIC",
            units=members, availability_price=Decimal("4.25"),
            utilisation_price=Decimal("287.5"), baseline_method=method)
        Contract.objects.filter(pk=contract.pk).update(
            reactive_utilisation_price=Decimal("18.5"),
            emergency_premium_percent=Decimal("12.5") if number % 2 else None)
        SettlementTerms.objects.create(contract=contract, period_minutes=minutes, **terms)
        contracts.append(contract)
    first, after = MONTH.bounds()
    since = first + timedelta(days=8)  # enough history for every dispatch's baseline
    units = {u.reference: u for u in DispatchUnit.objects.filter(reference__in=references)}
    minutes_of = {ref: CONTRACTS[i % len(CONTRACTS)][1] for i, ref in enumerate(references)}
    product = programs.find_product("DYNAMIC")
    dispatch_starts: dict[str, list[datetime]] = {}
    for index, ref in enumerate(references):
        unit, starts = units[ref], []
        for day in rng.sample(range(20, 31), 2 if index % 4 == 0 else 1):
            start = first + timedelta(days=day, hours=rng.choice((0, 1, 7, 17)),
                                      minutes=rng.choice((0, 10, 30)))
            end = start + timedelta(minutes=rng.choice((60, 90, 120)))
            kind = "absolute" if index % 7 == 3 else "delta"
            volume = Decimal(rng.choice((20, 35, 60)) if kind == "delta"
                             else rng.choice((40, 90)))
            price = Decimal("0.35") if index % 8 == 6 else None  # instructed GBP per kWh
            service = "reactive" if ref in reactive and len(starts) == 0 else "real"
            if service == "reactive":
                kind, volume = "absolute", Decimal(rng.choice((80, 150)))
            timings = [Timing(setpoint_time=start, volume=volume, setpoint_type=kind,
                              service_type=service, price_gbp_per_kwh=price)]
            if index % 6 == 1:  # a second setpoint part-way
                timings.append(Timing(setpoint_time=start + timedelta(minutes=40),
                                      volume=volume + 10, setpoint_type=kind,
                                      service_type=service))
            dispatch = issuing.issue_dispatch(
                unit=unit, service_start=start, service_end=end, timings=timings,
                product=product, issued_by="test", now=start - timedelta(hours=3),
                urgency=("advisory", "warning", "emergency")[index % 3])
            if index % 11 == 5:
                issuing.stop_dispatch(dispatch=dispatch, issued_by="test",
                                      now=start + timedelta(minutes=45))
            starts.append(start)
        dispatch_starts[ref] = starts
    rows: list[Reading] = []
    received = after + timedelta(hours=6)
    intakes = {}
    for ref in references:
        unit = units[ref]
        if unit.site_id not in intakes:
            intakes[unit.site_id] = ReportIntake.objects.create(
                site_id=unit.site_id, kind="metering", report_id="eq", client_id="test",
                received_at=received)
        intake = intakes[unit.site_id].pk
        if ref == "e017":
            continue  # a unit without any readings
        sign = -1 if unit.direction == "export" else 1
        base = sign * rng.uniform(30, 80)
        step = timedelta(minutes=15 if (ref in ("e011", "e023") or minutes_of[ref] == 15)
                         else 30)
        hours = step / timedelta(hours=1)
        moment = since
        while moment < after:
            kind = "DEMAND" if ref in ("e002", "e009") and moment.day % 3 == 0 else "USAGE"
            value = _value(rng, base * hours if kind == "USAGE" else base)
            rows.append((unit.pk, kind, moment, moment + step, value,
                         "MISSING" if value is None else "OK", received, intake))
            if ref in reactive:  # reactive energy, kVArh (some missing)
                rows.append((unit.pk, "GB_REACTIVE", moment, moment + step,
                             _value(rng, -40 * hours), "OK", received, intake))
            if ref in ("e004", "e014") and moment.hour == 12:  # DEMAND beside USAGE
                rows.append((unit.pk, "DEMAND", moment, moment + step, _value(rng, base),
                             "OK", received, intake))
            moment += step
        if CONTRACTS[references.index(ref) % len(CONTRACTS)][0] == "nominated":
            for start in dispatch_starts[ref]:
                floor = start.replace(minute=0)
                for k in range(6):
                    rows.append((unit.pk, "BASELINE", floor + k * step, floor + (k + 1) * step,
                                 Decimal(f"{abs(base) + k:.3f}"), "OK",
                                 start - timedelta(hours=2 if k != 5 else 0), intake))
    odd = units["e031"]  # a reading off the period grid, with fractional seconds
    rows.append((odd.pk, "USAGE", datetime(2026, 10, 20, 9, 0, 7, 250000, tzinfo=UTC),
                 datetime(2026, 10, 20, 9, 20, tzinfo=UTC), Decimal("3.5"), "OK", received,
                 intakes[odd.site_id].pk))
    _store(rows)
    for ref in ("e001", "e006", "e013", "e020"):  # corrections: version 2 supersedes 1
        for start in dispatch_starts[ref][:1]:
            old = MeterReading.objects.get(unit=units[ref], reading_type="USAGE",
                                           start=start.replace(minute=0))
            MeterReading.objects.filter(pk=old.pk).update(superseded_at=received)
            new = MeterReading.objects.create(
                unit=old.unit, reading_type="USAGE", start=old.start, end=old.end,
                value=Decimal("1.000001"), version=2, received_at=received,
                intake=old.intake)
            MeterReading.objects.filter(pk=old.pk).update(superseded_by=new)
    return contracts


def test_the_array_path_settles_every_line_as_the_reference_does(fleet, monkeypatch):
    monkeypatch.setattr(inputs, "BATCH_UNITS", 13)  # many batches, one left short
    utilisation = held = reactive = 0
    for contract in fleet:
        contract = Contract.objects.get(pk=contract.pk)
        expected = reference.statement_document(contract, MONTH.year, MONTH.month, 1)
        got = services.compute_document(contract, MONTH, 1)
        assert len(got["lines"]) == len(expected["lines"])
        for mine, theirs in zip(got["lines"], expected["lines"], strict=True):
            assert mine == theirs
        assert got["inputs"] == expected["inputs"]
        assert got == expected
        assert statement.canonical_bytes(got) == statement.canonical_bytes(expected)
        utilisation += sum(1 for line in got["lines"] if line["kind"] == "utilisation")
        held += sum(1 for line in got["lines"] if line["kind"] == "held")
        reactive += sum(1 for line in got["lines"] if line["kind"] == "reactive")
    # The data exercise what is compared: priced lines, reactive lines and held ones.
    assert utilisation > 300 and held > 3 and reactive > 10
