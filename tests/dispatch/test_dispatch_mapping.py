"""A dispatch as an OpenADR event: valid in both versions, seen only by the owning VEN."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from dispatch import issuing
from tests.fixtures.dispatch import timing
from tests.spec import VERSION_31, VERSION_301, VERSIONS

pytestmark = pytest.mark.django_db


def payloads(interval: dict) -> dict:
    return {p["type"]: p["values"] for p in interval["payloads"]}


@pytest.mark.parametrize("version", VERSIONS)
def test_owning_ven_reads_what_when_and_how_much(gb, issue, version):
    start = issue().service_start
    dispatch = issue(reference="NO-7", timings=[
        timing(start, 250, price_gbp_per_kwh=Decimal("0.35")),
        timing(start + timedelta(hours=1), 100, "absolute")])
    api = gb.acme.api(version)
    status, event = api.get(f"/events/{dispatch.event_id}")  # validated against the document
    assert status == 200
    assert event["eventName"] == "ENWL/NO-7" and event["priority"] == 0
    assert event["intervalPeriod"] == {"start": f"{start.isoformat()[:19]}Z",
                                       "duration": "PT2H"}
    first, second = event["intervals"]
    assert payloads(first)["DISPATCH_SETPOINT_RELATIVE"] == [250]
    assert payloads(first)["DISPATCH_INSTRUCTION"] == ["RUN"]
    assert payloads(first)["PRICE"] == [0.35]
    assert payloads(second)["DISPATCH_SETPOINT"] == [100]
    assert second["intervalPeriod"]["duration"] == "PT1H"
    descriptors = {d["payloadType"]: d for d in event["payloadDescriptors"]}
    assert descriptors["DISPATCH_SETPOINT"]["units"] == "KW"
    assert descriptors["PRICE"]["currency"] == "GBP"
    profile = payloads(first)
    assert profile["GB_DISPATCH_REF"] == ["NO-7"] and profile["GB_REVISION"] == [1]
    assert profile["GB_NETWORK_OPERATOR"] == ["ENWL"]
    assert profile["GB_DISPATCH_UNIT"] == ["acme", "bat1"]
    assert profile["GB_CONTRACT"] == ["C-DYN"] and profile["GB_URGENCY"] == ["EMERGENCY"]
    assert profile["GB_SIGNATURE"] == [dispatch.revisions.get().signature]
    status, events = api.get("/events", {"programID": event["programID"]})
    assert status == 200 and dispatch.event_id in {e["id"] for e in events}


@pytest.mark.parametrize("version", VERSIONS)
def test_another_fsps_ven_cannot_see_the_event(gb, issue, version):
    dispatch = issue()
    api = gb.zeta.api(version)
    status, events = api.get("/events")
    assert status == 200 and dispatch.event_id not in {e["id"] for e in events}
    status, body = api.get(f"/events/{dispatch.event_id}")
    assert status == 404
    status, programs = api.get("/programs")  # the product program itself is public
    assert status == 200 and "GB-ENWL-DYNAMIC" in {p["programName"] for p in programs}


@pytest.mark.parametrize("version", VERSIONS)
def test_each_revision_kind_renders_validly(gb, issue, version):
    dispatch = issue(status="pre-notify", urgency="advisory")
    api = gb.acme.api(version)

    def current() -> dict:
        status, event = api.get(f"/events/{dispatch.event_id}")
        assert status == 200
        return event

    event = current()
    assert payloads(event["intervals"][0])["DISPATCH_INSTRUCTION"] == ["PRE_NOTIFY"]
    assert event["priority"] == 2
    issuing.revise_dispatch(dispatch=dispatch, status="run", urgency="warning")
    event = current()
    assert payloads(event["intervals"][0])["GB_REVISION"] == [2] and event["priority"] == 1
    issuing.stop_dispatch(dispatch=dispatch)
    event = current()
    assert len(event["intervals"]) == 1
    only = payloads(event["intervals"][0])
    assert only["DISPATCH_INSTRUCTION"] == ["STOP"] and only["GB_REVISION"] == [3]
    assert "payloadDescriptors" not in event


def test_the_event_renders_in_both_versions_for_business_logic(gb, issue, make_actor):
    dispatch = issue()
    for version in (VERSION_31, VERSION_301):
        bl = make_actor(f"bl-{version}", "bl", version_=version)
        status, event = bl.api.get(f"/events/{dispatch.event_id}")
        assert status == 200 and event["targets"]
