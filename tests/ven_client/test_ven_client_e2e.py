"""The FSP agent end to end: a real ``ven-client run`` process against the real VTN over
HTTPS on loopback (mTLS with certificate-bound tokens unless a test says otherwise).
The operator issues dispatches through the dispatch API; the tests read what the VTN
recorded (acknowledgements, reports) and what the agent's handler received."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from datetime import UTC, datetime, timedelta

import pytest
import requests

from gbflex_profile import report_signing
from tests.fixtures.agent import OPERATOR, accepted, next_hour, wait_for, z


def both_acks(world, reference: str, revision: int = 1):
    def check():
        acks = world.acknowledgements(reference).get(revision, [])
        if accepted(acks, "received") and accepted(acks, "actioned"):
            return acks
        return None
    return check


@pytest.mark.parametrize("version", ["3.1.0", "3.0.1"])
@pytest.mark.parametrize("mtls", [True, False], ids=["mtls", "no-mtls"])
def test_a_dispatch_is_actioned_and_acknowledged_within_two_polls(agent_world, version, mtls):
    site = agent_world.onboard(version=version, mtls=mtls)
    agent = agent_world.start_agent(site)
    wait_for(lambda: any(r["event"] == "discovered" for r in site.log_records()), 30,
             "the agent's first poll")

    dispatch = agent_world.issue(site, kw=250)
    finished = site.cycles()  # the cycle under way now may have polled before the issue
    acks = wait_for(both_acks(agent_world, dispatch["reference"]), 60,
                    "RECEIVED and ACTIONED accepted")
    # Counted in the agent's own polls rather than seconds, so a busy machine cannot fail
    # it: handled, and both acknowledgements sent, in the cycle under way or the next.
    assert site.cycle_of("handler_finished", dispatch_ref=dispatch["reference"]) <= finished + 2
    for kind in ("ack_received", "ack_actioned"):
        assert site.cycle_of("message_sent", kind=kind) <= finished + 2, kind
    assert [a["stage"] for a in acks] == ["received", "actioned"]
    assert acks[1]["result"] == "ACCEPTED" or acks[1].get("reason", "") == ""
    handled = site.handled()
    assert len(handled) == 1
    assert handled[0]["dispatch"]["dispatchRef"] == dispatch["reference"]
    assert handled[0]["dispatch"]["serviceTimings"][0]["volume"] == 250
    assert agent.poll() is None
    assert agent_world.stop_agent(agent) == 0


def test_sigkill_while_actioning_gives_one_of_each_acknowledgement_and_one_handler_run(
        agent_world):
    site = agent_world.onboard()
    (site.gate / "block").touch()
    agent = agent_world.start_agent(site)
    dispatch = agent_world.issue(site)
    wait_for(lambda: (site.gate / "blocked").exists(), 30, "the handler to start and block")
    wait_for(lambda: accepted(agent_world.acknowledgements(dispatch["reference"])[1],
                              "received"), 10, "RECEIVED before the handler ran")
    agent.kill()  # SIGKILL: no clean-up at all
    agent.wait()

    agent_world.start_agent(site)
    acks = wait_for(both_acks(agent_world, dispatch["reference"]), 30,
                    "ACTIONED after the restart")
    (site.gate / "release").touch()
    agent_world.wait_polls(site, 3)  # a few more polls: nothing more may arrive
    acks = agent_world.acknowledgements(dispatch["reference"])[1]
    assert sorted(a["stage"] for a in acks) == ["actioned", "received"]
    actioned = next(a for a in acks if a["stage"] == "actioned")
    assert actioned["outcome"] == "accepted"
    assert actioned["result"] == "FAILED"
    assert actioned["reason"] == "agent restarted during actioning; state unknown"
    assert len(site.handled()) == 1  # the handler was not run again


def test_an_outage_is_ridden_out_with_backoff_and_nothing_lost_or_doubled(agent_world):
    """The outage lasts until the agent has backed off to its cap and stayed there (0.25 s
    doubling to 2 s as configured here: some six seconds, not the minutes of a real one)."""
    proxy = agent_world.proxy()
    site = agent_world.onboard(units=("u1", "u2"), via=proxy, backoff_initial_s=0.25,
                               backoff_max_s=2.0)
    (site.gate / "block").touch()
    agent_world.start_agent(site)
    first = agent_world.issue(site, unit="u1")
    wait_for(lambda: (site.gate / "blocked").exists(), 30, "the handler to block")

    proxy.stop()  # the VTN is gone for the agent
    (site.gate / "block").unlink()
    (site.gate / "release").touch()  # ACTIONED of the first dispatch now waits in the outbox
    second = agent_world.issue(site, unit="u2")  # issued while the agent cannot see it

    def failed_polls() -> list[dict]:
        return [r for r in site.log_records() if r["event"] == "cycle_failed"]

    # The outage itself lasts until the agent has failed six polls in a row: the fourth
    # already waits up to the cap (0.25 s doubled three times), the fifth and sixth stay
    # there.
    failures = wait_for(lambda: (failed_polls() and failed_polls()[-1]["failures"] >= 6
                                 and failed_polls()), 90, "six failed polls in a row")
    delays = [r["retry_in_s"] for r in failures]
    assert max(delays) > delays[0]  # it backed off...
    assert max(delays) <= 2.0  # ...up to the configured cap
    assert any(r["event"] == "send_deferred" for r in site.log_records())

    proxy.start()
    for dispatch in (first, second):
        wait_for(both_acks(agent_world, dispatch["reference"]), 30,
                 f"both acknowledgements of {dispatch['reference']} after the outage")
    agent_world.wait_polls(site, 3)
    for dispatch in (first, second):
        acks = agent_world.acknowledgements(dispatch["reference"])[1]
        assert sorted(a["stage"] for a in acks) == ["actioned", "received"], acks
        assert all(a["outcome"] == "accepted" for a in acks)
    assert [h["dispatch"]["dispatchRef"] for h in site.handled()] == [
        first["reference"], second["reference"]]


def test_revisions_reach_the_handler_in_order_up_to_emergency_stop(agent_world):
    site = agent_world.onboard()
    agent_world.start_agent(site)
    dispatch = agent_world.issue(site, kw=300)
    wait_for(both_acks(agent_world, dispatch["reference"], 1), 30, "revision 1 acknowledged")
    agent_world.revise(dispatch, kw=120)
    wait_for(both_acks(agent_world, dispatch["reference"], 2), 30, "revision 2 acknowledged")
    agent_world.stop(dispatch, emergency=True)
    wait_for(both_acks(agent_world, dispatch["reference"], 3), 30, "revision 3 acknowledged")

    handled = [h["dispatch"] for h in site.handled()]
    assert [(d["revision"], d["status"]) for d in handled] == [
        (1, "RUN"), (2, "RUN"), (3, "EMERGENCY_STOP")]
    assert [d["serviceTimings"][0]["volume"] for d in handled[:2]] == [300, 120]
    assert handled[2]["urgency"] == "EMERGENCY" and handled[2]["serviceTimings"] == []


def _forged_copy(agent_world, dispatch: dict, reference: str, *, keep_signature: bool) -> dict:
    """What a business-logic client with write access could publish: a copy of a real
    dispatch event under another reference (its signature then signs the wrong
    reference), or without any signature."""
    with agent_world.operator() as session:
        real = session.get(agent_world.server.url("3.1.0", f"events/{dispatch['eventID']}"),
                           timeout=30).json()
        first = real["intervals"][0]["payloads"]
        for payload in first:
            if payload["type"] == "GB_DISPATCH_REF":
                payload["values"] = [reference]
        if not keep_signature:
            real["intervals"][0]["payloads"] = [p for p in first if p["type"] != "GB_SIGNATURE"]
        body = {k: real[k] for k in ("programID", "priority", "targets", "intervalPeriod",
                                     "payloadDescriptors", "intervals")}
        body["eventName"] = f"{dispatch['networkOperator']}/{reference}"
        response = session.post(agent_world.server.url("3.1.0", "events"), json=body,
                                timeout=30)
    assert response.status_code == 201, response.text
    return response.json()


def _refusals(agent_world, event_id: str) -> list[dict]:
    found = []
    for report in agent_world.reports(event_id):
        for resource in report["resources"]:
            for interval in resource["intervals"]:
                values = {p["type"]: p["values"] for p in interval["payloads"]}
                if values.get("GB_ACK_STAGE") == ["REFUSED"]:
                    found.append(values)
    return found


@pytest.mark.parametrize("forgery", ["wrong-reference", "unsigned"])
def test_a_tampered_or_unsigned_dispatch_is_refused_and_the_refusal_reported(
        agent_world, forgery):
    from gbflex_profile import jose

    site = agent_world.onboard()
    agent_world.start_agent(site)
    genuine = agent_world.issue(site)
    wait_for(both_acks(agent_world, genuine["reference"]), 30, "the genuine dispatch")
    reference = agent_world.server.unique("forged")
    forged = _forged_copy(agent_world, genuine, reference,
                          keep_signature=forgery == "wrong-reference")

    refusals = wait_for(lambda: _refusals(agent_world, forged["id"]), 30,
                        "the refusal report")
    agent_world.wait_polls(site, 3)
    assert len(_refusals(agent_world, forged["id"])) == 1  # reported once
    refusal = refusals[0]
    assert refusal["GB_DISPATCH_REF"] == [reference]
    assert refusal["GB_DISPATCH_UNIT"] == [site.fsp, site.units[0]]
    assert refusal["GB_REVISION"] == [1]
    expected_reason = ("the event disagrees with its signed document"
                       if forgery == "wrong-reference" else "unsigned dispatch")
    assert refusal["GB_ACK_REASON"][0].startswith(expected_reason)
    # The refusal is signed by the site key over the RFC 8785 form of what it says.
    private = jose.load_private_key((site.state_dir / "site-signing-key.pem").read_bytes())
    site_jwks = {"keys": [jose.public_jwk(private, jose.header_kid(refusal["GB_ACK_JWS"][0]))]}
    signed = jose.verify(refusal["GB_ACK_JWS"][0], site_jwks)  # checks the RFC 8785 form too
    signed_at = datetime.strptime(signed.pop("signedAt"), "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=UTC)
    assert abs(datetime.now(UTC) - signed_at) < timedelta(minutes=10)
    assert signed == {"stage": "REFUSED", "dispatchRef": reference,
                      "fspId": site.fsp, "dispatchUnit": site.units[0],
                      "revision": 1, "reason": refusal["GB_ACK_REASON"][0]}
    assert len(site.handled()) == 1  # only the genuine dispatch reached local control


def test_a_dispatch_signed_by_a_key_outside_the_pinned_jwks_is_refused(agent_world):
    from gbflex_profile import jose

    site = agent_world.onboard()
    # Pin a key set holding the operator's kid with another key: every signature fails.
    published = requests.get(f"{agent_world.server.base_url}/.well-known/jwks.json",
                             verify=agent_world.server.ca_bundle, timeout=30).json()
    impostor = jose.generate_private_key()
    pinned = {"keys": [jose.public_jwk(impostor, k["kid"]) for k in published["keys"]]}
    pinned_path = site.directory / "pinned-jwks.json"
    pinned_path.write_text(json.dumps(pinned))
    agent_world.configure(site, jwks_file=str(pinned_path))
    agent_world.start_agent(site)
    dispatch = agent_world.issue(site)

    refusals = wait_for(lambda: _refusals(agent_world, dispatch["eventID"]), 30,
                        "the refusal report")
    # The pinned set names the operator's kids (when its key existed before the fetch)
    # with the impostor's keys, or none of the kid the dispatch is signed with: either way
    # the signature is refused.
    reason = refusals[0]["GB_ACK_REASON"][0]
    assert re.fullmatch(r"invalid signature: (the signature does not verify"
                        r"|kid '[\w-]+' is not in the operator's JWKS)", reason), reason
    assert site.handled() == []
    acks = agent_world.acknowledgements(dispatch["reference"])[1]
    assert not [a for a in acks if a["stage"] in ("received", "actioned")]
    refused = next(a for a in acks if a["stage"] == "refused")
    assert refused["reason"] == reason


def test_a_report_whose_answer_was_lost_is_not_delivered_twice(agent_world):
    proxy = agent_world.proxy()
    site = agent_world.onboard(via=proxy, request_timeout_s=2.0)
    (site.gate / "block").touch()
    agent_world.start_agent(site)
    dispatch = agent_world.issue(site)
    wait_for(lambda: (site.gate / "blocked").exists(), 30, "the handler to block")
    proxy.blackhole = True  # the ACTIONED report reaches the VTN; its 201 never comes back
    (site.gate / "release").touch()
    wait_for(lambda: any(a["stage"] == "actioned" for a in
                         agent_world.acknowledgements(dispatch["reference"])[1]), 30,
             "the ACTIONED report to reach the VTN")
    wait_for(lambda: any(r["event"] == "send_deferred" for r in site.log_records()), 30,
             "the agent to notice it got no answer")
    proxy.blackhole = False
    wait_for(lambda: any(r["event"] in ("message_found_delivered", "message_sent") and
                         r.get("kind") == "ack_actioned" for r in site.log_records()), 30,
             "the agent to settle the uncertain message")
    agent_world.wait_polls(site, 3)
    acks = agent_world.acknowledgements(dispatch["reference"])[1]
    assert sorted(a["stage"] for a in acks) == ["actioned", "received"], acks
    assert all(a["outcome"] == "accepted" for a in acks)


def _report_intervals(reports: list[dict]) -> dict[tuple, dict]:
    found = {}
    for report in reports:
        for resource in report_signing.content_resources(report["resources"]):
            for interval in resource["intervals"]:
                key = (resource["resourceName"], interval["intervalPeriod"]["start"])
                found[key] = {p["type"]: p["values"] for p in interval["payloads"]}
    return found


def test_meter_readings_and_availability_from_the_drop_folder_are_reported_once(agent_world):
    site = agent_world.onboard(units=("u1", "u2"))
    metering_id = site.onboarding.get("metering_event_id")
    availability_id = site.onboarding.get("availability_event_id")
    assert metering_id and availability_id, site.onboarding  # onboarding creates both
    site.drop_dir.mkdir()
    (site.drop_dir / "readings-0001.csv").write_text(
        "unit,start,duration,type,value,quality\n"
        "u1,2026-11-21T10:00:00Z,PT30M,USAGE,-120.5,OK\n"
        "u1,2026-11-21T10:00:00Z,PT30M,DEMAND,-241,OK\n"
        "u2,2026-11-21T10:00:00Z,PT30M,USAGE,12,ESTIMATED\n")
    (site.drop_dir / "availability-0001.csv").write_text(
        "unit,start,end,available_kw\n"
        "u1,2026-11-23T17:00:00Z,2026-11-23T19:00:00Z,800\n")
    agent_world.start_agent(site)
    readings = wait_for(lambda: agent_world.reports(metering_id), 30, "the metering report")
    availability = wait_for(lambda: agent_world.reports(availability_id), 30,
                            "the availability report")
    agent_world.wait_polls(site, 3)
    assert len(agent_world.reports(metering_id)) == 1
    assert len(agent_world.reports(availability_id)) == 1
    intervals = _report_intervals(readings)
    assert intervals[("u1", "2026-11-21T10:00:00Z")]["USAGE"] == [-120.5]
    assert intervals[("u1", "2026-11-21T10:00:00Z")]["DEMAND"] == [-241]
    assert intervals[("u2", "2026-11-21T10:00:00Z")]["DATA_QUALITY"] == ["ESTIMATED"]
    assert _report_intervals(availability)[("u1", "2026-11-23T17:00:00Z")] == {
        "GB_AVAILABLE_KW": [800]}
    assert sorted(p.name for p in (site.drop_dir / "done").iterdir()) == [
        "availability-0001.csv", "readings-0001.csv"]
    for report in readings + availability:  # each signed with the site key
        assert report_signing.report_jws(report["resources"])


def test_declarations_and_readings_are_signed_by_the_agent_and_verify_in_the_audit_export(
        agent_world, tmp_path):
    site = agent_world.onboard(units=("u1",))
    start = next_hour()  # the hour the dispatch below is for, too
    yesterday = start - timedelta(days=1)
    site.drop_dir.mkdir()
    (site.drop_dir / "readings-0001.csv").write_text(
        f"unit,start,duration,type,value\nu1,{z(yesterday)},PT30M,USAGE,-120.5\n")
    (site.drop_dir / "availability-0001.csv").write_text(
        f"unit,start,end,available_kw\nu1,{z(start)},{z(start + timedelta(hours=2))},900\n")
    agent_world.start_agent(site)

    def intakes():
        with agent_world.operator() as session:
            found = session.get(agent_world.api("report-intakes"),
                                params={"fsp": site.fsp}, timeout=30).json()
        return found if len(found) == 2 else None
    found = wait_for(intakes, 60, "the readings and availability intakes")
    kid = tomllib.loads(site.config_path.read_text())["signing_kid"]
    assert sorted((i["kind"], i["stored"], i["rejected"], i["signed"], i["kid"])
                  for i in found) == [("availability", 1, 0, True, kid),
                                      ("metering", 1, 0, True, kid)]

    dispatch = agent_world.issue(site, kw=250)
    acks = wait_for(both_acks(agent_world, dispatch["reference"]), 60,
                    "RECEIVED and ACTIONED accepted")
    assert all(a["signedAt"] for a in acks)  # the signed signing time of each
    out = tmp_path / "export.json"
    agent_world.server.manage("dispatch", "audit-export", dispatch["reference"],
                              "--operator", OPERATOR, "--out", str(out))
    export = json.loads(out.read_text())
    kinds = [e["kind"] for e in export["entries"]]
    assert kinds[0] == "declarations_recorded" and kinds.count("ack_recorded") == 2, kinds
    declared = export["entries"][0]["payload"]["signed"]
    assert declared["resources"][0]["intervals"][0]["payloads"] == [
        {"type": "GB_AVAILABLE_KW", "values": [900]}]
    verified = subprocess.run([sys.executable, "-m", "gbflex_profile.audit_chain", "verify",
                               str(out)], capture_output=True, text=True, timeout=60)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_the_agent_sends_heartbeats_and_keeps_the_site_online(agent_world):
    site = agent_world.onboard(units=("u1", "u2"), heartbeat_interval_s=1.0)
    agent_world.start_agent(site)
    event_id = site.onboarding["heartbeat_event_id"]
    beats = wait_for(lambda: len(agent_world.reports(event_id)) >= 2 and
                     agent_world.reports(event_id), 30, "two heartbeat reports")
    assert {r["resourceName"] for r in beats[0]["resources"]} == {"u1", "u2"}
    with agent_world.operator() as session:
        sites = session.get(agent_world.api("sites"), params={"fsp": site.fsp},
                            timeout=30).json()
    assert [s["state"] for s in sites] == ["online"]


def test_rows_the_vtn_rejects_are_logged_as_warnings_with_its_reasons(agent_world):
    site = agent_world.onboard(units=("u1",))
    site.drop_dir.mkdir()
    # One report: a reading the VTN stores, and one from the future it refuses.
    (site.drop_dir / "readings-0001.csv").write_text(
        "unit,start,duration,type,value\n"
        "u1,2026-11-21T10:00:00Z,PT30M,USAGE,5\n"
        "u1,2099-01-01T10:00:00Z,PT30M,USAGE,7\n")
    agent_world.start_agent(site)

    def rejected():
        return [r for r in site.log_records() if r.get("event") == "report_row_rejected"]

    rows = wait_for(rejected, 30, "the agent's warning about the rejected row")
    agent_world.wait_polls(site, 2)
    assert len(rejected()) == 1
    row = rows[0]
    assert row["level"] == "warning"
    assert (row["unit"], row["type"], row["start"]) == ("u1", "USAGE", "2099-01-01T10:00:00Z")
    assert row["outcome"] and row["reason"]
    sent = [r for r in site.log_records()
            if r.get("event") == "message_sent" and r.get("kind") == "metering"]
    assert len(sent) == 1
    assert (sent[0]["stored"], sent[0]["rejected"], sent[0]["report_id"]) == (
        1, 1, row["report_id"])

    # The same reading again with another value: the VTN refuses the conflict, and says why.
    (site.drop_dir / "readings-0002.csv").write_text(
        "unit,start,duration,type,value\nu1,2026-11-21T10:00:00Z,PT30M,USAGE,6\n")
    conflict = wait_for(lambda: [r for r in rejected() if r.get("outcome") == "conflict"], 30,
                        "the warning about the conflicting reading")
    assert "GB_CORRECTION" in conflict[0]["reason"] or "different" in conflict[0]["reason"]


def test_a_new_heartbeat_interval_reaches_a_running_agent_without_restart(agent_world):
    """The operator sets its own MW Dispatch heartbeat interval with `fsp products`; the
    program is updated at once and the running agent heartbeats at the new interval."""
    site = agent_world.onboard(units=("u1",), programs_refresh_s=1.0)
    agent_world.start_agent(site)
    event_id = site.onboarding["heartbeat_event_id"]
    discovered = wait_for(lambda: [r for r in site.log_records()
                                   if r.get("event") == "discovered"], 30, "discovery")
    assert discovered[0]["heartbeat_interval_s"] == 60.0  # the product's default
    wait_for(lambda: agent_world.reports(event_id), 30, "the first heartbeat")
    server = agent_world.server
    try:
        changed = json.loads(server.manage(
            "fsp", "products", "--operator", OPERATOR, "--product", "MW_DISPATCH",
            "--set", "heartbeat_interval=PT10S", "--reason", "test").stdout)
        assert changed["parameters"]["heartbeat_interval"] == "PT10S"
        applied = wait_for(lambda: [r for r in site.log_records()
                                    if r.get("event") == "heartbeat_interval_changed"],
                           30, "the agent applying the new interval")
        assert applied[0]["now_s"] == 10.0
        # the next heartbeat comes 10 s after the change, not 60 s after the first
        wait_for(lambda: len(agent_world.reports(event_id)) >= 2, 25, "a second heartbeat")
    finally:
        server.manage("fsp", "products", "--operator", OPERATOR, "--product",
                      "MW_DISPATCH", "--set", "heartbeat_interval=DEFAULT")
