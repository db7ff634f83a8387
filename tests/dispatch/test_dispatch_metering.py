"""Meter readings and availability declarations posted as OpenADR reports on the FSP's
standing events: stored for settlement, duplicates and corrections explicit, bad values
rejected with a reason, declared availability set against the contract."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from dispatch import readings
from dispatch.models import AvailabilityDeclaration, MeterReading, ReportIntake
from tests.dispatch.test_dispatch_api import Api
from tests.fixtures.api import new_actor

pytestmark = pytest.mark.django_db

PAST = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=1)


def z(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def half_hours(start: datetime, values: list, payload: str = "USAGE", **extra) -> list[dict]:
    intervals = []
    for index, value in enumerate(values):
        payloads = [{"type": payload, "values": [value]}]
        payloads += [{"type": name, "values": [v]} for name, v in extra.items()]
        intervals.append({"id": index, "intervalPeriod": {
            "start": z(start + timedelta(minutes=30 * index)), "duration": "PT30M"},
            "payloads": payloads})
    return intervals


def post_report(site, kind: str, resources: list[dict], capture, *, version: str = "3.1.0",
                descriptors: list[dict] | None = None) -> ReportIntake | None:
    event_id = site.onboarding[f"{kind}_event_id"]
    api = site.api(version)
    event = api.get(f"/events/{event_id}")
    assert event.status == 200, event.json  # the FSP's VEN sees its own standing events
    body = {"programID": event.json["programID"], "eventID": event_id,
            "clientName": "agent", "reportName": kind, "resources": resources}
    if descriptors is not None:
        body["payloadDescriptors"] = [{"objectType": "REPORT_PAYLOAD_DESCRIPTOR", **d}
                                      for d in descriptors]
    before = set(ReportIntake.objects.values_list("id", flat=True))
    with capture(execute=True):
        reply = api.post("/reports", body)
    assert reply.status == 201, reply.json
    return ReportIntake.objects.exclude(id__in=before).first()


def current(unit: str = "bat1", reading_type: str = "USAGE"):
    return list(MeterReading.objects.filter(unit__reference=unit, reading_type=reading_type,
                                            superseded_at__isnull=True).order_by("start"))


# --- meter readings ---------------------------------------------------------------------------

def test_onboarding_creates_standing_events_only_the_fsp_sees(gb):
    for kind in ("heartbeat", "availability", "metering"):
        event_id = gb.acme.onboarding[f"{kind}_event_id"]
        assert gb.acme.api("3.1.0").get(f"/events/{event_id}").status == 200
        assert gb.zeta.api("3.1.0").get(f"/events/{event_id}").status == 404
        assert gb.acme.api("3.0.1").get(f"/events/{event_id}").status == 200


def test_readings_are_stored_per_unit_type_and_period(gb, django_capture_on_commit_callbacks):
    intake = post_report(gb.acme, "metering", [
        {"resourceName": "bat1", "intervals": half_hours(PAST, [-120.5, -130, -90])},
        {"resourceName": "hp1", "intervals": half_hours(PAST, [55, 60], payload="DEMAND")}],
        django_capture_on_commit_callbacks)
    assert (intake.stored, intake.duplicates, intake.corrections, intake.rejected) == (5, 0, 0, 0)
    assert intake.kind == "metering" and intake.site.name == "north"
    rows = current()
    assert [(r.start, r.end, r.value, r.version) for r in rows] == [
        (PAST + timedelta(minutes=30 * i), PAST + timedelta(minutes=30 * (i + 1)), Decimal(v), 1)
        for i, v in enumerate(["-120.5", "-130", "-90"])]
    assert [r.value for r in current("hp1", "DEMAND")] == [Decimal(55), Decimal(60)]


def test_units_of_the_payload_descriptors_are_converted(gb, django_capture_on_commit_callbacks):
    post_report(gb.acme, "metering", [
        {"resourceName": "bat1", "intervals": half_hours(PAST, [1500])},
        {"resourceName": "hp1", "intervals": half_hours(PAST, [0.25], payload="DEMAND")}],
        django_capture_on_commit_callbacks, descriptors=[
            {"payloadType": "USAGE", "readingType": "DIRECT_READ", "units": "WH"},
            {"payloadType": "DEMAND", "readingType": "MEAN", "units": "MW"}])
    assert current()[0].value == Decimal("1.5")
    assert current("hp1", "DEMAND")[0].value == Decimal(250)


def test_a_unit_the_profile_does_not_know_is_rejected_with_a_reason(
        gb, django_capture_on_commit_callbacks):
    intake = post_report(gb.acme, "metering", [
        {"resourceName": "bat1", "intervals": half_hours(PAST, [1])}],
        django_capture_on_commit_callbacks,
        descriptors=[{"payloadType": "USAGE", "units": "THERM"}])
    assert intake.stored == 0 and intake.rejected == 1
    assert "THERM" in intake.problems[0]["detail"] and not MeterReading.objects.exists()


def test_sending_the_same_readings_again_is_a_duplicate_not_a_new_row(
        gb, django_capture_on_commit_callbacks):
    resources = [{"resourceName": "bat1", "intervals": half_hours(PAST, [10, 20])}]
    post_report(gb.acme, "metering", resources, django_capture_on_commit_callbacks)
    again = post_report(gb.acme, "metering", resources, django_capture_on_commit_callbacks)
    assert (again.stored, again.duplicates, again.rejected) == (0, 2, 0)
    assert MeterReading.objects.count() == 2


def test_a_different_value_without_correction_mark_is_a_conflict_and_changes_nothing(
        gb, django_capture_on_commit_callbacks):
    post_report(gb.acme, "metering", [
        {"resourceName": "bat1", "intervals": half_hours(PAST, [10])}],
        django_capture_on_commit_callbacks)
    clash = post_report(gb.acme, "metering", [
        {"resourceName": "bat1", "intervals": half_hours(PAST, [11])}],
        django_capture_on_commit_callbacks)
    assert clash.rejected == 1 and clash.problems[0]["outcome"] == "conflict"
    assert "GB_CORRECTION" in clash.problems[0]["detail"]
    assert [r.value for r in current()] == [Decimal(10)] and MeterReading.objects.count() == 1


def test_a_correction_supersedes_and_keeps_the_earlier_version(
        gb, django_capture_on_commit_callbacks):
    post_report(gb.acme, "metering", [
        {"resourceName": "bat1", "intervals": half_hours(PAST, [10, 20])}],
        django_capture_on_commit_callbacks)
    fixed = post_report(gb.acme, "metering", [
        {"resourceName": "bat1", "intervals": half_hours(PAST, [12], GB_CORRECTION=True)}],
        django_capture_on_commit_callbacks)
    assert (fixed.stored, fixed.corrections, fixed.rejected) == (0, 1, 0)
    first, second = MeterReading.objects.filter(start=PAST).order_by("version")
    assert (first.value, first.version, second.value, second.version) == (
        Decimal(10), 1, Decimal(12), 2)
    assert first.superseded_at is not None and first.superseded_by == second
    assert second.superseded_at is None
    assert [r.value for r in current()] == [Decimal(12), Decimal(20)]
    again = post_report(gb.acme, "metering", [  # the same correction twice: a duplicate
        {"resourceName": "bat1", "intervals": half_hours(PAST, [12], GB_CORRECTION=True)}],
        django_capture_on_commit_callbacks)
    assert (again.corrections, again.duplicates) == (0, 1)


def test_one_report_naming_a_period_twice_is_taken_in_order(
        gb, django_capture_on_commit_callbacks):
    """The same period twice in one report: the repeat is a duplicate, a changed value a
    conflict, and a correction a new version of the reading stored just before."""
    first = half_hours(PAST, [10, 20])
    repeat = half_hours(PAST, [10])
    changed = half_hours(PAST + timedelta(minutes=30), [21])
    corrected = half_hours(PAST, [11], GB_CORRECTION=True)
    intake = post_report(gb.acme, "metering", [
        {"resourceName": "bat1", "intervals": first + repeat + changed + corrected}],
        django_capture_on_commit_callbacks)
    assert (intake.stored, intake.duplicates, intake.corrections, intake.rejected) == (
        2, 1, 1, 1)
    assert intake.problems[0]["outcome"] == "conflict"
    assert [(r.value, r.version) for r in current()] == [(Decimal(11), 2), (Decimal(20), 1)]
    old = MeterReading.objects.get(start=PAST, version=1)
    assert old.superseded_by == MeterReading.objects.get(start=PAST, version=2)


def test_missing_readings_are_stored_as_missing_never_as_zero(
        gb, django_capture_on_commit_callbacks):
    post_report(gb.acme, "metering", [
        {"resourceName": "bat1", "intervals": half_hours(PAST, [0], DATA_QUALITY="MISSING")}],
        django_capture_on_commit_callbacks)
    (row,) = current()
    assert row.value is None and row.quality == "MISSING"


def test_bad_values_are_rejected_and_good_ones_in_the_same_report_kept(
        gb, django_capture_on_commit_callbacks):
    future = datetime.now(UTC) + timedelta(hours=3)
    intake = post_report(gb.acme, "metering", [
        {"resourceName": "bat1", "intervals": [
            *half_hours(PAST, [5]),
            {"id": 1, "intervalPeriod": {"start": z(PAST + timedelta(hours=1))},
             "payloads": [{"type": "USAGE", "values": [1]}]},  # no duration
            {"id": 2, "intervalPeriod": {"start": z(PAST + timedelta(hours=2)),
                                         "duration": "PT30M"},
             "payloads": [{"type": "USAGE", "values": ["lots"]}]},
            {"id": 3, "intervalPeriod": {"start": z(future), "duration": "PT30M"},
             "payloads": [{"type": "USAGE", "values": [1]}]},
            {"id": 4, "intervalPeriod": {"start": z(PAST), "duration": "PT30M"},
             "payloads": [{"type": "DEMAND", "values": [1, 2]}]}]},
        {"resourceName": "z1", "intervals": half_hours(PAST, [5])}],  # zeta's unit
        django_capture_on_commit_callbacks)
    assert intake.stored == 1 and intake.rejected == 5
    outcomes = sorted(p["outcome"] for p in intake.problems)
    assert outcomes == ["invalid", "invalid", "invalid", "invalid", "unknown_unit"]
    assert MeterReading.objects.count() == 1


def test_baseline_nominations_may_be_for_the_future(gb, django_capture_on_commit_callbacks):
    tomorrow = PAST + timedelta(days=2)
    intake = post_report(gb.acme, "metering", [
        {"resourceName": "bat1", "intervals": half_hours(tomorrow, [-400], payload="BASELINE")}],
        django_capture_on_commit_callbacks)
    assert intake.stored == 1 and current("bat1", "BASELINE")[0].start == tomorrow


def test_resource_level_period_sequences_its_intervals(gb, django_capture_on_commit_callbacks):
    post_report(gb.acme, "metering", [{
        "resourceName": "bat1", "intervalPeriod": {"start": z(PAST), "duration": "PT15M"},
        "intervals": [{"id": i, "payloads": [{"type": "USAGE", "values": [i]}]}
                      for i in range(3)]}], django_capture_on_commit_callbacks,
        version="3.0.1")
    assert [(r.start - PAST, r.end - r.start) for r in current()] == [
        (timedelta(minutes=15 * i), timedelta(minutes=15)) for i in range(3)]


def test_the_operator_lists_readings_and_a_ven_sees_only_its_intakes(
        gb, django_capture_on_commit_callbacks):
    post_report(gb.acme, "metering", [
        {"resourceName": "bat1", "intervals": half_hours(PAST, [10])}],
        django_capture_on_commit_callbacks)
    post_report(gb.acme, "metering", [
        {"resourceName": "bat1", "intervals": half_hours(PAST, [12], GB_CORRECTION=True)}],
        django_capture_on_commit_callbacks)
    operator = Api(new_actor("operator", "bl", "3.1.0").token)
    status, rows, _ = operator.get("/meter-readings", {"unit": "acme/bat1"})
    assert status == 200 and [(r["value"], r["version"]) for r in rows] == [("12", 2)]
    assert rows[0]["units"] == "KWH" and rows[0]["start"] == z(PAST)
    status, rows, _ = operator.get("/meter-readings", {"unit": "acme/bat1", "history": "true"})
    assert [(r["value"], r["supersededAt"] is not None) for r in rows] == [
        ("10", True), ("12", False)]
    assert operator.get("/meter-readings", {"type": "NOPE"})[0] == 400
    assert operator.get("/meter-readings", {"from": "yesterday"})[0] == 400
    assert Api(gb.acme.token).get("/meter-readings")[0] == 403  # operators only
    status, mine, _ = Api(gb.acme.token).get("/report-intakes")
    assert status == 200 and [i["corrections"] for i in mine] == [1, 0]
    assert Api(gb.zeta.token).get("/report-intakes")[1] == []
    assert len(operator.get("/report-intakes", {"kind": "metering"})[1]) == 2


# --- availability declarations ----------------------------------------------------------------

TOMORROW = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(
    days=1)


def declare(unit: str, start: datetime, hours: float, kw) -> dict:
    return {"resourceName": unit, "intervals": [{"id": 0, "intervalPeriod": {
        "start": z(start), "duration": f"PT{int(hours * 60)}M"},
        "payloads": [{"type": "GB_AVAILABLE_KW", "values": [kw]}]}]}


def test_declarations_are_stored_and_a_redeclaration_supersedes(
        gb, django_capture_on_commit_callbacks):
    first = post_report(gb.acme, "availability", [declare("bat1", TOMORROW, 4, 400)],
                        django_capture_on_commit_callbacks)
    assert (first.kind, first.stored) == ("availability", 1)
    same = post_report(gb.acme, "availability", [declare("bat1", TOMORROW, 4, 400)],
                       django_capture_on_commit_callbacks)
    assert (same.stored, same.duplicates) == (0, 1)
    changed = post_report(gb.acme, "availability", [declare("bat1", TOMORROW, 4, 350)],
                          django_capture_on_commit_callbacks)
    assert changed.corrections == 1
    old, new = AvailabilityDeclaration.objects.order_by("id")
    assert old.superseded_by == new and new.available_kw == Decimal(350)


def test_late_negative_and_foreign_declarations_are_rejected(
        gb, django_capture_on_commit_callbacks):
    intake = post_report(gb.acme, "availability", [
        declare("bat1", datetime.now(UTC) - timedelta(hours=1), 2, 100),
        declare("hp1", TOMORROW, 2, -5),
        declare("z1", TOMORROW, 2, 50)], django_capture_on_commit_callbacks)
    assert intake.stored == 0 and sorted(p["outcome"] for p in intake.problems) == [
        "invalid", "late", "unknown_unit"]
    assert not AvailabilityDeclaration.objects.exists()


def test_the_operator_sees_declared_against_contracted(gb, django_capture_on_commit_callbacks):
    from dispatch import onboarding

    onboarding.create_contract(
        operator="ENWL", identifier="C-AV", fsp="acme", product="SECURE", units=["bat1", "hp1"],
        capacity_kw=Decimal(600),
        service_windows=[(TOMORROW + timedelta(hours=16), TOMORROW + timedelta(hours=20))])
    post_report(gb.acme, "availability", [
        declare("bat1", TOMORROW + timedelta(hours=16), 4, 500),
        declare("hp1", TOMORROW + timedelta(hours=18), 1, 900)],  # above its 200 kW capacity
        django_capture_on_commit_callbacks)
    operator = Api(new_actor("operator", "bl", "3.1.0").token)
    status, shown, _ = operator.get("/contracts/ENWL/C-AV/availability", {
        "from": z(TOMORROW), "to": z(TOMORROW + timedelta(days=1))})
    assert status == 200, shown
    (window,) = shown["windows"]
    assert (window["start"], window["end"]) == (z(TOMORROW + timedelta(hours=16)),
                                                z(TOMORROW + timedelta(hours=20)))
    assert [(s["start"][11:16], s["end"][11:16], s["declaredKw"], s["shortfallKw"],
             s["units"]) for s in window["spans"]] == [
        ("16:00", "18:00", "500", "100", {"bat1": "500", "hp1": None}),
        ("18:00", "19:00", "700", "0", {"bat1": "500", "hp1": "900"}),
        ("19:00", "20:00", "500", "100", {"bat1": "500", "hp1": None})]
    assert shown["contractedKw"] == "600"
    # 2 h x 500 + 1 h x 600 (capped at contracted) + 1 h x 500 = 2.1 of 2.4 MWh
    assert shown["summary"] == {"contractedHours": "4", "contractedMwh": "2.4",
                                "declaredMwh": "2.1", "coverage": "0.875"}
    assert operator.get("/contracts/ENWL/C-AV/availability", {"from": z(TOMORROW)})[0] == 400
    assert operator.get("/contracts/ENWL/NOPE/availability", {
        "from": z(TOMORROW), "to": z(TOMORROW + timedelta(days=1))})[0] == 404
    assert Api(gb.acme.token).get("/contracts/ENWL/C-AV/availability", {
        "from": z(TOMORROW), "to": z(TOMORROW + timedelta(days=1))})[0] == 403


def test_a_later_overlapping_declaration_wins_over_the_overlap():
    t0 = TOMORROW
    spans = readings.declared_profile([
        (t0, t0 + timedelta(hours=4), Decimal(100), t0 - timedelta(hours=5)),
        (t0 + timedelta(hours=1), t0 + timedelta(hours=2), Decimal(40), t0 - timedelta(hours=3))],
        t0, t0 + timedelta(hours=5))
    assert [(s.start - t0, s.end - t0, s.available_kw) for s in spans] == [
        (timedelta(0), timedelta(hours=1), Decimal(100)),
        (timedelta(hours=1), timedelta(hours=2), Decimal(40)),
        (timedelta(hours=2), timedelta(hours=4), Decimal(100)),
        (timedelta(hours=4), timedelta(hours=5), None)]


def test_declarations_that_do_not_overlap_give_the_profile_of_the_general_rule():
    """Declarations side by side (the usual case, walked in order) against the rule for
    overlapping ones: the same spans, merged where the same kW continues."""
    rng = random.Random(5)
    t0 = TOMORROW
    for _ in range(200):
        declarations, moment = [], t0 - timedelta(hours=rng.randint(0, 3))
        for _ in range(rng.randint(0, 8)):
            moment += timedelta(minutes=30 * rng.randint(0, 3))
            length = timedelta(minutes=30 * rng.randint(1, 4))
            declarations.append((moment, moment + length, Decimal(rng.choice((0, 40, 100))),
                                 t0 - timedelta(minutes=rng.randint(1, 10**4))))
            moment += length
        rng.shuffle(declarations)
        start = t0 + timedelta(minutes=30 * rng.randint(-2, 4))
        end = start + timedelta(minutes=30 * rng.randint(1, 30))
        ordered = sorted(declarations, key=lambda d: d[3])
        assert readings.declared_profile(declarations, start, end) == \
            readings._overlapping_profile(ordered, start, end)
