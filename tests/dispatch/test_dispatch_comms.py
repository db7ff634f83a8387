"""Heartbeats and comms loss with a controlled clock: last seen on every poll (throttled,
no queries while nothing is due), heartbeat reports, loss and restore, the beat task."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dispatch import comms, tasks
from dispatch.models import CommsState, CommsTransition, DispatchUnit, FspSite, HeartbeatRecord
from dispatch.scope import Scope
from tests.dispatch.test_dispatch_api import Api

pytestmark = pytest.mark.django_db


class Clock:
    def __init__(self, monkeypatch):
        self.now = timezone.now().replace(microsecond=0)
        self.start = self.now
        monkeypatch.setattr(comms, "clock", lambda: self.now)

    def at(self, seconds: float):
        self.now = self.start + timedelta(seconds=seconds)
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    return Clock(monkeypatch)


def site(name: str = "north") -> FspSite:
    return FspSite.objects.get(name=name)


def poll(world_site) -> None:
    reply = world_site.api("3.1.0").get("/events")
    assert reply.status == 200, reply.json


def test_a_poll_records_last_seen_at_most_once_per_resolution(gb, clock):
    assert site().comms_state == CommsState.UNKNOWN and site().last_seen is None
    poll(gb.acme)
    north = site()
    assert north.last_seen == clock.start and north.comms_state == CommsState.ONLINE
    assert set(north.units.values_list("comms_state", flat=True)) == {CommsState.ONLINE}
    assert [(t.from_state, t.to_state) for t in CommsTransition.objects.all()] == [
        (CommsState.UNKNOWN, CommsState.ONLINE)]
    clock.at(10)  # within the 15 s resolution: nothing written
    poll(gb.acme)
    assert site().last_seen == clock.start
    clock.at(16)
    poll(gb.acme)
    assert site().last_seen == clock.now
    assert CommsTransition.objects.count() == 1
    assert site("main").last_seen is None  # zeta did not poll


def test_a_warm_poll_costs_no_extra_query(gb, clock):
    poll(gb.acme)
    clock.at(5)
    with CaptureQueriesContext(connection) as queries:
        poll(gb.acme)
    touched = [q["sql"] for q in queries.captured_queries
               if FspSite._meta.db_table in q["sql"] or "dispatch_" in q["sql"]]
    assert touched == []
    clock.at(20)  # due: exactly one cheap UPDATE of the site
    with CaptureQueriesContext(connection) as queries:
        poll(gb.acme)
    touched = [q["sql"] for q in queries.captured_queries if "dispatch_" in q["sql"]]
    assert len(touched) == 1 and touched[0].startswith("UPDATE"), touched


def heartbeat_body(gb, resources: list[dict]) -> dict:
    event_id = gb.acme.onboarding["heartbeat_event_id"]
    reply = gb.acme.api("3.1.0").get(f"/events/{event_id}")
    assert reply.status == 200, reply.json  # the VEN can read its heartbeat event
    return {"programID": reply.json["programID"], "eventID": event_id,
            "clientName": "acme-agent", "reportName": "heartbeat", "resources": resources}


def test_a_heartbeat_report_records_operating_state_and_available_kw(
        gb, clock, django_capture_on_commit_callbacks):
    body = heartbeat_body(gb, [
        {"resourceName": "bat1", "intervals": [{"id": 0, "payloads": [
            {"type": "OPERATING_STATE", "values": ["RUNNING_NORMAL"]},
            {"type": "GB_AVAILABLE_KW", "values": [480.5]}]}]},
        {"resourceName": "hp1", "intervals": [{"id": 0, "payloads": [
            {"type": "OPERATING_STATE", "values": ["ERROR"]}]}]},
        {"resourceName": "z1", "intervals": [{"id": 0, "payloads": [  # not acme's unit
            {"type": "OPERATING_STATE", "values": ["NORMAL"]}]}]}])
    with django_capture_on_commit_callbacks(execute=True):
        reply = gb.acme.api("3.1.0").post("/reports", body)
    assert reply.status == 201, reply.json
    record = HeartbeatRecord.objects.get()
    assert record.site == site() and record.received_at == clock.now
    assert record.units == {"bat1": {"operatingState": "RUNNING_NORMAL", "availableKw": "480.5"},
                            "hp1": {"operatingState": "ERROR"}}
    bat1 = DispatchUnit.objects.get(reference="bat1")
    assert bat1.operating_state == "RUNNING_NORMAL" and str(bat1.available_kw) == "480.500"
    assert DispatchUnit.objects.get(reference="z1").operating_state == ""
    assert site().comms_state == CommsState.ONLINE and site().last_seen == clock.now


def test_loss_is_detected_after_the_interval_and_restored_on_the_next_poll(gb, clock):
    poll(gb.acme)  # acme: MW_DISPATCH (1 min) and DYNAMIC: 60 s x 1.5 grace
    poll(gb.zeta)  # zeta: DYNAMIC only, 5 min
    assert comms.check_comms(clock.at(90)) == []
    changes = comms.check_comms(clock.at(91))
    assert [(c.site.name, c.from_state, c.to_state) for c in changes] == [
        ("north", CommsState.ONLINE, CommsState.COMMS_LOST)]
    assert changes[0].last_seen == clock.start
    assert set(site().units.values_list("comms_state", flat=True)) == {CommsState.COMMS_LOST}
    assert site("main").comms_state == CommsState.ONLINE
    assert comms.check_comms(clock.at(120)) == []  # idempotent
    assert CommsTransition.objects.filter(to_state=CommsState.COMMS_LOST).count() == 1

    clock.at(130)
    poll(gb.acme)  # restored at once, not at the next check
    north = site()
    assert north.comms_state == CommsState.ONLINE and north.comms_changed == clock.now
    assert set(north.units.values_list("comms_state", flat=True)) == {CommsState.ONLINE}
    assert comms.check_comms(clock.at(140)) == []
    assert [(t.from_state, t.to_state) for t in site().transitions.order_by("at", "id")] == [
        (CommsState.UNKNOWN, CommsState.ONLINE), (CommsState.ONLINE, CommsState.COMMS_LOST),
        (CommsState.COMMS_LOST, CommsState.ONLINE)]


def test_a_never_seen_site_is_lost_counting_from_its_creation(gb, clock):
    created = site().created
    clock.now = created + timedelta(seconds=91)
    changes = comms.check_comms()
    assert [(c.site.name, c.from_state, c.to_state) for c in changes] == [
        ("north", CommsState.UNKNOWN, CommsState.COMMS_LOST)]


def test_the_celery_task_runs_in_process_and_is_scheduled(gb, clock):
    from django_celery_beat.models import PeriodicTask

    # apply() runs the task in this process whether or not a broker is configured.
    poll(gb.acme)
    clock.at(100)
    assert tasks.check_comms.apply().get() == [
        {"site": "ENWL/acme/north", "from": "online", "to": "comms_lost",
         "at": clock.now.isoformat()}]
    assert tasks.check_comms.apply().get() == []
    scheduled = PeriodicTask.objects.get(task=tasks.CHECK_COMMS)
    assert scheduled.enabled and scheduled.interval.every == 30
    assert scheduled.interval.period == "seconds"


def test_the_operator_sees_comms_in_the_api_and_the_command(gb, issue, clock):
    from tests.fixtures.api import new_actor

    poll(gb.acme)
    comms.check_comms(clock.at(100))
    dispatch = issue(reference="COMMS-1", confirm_comms_loss=True)  # the site is silent
    operator = Api(new_actor("operator", "bl", "3.1.0").token)
    status, listed, _ = operator.get("/sites")
    assert status == 200, listed
    north = next(s for s in listed if s["name"] == "north")
    assert north["state"] == "comms_lost" and north["heartbeatIntervalSeconds"] == 60
    assert north["lastSeen"] == clock.start.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert [(t["from"], t["to"]) for t in north["transitions"]] == [
        ("unknown", "online"), ("online", "comms_lost")]
    assert {u["reference"]: u["commsState"] for u in north["units"]} == {
        "bat1": "comms_lost", "hp1": "comms_lost"}
    assert operator.get("/sites", {"state": "comms_lost"})[1] == [north]
    assert operator.get("/sites", {"state": "nope"})[0] == 400

    status, shown, _ = operator.get(f"/dispatches/ENWL/{dispatch.reference}")
    assert status == 200 and shown["comms"]["state"] == "comms_lost"

    out = StringIO()
    call_command("dispatch", "comms", "--check", stdout=out)
    printed = json.loads(out.getvalue())
    assert printed["checked"] is True
    assert {s["site"]: s["state"] for s in printed["sites"]}["ENWL/acme/north"] == "comms_lost"

    clock.at(110)
    assert Api(gb.acme.token).get("/sites")[0] == 403  # VENs do not see the registry...
    assert site().comms_state == CommsState.ONLINE  # ...but any request of theirs counts


# --- the VTN's own outages ----------------------------------------------------------------------

def test_the_vtns_own_outage_is_not_counted_against_a_site(gb, clock, settings):
    from vtn import serving

    settings.VTN_SERVING_BEAT_SECONDS = 1
    poll(gb.acme)  # north seen at 0; the web tier beats every second until 5 ...
    for second in range(0, 6):
        serving.beat(clock.start + timedelta(seconds=second))
    # ... then nothing serves for 120 s (its heartbeat stops), and comes back at 125.
    for second in range(125, 131):
        serving.beat(clock.start + timedelta(seconds=second))
    assert serving.outages(clock.start, clock.at(131)) == [
        (clock.start + timedelta(seconds=5), clock.start + timedelta(seconds=125))]
    # 131 s since north was seen, 120 of them the VTN's: 11 s of silence is not a loss.
    assert comms.check_comms(clock.at(131)) == []
    assert site().comms_state == CommsState.ONLINE
    # While the VTN is down (no beat for longer than three beats) nothing is lost either.
    assert comms.check_comms(clock.at(300)) == []
    # Once it serves again, the site's own silence counts: 90 s of it (x1.5 of 60 s).
    for second in range(300, 400, 2):
        serving.beat(clock.start + timedelta(seconds=second))
    assert comms.check_comms(clock.at(335)) == []
    changes = comms.check_comms(clock.at(392))
    assert [(c.site.name, c.to_state) for c in changes] == [("north", CommsState.COMMS_LOST)]
    assert "when the VTN was not serving" in changes[0].detail


def test_without_any_heartbeat_recorded_nothing_is_discounted(gb, clock):
    from vtn import serving

    poll(gb.acme)
    assert serving.outages(clock.start, clock.at(500)) == []
    assert [c.to_state for c in comms.check_comms(clock.at(91))] == [CommsState.COMMS_LOST]


def test_the_console_dashboard_lists_vtn_outages(gb, clock, settings):
    from console import selectors
    from vtn import serving

    settings.VTN_SERVING_BEAT_SECONDS = 1
    serving.beat(clock.start)
    serving.beat(clock.start + timedelta(seconds=60))
    shown = selectors.dashboard(clock.at(61), scope=Scope(frozenset({"ENWL"}), "test"))
    outages = shown["vtn_outages"]
    assert [(o["start"], o["end"], o["minutes"]) for o in outages] == [
        (clock.start, clock.start + timedelta(seconds=60), 1.0)]


def test_loss_is_detected_after_the_operators_own_heartbeat_interval(gb, clock):
    from dispatch import programs

    # ENWL lengthens MW Dispatch's heartbeat to 10 minutes: acme (MW Dispatch and
    # Dynamic) is then held to Dynamic's 5 minutes x 1.5 grace, not 1 minute
    programs.set_product_parameters(operator="ENWL", product="MW_DISPATCH", changed_by="ops",
                                    changes={"heartbeat_interval": "PT10M"})
    from dispatch import selectors
    from dispatch.api.serializers import SiteSerializer

    shown = SiteSerializer(selectors.sites().get(name="north")).data
    assert shown["heartbeatIntervalSeconds"] == 300  # Dynamic's, now the shortest
    poll(gb.acme)

    def north(changes: list) -> list:
        return [(c.site.name, c.to_state) for c in changes if c.site.name == "north"]

    assert north(comms.check_comms(clock.at(91))) == []
    assert north(comms.check_comms(clock.at(450))) == []
    assert north(comms.check_comms(clock.at(451))) == [("north", CommsState.COMMS_LOST)]
    # and with no heartbeat expected for either product, the site is never lost
    for product in ("MW_DISPATCH", "DYNAMIC"):
        programs.set_product_parameters(operator="ENWL", product=product, changed_by="ops",
                                        changes={"heartbeat_interval": "NONE"})
    poll(gb.acme)
    assert north(comms.check_comms(clock.at(5000))) == []
