"""The FSP agent rides out a VTN outage on its own: a real ``ven-client run`` process
against the real VTN, which is stopped and started again. The agent keeps the
instruction it holds in force until its end, survives a restart of its own while the
VTN is away, and once the VTN is back reports its local log of the outage, which the
operator reads with the site."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from tests.fixtures.agent import OPERATOR, accepted, wait_for, z


def test_the_agent_keeps_its_instruction_through_an_outage_and_reports_its_log(
        agent_world, vtn_server):
    site = agent_world.onboard(units=("u1",), heartbeat_interval_s=1.0)
    agent = agent_world.start_agent(site)
    agent_world.operator().close()  # the operator's client and token, made beforehand
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=5)
    end = start + timedelta(seconds=20)
    reference = vtn_server.unique("outage")
    with agent_world.operator() as session:
        response = session.post(agent_world.api("dispatches"), json={
            "unit": f"{site.fsp}/u1", "operator": OPERATOR, "product": "MW_DISPATCH",
            "reference": reference, "serviceStart": z(start), "serviceEnd": z(end),
            "serviceTimings": [{"setpointTime": z(start), "volume": 0,
                                "setpointType": "absolute"}]}, timeout=30)
    assert response.status_code == 201, response.text
    wait_for(lambda: accepted(agent_world.acknowledgements(reference).get(1, []),
                              "actioned"), 30, "the dispatch to be actioned")

    vtn_server.stop()  # the VTN is gone
    try:
        wait_for(lambda: any(r["event"] == "offline" for r in site.log_records()), 30,
                 "the agent to notice the outage")
        # The agent restarts while the VTN is away: it comes back and carries on alone.
        agent_world.stop_agent(agent)
        agent = agent_world.start_agent(site)
        wait_for(lambda: sum(r["event"] == "agent_started" for r in site.log_records()) == 2
                 and any(r["event"] == "cycle_failed" for r in site.log_records()[-5:]),
                 30, "the restarted agent to fail its first cycle")
        time.sleep(max(0.0, end.timestamp() - time.time() + 1))  # the dispatch ends offline
    finally:
        vtn_server.start()

    def offline_log():
        with agent_world.operator() as session:
            sites = session.get(agent_world.api("sites"), params={"fsp": site.fsp},
                                timeout=30).json()
        return sites[0]["offlineLogs"][0] if sites and sites[0]["offlineLogs"] else None

    log = wait_for(offline_log, 60, "the agent's outage log at the VTN")
    [entry] = [e for e in log["entries"] if e["dispatchRef"] == reference]
    assert entry["state"] == "actioned" and entry["outcome"] == "ACCEPTED"
    assert entry["endedOffline"] is True and entry["serviceEnd"] == z(end)
    offline_from = datetime.fromisoformat(log["offlineFrom"].replace("Z", "+00:00"))
    offline_until = datetime.fromisoformat(log["offlineUntil"].replace("Z", "+00:00"))
    assert offline_from < end < offline_until
    # Local control had the instruction once: no re-run, no cancellation by the outage.
    assert [h["dispatch"]["dispatchRef"] for h in site.handled()] == [reference]
    assert any(r["event"] == "offline_log_queued" for r in site.log_records())
