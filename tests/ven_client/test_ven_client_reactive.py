"""Reactive power end to end: a real ``ven-client run`` against the real VTN over HTTPS.
The operator gives a unit a kVAr capability (``manage.py fsp unit``), contracts it for
Dynamic and issues a kVAr setpoint; the agent verifies it, hands it to its handler and
acknowledges it with a signed read-back in kVAr, which the VTN accepts; the agent's
reactive meter readings (GB_REACTIVE, kVArh) are stored for settlement."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.fixtures.agent import OPERATOR, accepted, wait_for, z


def test_a_kvar_setpoint_is_actioned_read_back_in_kvar_and_reactive_readings_stored(
        agent_world):
    site = agent_world.onboard(units=("q1",))
    server = agent_world.server
    unit = json.loads(server.manage("fsp", "unit", "--operator", OPERATOR, "--fsp", site.fsp,
                                    "--unit", "q1", "--kvar", "500",
                                    "--reason", "inverter rated").stdout)
    assert unit["capacityKvar"] == "500"
    contract = f"{site.fsp}-dyn"
    server.manage("fsp", "contract", "--operator", OPERATOR, "--fsp", site.fsp, "--id",
                  contract, "--product", "DYNAMIC", "--unit", "q1", "--reactive-price", "15")
    site.drop_dir.mkdir()
    past = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    (site.drop_dir / "readings-q.csv").write_text(
        "unit,start,duration,type,value\n"
        f"q1,{z(past)},PT30M,GB_REACTIVE,-150\n"
        f"q1,{z(past)},PT30M,USAGE,-600\n")
    agent_world.start_agent(site)

    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=2)
    reference = server.unique(f"{site.fsp}-q")
    with agent_world.operator() as session:
        response = session.post(agent_world.api("dispatches"), json={
            "unit": f"{site.fsp}/q1", "operator": OPERATOR, "contract": contract,
            "reference": reference, "urgency": "warning",
            "serviceStart": z(start), "serviceEnd": z(start + timedelta(hours=1)),
            "serviceTimings": [
                {"setpointTime": z(start), "volume": 300, "units": "KVAR",
                 "setpointType": "absolute", "pricePerUnit": 0.02},
                {"setpointTime": z(start + timedelta(minutes=30)), "volume": 120.5,
                 "units": "KVAR", "setpointType": "absolute", "pricePerUnit": 0.02}]},
            timeout=30)
    assert response.status_code == 201, response.text

    def both() -> list | None:
        acks = agent_world.acknowledgements(reference).get(1, [])
        return acks if accepted(acks, "received") and accepted(acks, "actioned") else None

    acks = wait_for(both, 60, "RECEIVED and ACTIONED accepted for the kVAr dispatch")
    assert [a["outcome"] for a in acks] == ["accepted", "accepted"]
    (handled,) = site.handled()
    assert [(t["volume"], t["units"], t["serviceType"], t["priceUnits"])
            for t in handled["dispatch"]["serviceTimings"]] == [
        (300, "KVAR", "REACTIVE", "KVARH"), (120.5, "KVAR", "REACTIVE", "KVARH")]

    # What the agent signed, as the audit export keeps it: the setpoints in kVAr.
    with agent_world.operator() as session:
        export = session.get(agent_world.api(f"dispatches/{OPERATOR}/{reference}/audit-export"),
                             timeout=30).json()
    signed = [e["payload"]["signed"] for e in export["entries"] if e["kind"] == "ack_recorded"]
    assert [s["stage"] for s in signed] == ["RECEIVED", "ACTIONED"]
    for document in signed:
        assert document["setpoints"] == [
            {"setpointTime": z(start), "volume": 300, "units": "KVAR", "setpointType": "ABSOLUTE"},
            {"setpointTime": z(start + timedelta(minutes=30)), "volume": 120.5, "units": "KVAR",
             "setpointType": "ABSOLUTE"}]

    def reactive_readings() -> list | None:
        with agent_world.operator() as session:
            rows = session.get(agent_world.api("meter-readings"), params={
                "fsp": site.fsp, "type": "GB_REACTIVE"}, timeout=30).json()
        return rows or None

    try:
        (reading,) = wait_for(reactive_readings, 60, "the reactive reading stored")
    except pytest.fail.Exception:  # say what the agent and the VTN did meanwhile
        pytest.fail("timed out after 60 s waiting for the reactive reading stored\n"
                    f"agent log:\n{site.agent_log.read_text(errors='replace')[-6000:]}\n"
                    f"VTN log:\n{server.output()[-6000:]}", pytrace=False)
    assert (reading["value"], reading["units"], reading["start"]) == ("-150", "KVARH", z(past))
