"""Packed reading days (:class:`dispatch.models.ReadingDay`) hold exactly the current
readings they pack, whatever wrote the readings: the intake rule (new, repeated,
corrected readings), direct writes that change, move or delete readings, the retention
purge, and two transactions writing one unit's day at once. On SQLite nothing is packed
(settlement reads the rows there)."""

from __future__ import annotations

import struct
import threading
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction

from dispatch import intake, readings, retention
from dispatch.models import DispatchUnit, MeterReading, ReadingDay, ReportIntake

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
MISSING = -(2**63)
# 22:00 UTC on 30 June 2026 is 23:00 in London: the readings cross a UTC day and a
# London day at different moments.
START = datetime(2026, 6, 30, 22, 0, tzinfo=UTC)


def _micro(instant: datetime) -> int:
    return (instant - EPOCH) // timedelta(microseconds=1)


def packed_from_rows() -> dict[tuple[int, str, object], bytes]:
    """What the packed days must hold, worked out from the readings themselves."""
    days: dict[tuple[int, str, object], list[bytes]] = defaultdict(list)
    for row in MeterReading.objects.filter(superseded_at__isnull=True).order_by(
            "unit_id", "reading_type", "start"):
        value = MISSING if row.value is None else int(row.value.scaleb(6))
        days[row.unit_id, row.reading_type, row.start.astimezone(UTC).date()].append(
            struct.pack(">qqqq", _micro(row.start), _micro(row.end), row.version, value))
    return {key: b"".join(parts) for key, parts in days.items()}


def stored() -> dict[tuple[int, str, object], bytes]:
    return {(day.unit_id, day.reading_type, day.day): bytes(day.readings)
            for day in ReadingDay.objects.all()}


def assert_packed() -> None:
    if connection.vendor == "postgresql":
        assert stored() == packed_from_rows()
    else:
        assert stored() == {}


def reading(unit: str, start: datetime, value: str | None, *, kind: str = readings.USAGE,
            correction: bool = False) -> readings.Reading:
    return readings.Reading(unit, kind, start, start + timedelta(minutes=30),
                            None if value is None else Decimal(value),
                            "MISSING" if value is None else "OK", correction)


def take_in(gb, items: list[readings.Reading]) -> intake.Outcome:
    """The readings taken in by the intake rule, as a report's are (units locked)."""
    with transaction.atomic():
        units = {unit.reference: unit for unit in DispatchUnit.objects.select_for_update()
                 .filter(reference__in={item.unit for item in items}).order_by("pk")}
        report = ReportIntake.objects.create(
            site=next(iter(units.values())).site, kind="metering", report_id="test",
            client_id="test", received_at=datetime.now(UTC))
        return intake.take_in([(units[item.unit].pk, item) for item in items],
                              intakes={unit.pk: report.pk for unit in units.values()},
                              now=datetime.now(UTC))


@pytest.fixture
def day_of_readings(gb) -> None:
    """Five half-hours of bat1 and hp1 across midnight UTC, kWh and kVArh, one missing."""
    periods = [START + timedelta(minutes=30 * index) for index in range(5)]
    outcome = take_in(gb, [reading("bat1", at, f"{index}.125") for index, at in
                           enumerate(periods)]
                      + [reading("hp1", at, None if index == 2 else "-7.000001")
                         for index, at in enumerate(periods)]
                      + [reading("hp1", at, "3", kind=readings.GB_REACTIVE) for at in periods])
    assert outcome.stored == 15


def test_new_repeated_and_corrected_readings_are_packed_as_held(gb, day_of_readings):
    assert_packed()
    if connection.vendor == "postgresql":
        assert {(unit, kind, str(day)) for unit, kind, day in stored()} == {
            (unit.pk, kind, day) for unit in DispatchUnit.objects.filter(
                reference__in=("bat1", "hp1"))
            for kind in (readings.USAGE, readings.GB_REACTIVE)
            for day in ("2026-06-30", "2026-07-01")
            if kind == readings.USAGE or unit.reference == "hp1"}
    before = stored()
    again = take_in(gb, [reading("bat1", START, "0.125")])
    assert again.duplicates == 1 and stored() == before
    fixed = take_in(gb, [reading("bat1", START + timedelta(hours=2), "99.5", correction=True),
                         reading("hp1", START + timedelta(hours=1), "4", correction=True)])
    assert fixed.corrections == 2
    assert_packed()
    assert MeterReading.objects.filter(version=2).count() == 2


def test_direct_writes_that_change_move_or_delete_readings_are_packed(gb, day_of_readings):
    rows = MeterReading.objects.filter(unit__reference="bat1", reading_type=readings.USAGE)
    rows.filter(start=START).update(value=Decimal("42"))
    assert_packed()
    # moved to another day: both days are packed again
    rows.filter(start=START + timedelta(minutes=30)).update(
        start=START + timedelta(days=3), end=START + timedelta(days=3, minutes=30))
    assert_packed()
    # a change of a column no packed day holds packs nothing again, and changes nothing
    before = stored()
    rows.update(quality="ESTIMATED")
    assert stored() == before
    # every reading of a day deleted: the day is gone
    MeterReading.objects.filter(start__lt=datetime(2026, 7, 1, tzinfo=UTC)).delete()
    assert_packed()
    MeterReading.objects.all().delete()
    assert stored() == {}


def test_emptying_the_readings_table_empties_the_packed_days(gb, day_of_readings):
    if connection.vendor == "postgresql":
        assert stored()
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # checks of this test's inserts
            cursor.execute(f"TRUNCATE {MeterReading._meta.db_table}")
    else:
        MeterReading.objects.all().delete()
    assert not MeterReading.objects.exists()
    assert stored() == {}


def test_the_retention_purge_leaves_the_packed_days_of_what_it_keeps(gb, day_of_readings):
    done = retention.purge(now=START + timedelta(days=10, hours=1, minutes=15),
                           policy=retention.Policy(heartbeat_days=0, security_log_days=0,
                                                   meter_reading_days=10))
    assert done["meter_readings"] > 0
    assert MeterReading.objects.exists()
    assert_packed()


@pytest.mark.django_db(transaction=True)
def test_two_transactions_writing_one_units_day_at_once_are_both_packed(gb):
    """The second writer's packing waits for the first to commit, then packs both: with
    no unit lock of its own neither writer would see the other's readings."""
    bat1 = DispatchUnit.objects.get(reference="bat1")
    report = ReportIntake.objects.create(site=bat1.site, kind="metering", report_id="test",
                                         client_id="test", received_at=datetime.now(UTC))
    first_written, failures = threading.Event(), []

    def write(index: int) -> None:
        try:
            with transaction.atomic():
                MeterReading.objects.bulk_create([MeterReading(
                    unit=bat1, reading_type=readings.USAGE,
                    start=START + timedelta(hours=index, minutes=30 * step),
                    end=START + timedelta(hours=index, minutes=30 * step + 30),
                    value=Decimal(index + step), version=1, received_at=report.received_at,
                    intake=report) for step in range(2)])
                if index == 0:
                    first_written.set()
                    threading.Event().wait(0.5)  # the other writer reaches its packing
        except Exception as exc:  # noqa: BLE001 - reported below, in the test's thread
            failures.append(exc)
        finally:
            connection.close()

    first = threading.Thread(target=write, args=(0,))
    first.start()
    assert first_written.wait(30)
    second = threading.Thread(target=write, args=(1,))
    second.start()
    first.join(60)
    second.join(60)
    assert failures == []
    assert MeterReading.objects.count() == 4
    assert_packed()
