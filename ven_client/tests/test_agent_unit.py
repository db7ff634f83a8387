"""The FSP agent's parts without a server: timing, the outbox, signatures, config, CSV,
clock skew, logs, crash recovery and handlers."""

from __future__ import annotations

import email.utils
import io
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from jwcrypto import jwk as jwcrypto_jwk
from jwcrypto import jws as jwcrypto_jws

from gbflex_profile import acks, jose, report_signing
from ven_client import config as config_module
from ven_client import handler, logs, profile, reports
from ven_client.agent import INTERRUPTED, Agent
from ven_client.store import Store
from ven_client.transport import (
    Backoff,
    Transport,
    Unavailable,
    clock_skew,
    parse_retry_after,
    poll_delay,
)

# --- backoff, Retry-After, jitter -----------------------------------------------------------


def test_backoff_doubles_up_to_the_cap():
    backoff = Backoff(1.0, 8.0, rng=lambda: 1.0)
    assert [backoff.failure() for _ in range(6)] == [1, 2, 4, 8, 8, 8]


def test_backoff_jitter_stays_between_half_and_all_of_the_step():
    low = Backoff(2.0, 100.0, rng=lambda: 0.0)
    assert [low.failure() for _ in range(3)] == [1, 2, 4]


def test_backoff_starts_again_after_a_success():
    backoff = Backoff(1.0, 8.0, rng=lambda: 1.0)
    backoff.failure(), backoff.failure()
    backoff.success()
    assert backoff.failure() == 1


def test_backoff_waits_at_least_what_retry_after_asks():
    backoff = Backoff(1.0, 8.0, rng=lambda: 1.0)
    assert backoff.failure(retry_after=30) == 30
    assert backoff.failure(retry_after=0.5) == 2  # the backoff itself is longer


def test_retry_after_reads_seconds_and_http_dates():
    now = 1_800_000_000.0
    assert parse_retry_after("120", now) == 120
    assert parse_retry_after(email.utils.formatdate(now + 90, usegmt=True), now) == 90
    assert parse_retry_after(email.utils.formatdate(now - 90, usegmt=True), now) == 0
    assert parse_retry_after("999999", now) == 3600  # capped at an hour
    assert parse_retry_after("soon", now) is None and parse_retry_after(None) is None


def test_poll_jitter_stays_within_its_bounds():
    assert poll_delay(10, 0.1, rng=lambda: 0.0) == pytest.approx(9)
    assert poll_delay(10, 0.1, rng=lambda: 1.0) == pytest.approx(11)
    delays = [poll_delay(10, 0.2) for _ in range(2000)]
    assert all(8 <= d <= 12 for d in delays)
    assert max(delays) - min(delays) > 3  # it really varies


# --- a fake VTN for the agent ---------------------------------------------------------------


class FakeResponse:
    def __init__(self, status: int, body: object = None, headers: dict | None = None):
        self.status_code, self._body, self.headers = status, body, headers or {}
        self.text = json.dumps(body)

    def json(self) -> object:
        return self._body


class FakeTransport:
    """Answers scripted per (method, path): a list of FakeResponse or exceptions."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict, dict]] = []
        self.script: dict[tuple[str, str], list] = {}
        self.skew_s = 0.0

    def answer(self, method: str, path: str, *answers) -> None:
        self.script.setdefault((method, path), []).extend(answers)

    def request(self, method, path, *, json=None, headers=None, params=None, absolute=False):
        self.calls.append((method, path, json, headers or {}))
        queue = self.script.get((method, path)) or [FakeResponse(201, {"id": "r1"})]
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def posts(self) -> list[tuple]:
        return [c for c in self.calls if c[0] == "POST"]

    def close(self) -> None:
        pass


@pytest.fixture
def agent_config(tmp_path: Path) -> config_module.Config:
    key_path = tmp_path / "site.pem"
    key_path.write_bytes(jose.private_key_pem(jose.generate_private_key()))
    return config_module.Config(
        vtn_url="https://vtn.example", client_id="c", client_secret="s" * 20,
        state_dir=str(tmp_path / "state"), signing_key=str(key_path), signing_kid="site-1",
        drop_dir=str(tmp_path / "drop"),
        handler_command=[sys.executable, "-c", "import sys; sys.stdin.read()"])


@pytest.fixture
def agent(agent_config):
    fake = FakeTransport()
    agent = Agent(agent_config, transport=fake)
    agent.ven, agent.operator, agent.fsp, agent.units = (
        {"venName": "ven-1", "id": "v1"}, "ENWL", "acme", ["bat1", "hp1"])
    yield agent
    agent.store.close()


def queue_report(agent: Agent, event_id: str = "e1", name: str = "r") -> str:
    with agent.store.transaction() as conn:
        return agent.store.enqueue(conn, kind="test", path="reports",
                                   body={"eventID": event_id, "reportName": name})


# --- outbox bookkeeping -----------------------------------------------------------------------


def test_a_message_is_sent_once_with_its_idempotency_key(agent):
    key = queue_report(agent)
    agent.flush()
    agent.flush()
    posts = agent.transport.posts()
    assert len(posts) == 1 and posts[0][3]["Idempotency-Key"] == key
    assert agent.store.pending_count() == 0


def test_messages_leave_in_order_and_stop_at_the_first_that_cannot(agent):
    queue_report(agent, name="first"), queue_report(agent, name="second")
    agent.transport.answer("POST", "reports", Unavailable("down", status=503, answered=True),
                           FakeResponse(201, {"id": "a"}))
    with pytest.raises(Unavailable):
        agent.flush()
    assert [c[2]["reportName"] for c in agent.transport.posts()] == ["first"]
    agent.flush()
    assert [c[2]["reportName"] for c in agent.transport.posts()] == ["first", "first",
                                                                     "second"]


def test_an_answered_failure_is_resent_without_a_lookup(agent):
    queue_report(agent)
    agent.transport.answer("POST", "reports", Unavailable("busy", status=429, answered=True),
                           FakeResponse(201, {"id": "a"}))
    with pytest.raises(Unavailable):
        agent.flush()
    agent.flush()
    assert not [c for c in agent.transport.calls if c[0] == "GET"]
    assert len(agent.transport.posts()) == 2


def test_after_an_unanswered_attempt_a_report_found_at_the_vtn_is_not_sent_again(agent):
    key = queue_report(agent, name="ack #")
    message = agent.store.pending()[0]
    agent.store.mark_attempt(message.id)  # as if the agent died during the POST
    agent.transport.answer("GET", "reports", FakeResponse(200, [{"reportName": f"x #{key}"}]))
    agent.flush()
    assert agent.transport.posts() == []
    assert agent.store.pending_count() == 0


def test_after_an_unanswered_attempt_a_missing_report_is_resent_with_the_same_key(agent):
    key = queue_report(agent)
    agent.transport.answer("POST", "reports", Unavailable("reset"),
                           FakeResponse(201, {"id": "a"}))
    with pytest.raises(Unavailable):
        agent.flush()
    assert agent.store.pending()[0].uncertain
    agent.transport.answer("GET", "reports", FakeResponse(200, []))
    agent.flush()
    keys = [c[3]["Idempotency-Key"] for c in agent.transport.posts()]
    assert keys == [key, key]
    assert agent.store.pending_count() == 0


def test_a_refused_message_is_set_aside_not_retried(agent):
    queue_report(agent)
    agent.transport.answer("POST", "reports", FakeResponse(409, {"detail": "no event"}))
    agent.flush()
    agent.flush()
    assert len(agent.transport.posts()) == 1
    assert [m["state"] for m in agent.store.messages()] == ["rejected"]


def test_outbox_survives_reopening_the_database(agent_config):
    store = Store(agent_config.database_path)
    with store.transaction() as conn:
        key = store.enqueue(conn, kind="t", path="reports", body={"a": 1})
    store.close()
    reopened = Store(agent_config.database_path)
    assert [m.idempotency_key for m in reopened.pending()] == [key]
    assert reopened.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    reopened.close()


# --- signatures --------------------------------------------------------------------------


OPERATOR_KEY = jose.generate_private_key()
OPERATOR_KID = "enwl-test-1"


def signed_event(**changes) -> dict:
    """A dispatch event as the VTN renders it, signed with OPERATOR_KEY."""
    document = {"contractId": "C-1", "dispatchRef": "ENWL-0042", "dispatchUnit": "bat1",
                "fspId": "acme", "instructionTime": "2026-11-22T03:10:56Z",
                "networkOperatorId": "ENWL", "product": "DYNAMIC", "profile": "gb-dispatch/1",
                "revision": 1, "serviceEnd": "2030-02-01T18:00:00Z",
                "serviceStart": "2030-02-01T17:00:00Z", "status": "RUN", "urgency": "WARNING",
                "serviceTimings": [
                    {"serviceType": "REAL", "setpointTime": "2030-02-01T17:00:00Z",
                     "setpointType": "DELTA", "units": "KW", "volume": 250},
                    {"serviceType": "REAL", "setpointTime": "2030-02-01T17:30:00Z",
                     "setpointType": "DELTA", "units": "KW", "volume": 120.5}]}
    document.update(changes)
    token = jose.sign(document, OPERATOR_KEY, OPERATOR_KID)
    profile_payloads = [
        {"type": "GB_NETWORK_OPERATOR", "values": ["ENWL"]},
        {"type": "GB_DISPATCH_REF", "values": [document["dispatchRef"]]},
        {"type": "GB_REVISION", "values": [document["revision"]]},
        {"type": "GB_DISPATCH_UNIT", "values": ["acme", document["dispatchUnit"]]},
        {"type": "GB_SIGNATURE", "values": [token]}]
    return {"id": "ev1", "programID": "p1", "eventName": f"ENWL/{document['dispatchRef']}",
            "priority": 1,
            "intervalPeriod": {"start": document["serviceStart"], "duration": "PT1H"},
            "intervals": [
                {"id": i, "intervalPeriod": {"start": t["setpointTime"], "duration": "PT30M"},
                 "payloads": [{"type": "DISPATCH_SETPOINT_RELATIVE", "values": [t["volume"]]},
                              {"type": "DISPATCH_INSTRUCTION", "values": ["RUN"]},
                              *(profile_payloads if i == 0 else [])]}
                for i, t in enumerate(document["serviceTimings"])]}


def operator_keys(kid: str):
    return jose.public_jwk(OPERATOR_KEY, OPERATOR_KID) if kid == OPERATOR_KID else None


def verify(event: dict) -> dict:
    return profile.verify_dispatch(event, operator_keys, fsp="acme", units={"bat1"})


def test_a_genuine_dispatch_verifies_to_its_signed_document():
    document = verify(signed_event())
    assert document["dispatchRef"] == "ENWL-0042"
    assert document["serviceTimings"][1]["volume"] == 120.5


def test_our_jws_verifies_with_an_independent_jose_library():
    token = jose.sign({"a": 1}, OPERATOR_KEY, OPERATOR_KID)
    key = jwcrypto_jwk.JWK(**jose.public_jwk(OPERATOR_KEY, OPERATOR_KID))
    checked = jwcrypto_jws.JWS()
    checked.deserialize(token)
    checked.verify(key, alg="EdDSA")
    assert checked.payload == b'{"a":1}'


@pytest.mark.parametrize(("tamper", "reason"), [
    (lambda e: e["intervals"][0]["payloads"][0].update(values=[999]), "setpoint differs"),
    (lambda e: e["intervals"][1]["intervalPeriod"].update(start="2030-02-01T17:45:00Z"),
     "interval 1 starts"),
    (lambda e: e.update(eventName="ENWL/OTHER"), "eventName"),
    (lambda e: e["intervals"][0]["payloads"].pop(), "unsigned dispatch"),
    (lambda e: e["intervals"][0]["payloads"][-1].update(values=["a.b.c"]),
     "invalid signature"),
])
def test_a_tampered_dispatch_is_refused(tamper, reason):
    event = signed_event()
    tamper(event)
    with pytest.raises(profile.Refusal, match=reason):
        verify(event)


def reactive_timings(units: str = "KVAR") -> list[dict]:
    return [{"serviceType": "REACTIVE", "setpointTime": "2030-02-01T17:00:00Z",
             "setpointType": "DELTA", "units": units, "volume": 300}]


def test_a_kvar_dispatch_verifies_and_is_read_back_in_kvar():
    event = signed_event(serviceTimings=reactive_timings())
    event["intervals"][0]["payloads"].append({"type": "GB_SERVICE_TYPE", "values": ["REACTIVE"]})
    event["payloadDescriptors"] = [{"payloadType": "DISPATCH_SETPOINT_RELATIVE", "units": "KVAR"}]
    document = verify(event)
    assert acks.read_back(document, stage="ACTIONED", outcome="ACCEPTED")["setpoints"] == [
        {"setpointTime": "2030-02-01T17:00:00Z", "volume": 300, "units": "KVAR",
         "setpointType": "DELTA"}]


@pytest.mark.parametrize(("change", "reason"), [
    (lambda e: e.update(payloadDescriptors=[{"payloadType": "DISPATCH_SETPOINT_RELATIVE",
                                             "units": "KW"}]), "described in KW, signed in KVAR"),
    (lambda e: e["intervals"][0]["payloads"].append({"type": "GB_SERVICE_TYPE",
                                                     "values": ["REAL"]}), "GB_SERVICE_TYPE"),
])
def test_a_kvar_dispatch_the_event_presents_as_kw_is_refused(change, reason):
    event = signed_event(serviceTimings=reactive_timings())
    change(event)
    with pytest.raises(profile.Refusal, match=reason):
        verify(event)


def test_a_signed_document_whose_units_contradict_its_service_type_is_refused():
    with pytest.raises(profile.Refusal, match="not the KVAR of REACTIVE power"):
        verify(signed_event(serviceTimings=reactive_timings("KW")))


def test_a_signature_by_an_unknown_key_is_refused():
    event = signed_event()
    with pytest.raises(profile.Refusal, match="not in the operator's JWKS"):
        profile.verify_dispatch(event, lambda kid: None, fsp="acme", units={"bat1"})


def test_a_signature_by_another_key_with_the_same_kid_is_refused():
    impostor = jose.generate_private_key()
    with pytest.raises(profile.Refusal, match="does not verify"):
        profile.verify_dispatch(signed_event(), lambda kid: jose.public_jwk(impostor, kid),
                                fsp="acme",
                                units={"bat1"})


def test_a_dispatch_for_another_fsps_unit_is_refused():
    with pytest.raises(profile.Refusal, match="not a unit of this site"):
        profile.verify_dispatch(signed_event(), operator_keys, fsp="zeta", units={"bat1"})


def test_jws_with_another_algorithm_is_refused():
    header = jose.b64url_encode(b'{"alg":"none","kid":"k"}')
    token = f"{header}.{jose.b64url_encode(b'{}')}."
    with pytest.raises(jose.SignatureError, match="not EdDSA"):
        jose.verify(token, {"keys": [jose.public_jwk(OPERATOR_KEY, "k")]})


def test_the_read_back_signs_exactly_what_the_profile_defines():
    document = verify(signed_event())
    site_key = jose.generate_private_key()
    signed = acks.read_back(document, stage="ACTIONED", outcome="FAILED", reason="fault")
    payloads = {p["type"]: p["values"] for p in acks.ack_payloads(
        signed, site_key, "s", signed_at=datetime(2030, 2, 1, 16, 59, 1, tzinfo=UTC))}
    assert payloads["GB_ACK_SETPOINTS"] == ["2030-02-01T17:00:00Z", 250, "KW", "DELTA",
                                            "2030-02-01T17:30:00Z", 120.5, "KW", "DELTA"]
    site_jwks = {"keys": [jose.public_jwk(site_key, "s")]}
    assert jose.verify(payloads["GB_ACK_JWS"][0], site_jwks) == {
        "stage": "ACTIONED", "status": "RUN", "dispatchRef": "ENWL-0042", "fspId": "acme",
        "dispatchUnit": "bat1", "revision": 1, "outcome": "FAILED", "reason": "fault",
        "signedAt": "2030-02-01T16:59:01Z", "setpoints": [
            {"setpointTime": "2030-02-01T17:00:00Z", "volume": 250, "units": "KW",
             "setpointType": "DELTA"},
            {"setpointTime": "2030-02-01T17:30:00Z", "volume": 120.5, "units": "KW",
             "setpointType": "DELTA"}]}


# --- the agent's dispatch handling ------------------------------------------------------------


def test_a_verified_revision_is_acknowledged_received_then_actioned(agent):
    agent.key_for = operator_keys
    agent.process_dispatch(signed_event())
    stages = [p[2]["resources"][0]["intervals"][0]["payloads"][0]["values"][0]
              for p in agent.transport.posts()]
    assert stages == ["RECEIVED", "ACTIONED"]
    agent.process_dispatch(signed_event())  # polled again: nothing new
    assert len(agent.transport.posts()) == 2


def test_a_lower_revision_after_a_higher_one_is_ignored(agent):
    agent.key_for = operator_keys
    agent.process_dispatch(signed_event(revision=2))
    agent.process_dispatch(signed_event(revision=1))
    assert len(agent.transport.posts()) == 2  # RECEIVED and ACTIONED of revision 2 only


def test_a_refusal_is_reported_once_per_refused_content(agent):
    agent.key_for = lambda kid: None
    agent.process_dispatch(signed_event())
    agent.process_dispatch(signed_event())
    agent.flush()
    (post,) = agent.transport.posts()
    values = {p["type"]: p["values"] for p in post[2]["resources"][0]["intervals"][0]["payloads"]}
    assert values["GB_ACK_STAGE"] == ["REFUSED"] and values["GB_REVISION"] == [1]


def test_a_key_rotated_moments_after_the_last_fetch_defers_instead_of_refusing(agent):
    state = {"known": False}

    def rotating(kid):
        if not state["known"]:
            raise profile.KeyNotFetchedYet(kid)  # fetched moments ago; not there yet
        return operator_keys(kid)

    agent.key_for = rotating
    agent.process_dispatch(signed_event())
    agent.flush()
    assert agent.transport.posts() == []  # neither refused nor acted on
    state["known"] = True  # a later poll: the JWKS has the new key
    agent.process_dispatch(signed_event())
    stages = [p[2]["resources"][0]["intervals"][0]["payloads"][0]["values"][0]
              for p in agent.transport.posts()]
    assert stages == ["RECEIVED", "ACTIONED"]


def test_key_lookup_refetches_only_after_the_minimum_interval(agent, monkeypatch):
    from ven_client import agent as agent_module

    fetches = []
    monkeypatch.setattr(agent, "_load_jwks", lambda: fetches.append(1))
    agent._jwks = {"old": jose.public_jwk(OPERATOR_KEY, "old")}
    agent._jwks_fetched_at = agent_module.time.monotonic()
    with pytest.raises(profile.KeyNotFetchedYet):
        agent.key_for("new")
    assert fetches == []
    agent._jwks_fetched_at -= agent_module.JWKS_REFETCH_MIN_S
    assert agent.key_for("new") is None and fetches == [1]  # fetched: really unknown


def test_after_a_crash_while_actioning_the_handler_is_not_run_again(agent, tmp_path):
    marker = tmp_path / "ran"
    agent.config.handler_command = [sys.executable, "-c",
                                    f"open({str(marker)!r}, 'a').write('x')"]
    agent.key_for = operator_keys
    document = verify(signed_event())
    with agent.store.transaction() as conn:
        agent.store.add_revision(conn, operator="ENWL", dispatch_ref="ENWL-0042", revision=1,
                                 event_id="ev1", program_id="p1", document=document, jws="j")
    (revision,) = agent.store.revisions_in("received")
    agent.store.mark_actioning(revision)  # ...and then the process died

    agent.recover()
    agent.action_received()
    assert not marker.exists()
    agent.flush()
    (actioned,) = agent.transport.posts()
    values = {p["type"]: p["values"] for p in
              actioned[2]["resources"][0]["intervals"][0]["payloads"]}
    assert values["GB_ACK_OUTCOME"] == ["FAILED"] and values["GB_ACK_REASON"] == [INTERRUPTED]


# --- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_configuration_round_trips(tmp_path, suffix):
    config = config_module.Config(
        vtn_url="https://vtn.example:8443", openadr_version="3.0.1", client_id="id",
        client_secret="s3cr\"et\\", dispatch_units=["bat1", "hp1"],
        handler_command=["/usr/local/bin/ctl", "--flag", "ü"], poll_interval_s=2.5,
        tls_verify=False)
    path = tmp_path / f"config{suffix}"
    config_module.save(config, path)
    assert config_module.load(path) == config
    assert path.stat().st_mode & 0o777 == 0o600


def test_configuration_refuses_unknown_keys_and_bad_values(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('vtn_url = "https://x"\nclient_id = "a"\nclient_secret = "b"\npoll = 1\n')
    with pytest.raises(config_module.ConfigError, match="unknown configuration keys: poll"):
        config_module.load(path)
    path.write_text('vtn_url = "https://x"\nclient_id = "a"\nclient_secret = "b"\n'
                    'openadr_version = "2.0"\n')
    with pytest.raises(config_module.ConfigError, match="openadr_version"):
        config_module.load(path)


def test_the_secret_may_come_from_a_file(tmp_path):
    (tmp_path / "secret").write_text("from-file\n")
    config = config_module.Config(client_secret_file=str(tmp_path / "secret"))
    assert config.secret() == "from-file"


# --- CSV drop folder ----------------------------------------------------------------------------


READINGS = ("unit,start,duration,type,value,quality,correction\n"
            "bat1,2026-11-21T10:00:00Z,PT30M,USAGE,-120.5,OK,\n"
            "bat1,2026-11-21T10:00:00+00:00,PT30M,DEMAND,-241,,\n"
            "hp1,2026-11-21T10:30:00Z,PT30M,USAGE,12,ESTIMATED,true\n")


def test_readings_become_one_interval_per_unit_and_period():
    (body,) = reports.parse_readings(READINGS, name="readings-1.csv").reports
    resources = {r["resourceName"]: r["intervals"] for r in body["resources"]}
    assert resources["bat1"] == [{"id": 0, "intervalPeriod": {
        "start": "2026-11-21T10:00:00Z", "duration": "PT30M"}, "payloads": [
        {"type": "USAGE", "values": [-120.5]}, {"type": "DATA_QUALITY", "values": ["OK"]},
        {"type": "DEMAND", "values": [-241]}]}]
    assert resources["hp1"][0]["payloads"] == [
        {"type": "USAGE", "values": [12]}, {"type": "DATA_QUALITY", "values": ["ESTIMATED"]},
        {"type": "GB_CORRECTION", "values": [True]}]
    assert {d["payloadType"]: d["units"] for d in body["payloadDescriptors"]} == {
        "USAGE": "KWH", "DEMAND": "KW"}


def test_availability_becomes_kw_per_window():
    (body,) = reports.parse_availability(
        "unit,start,end,available_kw\nbat1,2026-11-23T17:00:00Z,2026-11-23T18:30:00Z,480\n",
        name="availability-1.csv").reports
    assert body["resources"][0]["intervals"][0] == {
        "id": 0, "intervalPeriod": {"start": "2026-11-23T17:00:00Z", "duration": "PT1H30M"},
        "payloads": [{"type": "GB_AVAILABLE_KW", "values": [480]}]}


@pytest.mark.parametrize(("text", "problem"), [
    ("unit,start,duration,type,value\nbat1,yesterday,PT30M,USAGE,1\n", "line 2"),
    ("unit,start,duration,type,value\nbat1,2026-11-21T10:00:00,PT30M,USAGE,1\n", "UTC offset"),
    ("unit,start,duration,type,value\nbat1,2026-11-21T10:00:00Z,PT30M,VOLTS,1\n", "type"),
    ("unit,start,duration,type,value\nzz,2026-11-21T10:00:00Z,PT30M,USAGE,1\n", "not a unit"),
    ("unit,start,type,value\n", "lacks duration"),
])
def test_a_bad_readings_file_is_refused_whole(text, problem):
    with pytest.raises(reports.CsvError, match=problem):
        reports.parse_readings(text, name="r.csv", units={"bat1"})


def test_a_drop_file_is_queued_once_even_if_the_agent_died_before_moving_it(agent):
    drop = Path(agent.config.drop_dir)
    drop.mkdir()
    (drop / "readings-1.csv").write_text(READINGS)
    assert agent.ingest_drop_folder() == 1
    assert (drop / "done" / "readings-1.csv").exists()
    # A crash between queuing and moving: the same content is back in the folder.
    (drop / "done" / "readings-1.csv").rename(drop / "readings-1.csv")
    assert agent.ingest_drop_folder() == 0
    assert len(agent.store.messages("metering")) == 1
    assert not (drop / "readings-1.csv").exists()


def test_a_bad_drop_file_goes_to_failed_with_the_reason(agent):
    drop = Path(agent.config.drop_dir)
    drop.mkdir()
    (drop / "availability-1.csv").write_text("unit,start,end,available_kw\nbat1,x,y,1\n")
    agent.ingest_drop_folder()
    assert "line 2" in (drop / "failed" / "availability-1.csv.error").read_text()
    assert agent.store.messages() == []


def test_queued_readings_wait_for_the_metering_event_then_go_to_it(agent):
    drop = Path(agent.config.drop_dir)
    drop.mkdir()
    (drop / "readings-1.csv").write_text(READINGS)
    agent.ingest_drop_folder()
    agent.flush()
    assert agent.transport.posts() == []
    agent.special_events["metering"] = {"id": "m1", "programID": "pm"}
    agent.flush()
    (post,) = agent.transport.posts()
    assert post[2]["eventID"] == "m1" and post[2]["clientName"] == "ven-1"


@pytest.mark.parametrize(("name", "kind"), [("readings-1.csv", "METERING"),
                                            ("availability-1.csv", "AVAILABILITY")])
def test_queued_reports_are_signed_once_with_the_site_key_over_what_they_declare(
        agent, name, kind):
    drop = Path(agent.config.drop_dir)
    drop.mkdir()
    (drop / name).write_text(READINGS if kind == "METERING" else
                             "unit,start,end,available_kw\n"
                             "bat1,2030-02-01T16:00:00Z,2030-02-01T18:00:00Z,450\n")
    agent.ingest_drop_folder()
    agent.special_events[kind.lower()] = {"id": "e9", "programID": "p9"}
    agent.flush()
    agent.flush()  # sent once: nothing is signed or sent again
    (post,) = agent.transport.posts()
    body = post[2]
    key, kid = agent.signing_key()
    signed = report_signing.verify_report(
        kind=kind, fsp="acme", resources=body["resources"],
        payload_descriptors=body.get("payloadDescriptors"),
        jwks={"keys": [jose.public_jwk(key, kid)]})
    assert signed.kid == "site-1" and signed.statement["resources"] == \
        report_signing.content_resources(body["resources"])
    assert [r["resourceName"] for r in body["resources"]][-1] == "GB_REPORT_SIGNATURE"


# --- clock skew -----------------------------------------------------------------------------------


def test_clock_skew_is_measured_from_the_date_header():
    now = 1_800_000_000.0
    assert clock_skew(email.utils.formatdate(now + 42, usegmt=True), now) == 42
    assert clock_skew("garbage", now) is None and clock_skew(None, now) is None


def test_clock_skew_beyond_the_threshold_is_warned_about_once(agent_config):
    stream = io.StringIO()
    logs.configure("json", stream=stream)
    try:
        transport = Transport(agent_config, clock=lambda: 1_800_000_000.0)
        ahead = FakeResponse(200, headers={"Date": email.utils.formatdate(1_800_000_030,
                                                                          usegmt=True)})
        transport._check_skew(ahead)
        transport._check_skew(ahead)
        transport.close()
    finally:
        logs.configure("json")
    warnings = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [w["event"] for w in warnings] == ["clock_skew"]
    assert warnings[0]["skew_s"] == 30 and warnings[0]["level"] == "warning"


# --- logs -----------------------------------------------------------------------------------------


def test_logs_never_carry_secrets():
    stream = io.StringIO()
    logs.configure("json", stream=stream)
    try:
        logs.register_secret("tok-1234567890")
        logs.log("x", client_secret="hunter22", access_token="abc", authorization="Bearer q",
                 error="401 for tok-1234567890 at /events", nested={"private_key": "pem"})
        logs.configure("kv", stream=stream)
        logs.log("y", detail="sent tok-1234567890")
    finally:
        logs.configure("json")
    text = stream.getvalue()
    assert "hunter22" not in text and "tok-1234567890" not in text and "pem" not in text
    record = json.loads(text.splitlines()[0])
    assert record["client_secret"] == record["access_token"] == logs.REDACTED
    assert record["error"] == f"401 for {logs.REDACTED} at /events"
    assert text.splitlines()[1].endswith(f'detail="sent {logs.REDACTED}"')


# --- handlers ---------------------------------------------------------------------------------


def command(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_a_command_handler_gets_the_instruction_on_stdin_and_exit_0_accepts(tmp_path):
    out = tmp_path / "got.json"
    result = handler.run_command(
        command(f"import sys; open({str(out)!r}, 'w').write(sys.stdin.read())"),
        {"kind": "GB_DISPATCH", "x": 1}, 10)
    assert result == handler.Result("ACCEPTED")
    assert json.loads(out.read_text()) == {"kind": "GB_DISPATCH", "x": 1}


def test_a_command_handler_failing_reports_its_exit_and_last_error_line():
    result = handler.run_command(command("import sys; print('boom', file=sys.stderr); "
                                         "sys.exit(3)"), {}, 10)
    assert result == handler.Result("FAILED", "handler exited with 3: boom")


def test_a_command_handler_may_answer_in_json():
    result = handler.run_command(command(
        "import json; print(json.dumps({'outcome': 'FAILED', 'reason': 'inverter fault'}))"),
        {}, 10)
    assert result == handler.Result("FAILED", "inverter fault")


def test_a_handler_that_hangs_times_out_as_failed():
    started = time.monotonic()
    result = handler.run_command(command("import time; time.sleep(30)"), {}, 0.5)
    assert result == handler.Result("FAILED", "handler timed out after 0.5 s")
    assert time.monotonic() - started < 20  # far from the handler's 30 s, even when busy


def test_a_python_entry_point_handler(monkeypatch, tmp_path):
    module = tmp_path / "site_control.py"
    module.write_text("def act(i):\n    return {'outcome': 'FAILED', 'reason': i['why']}\n"
                      "def ok(i):\n    return None\n"
                      "def crash(i):\n    raise RuntimeError('no comms')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert handler.run_entry_point("site_control:act", {"why": "soc"}, 5) == \
        handler.Result("FAILED", "soc")
    assert handler.run_entry_point("site_control:ok", {}, 5) == handler.Result("ACCEPTED")
    assert handler.run_entry_point("site_control:crash", {}, 5) == \
        handler.Result("FAILED", "RuntimeError: no comms")


def test_a_dispatch_whose_service_period_has_ended_is_history_not_an_instruction(agent):
    agent.key_for = operator_keys
    agent.process_dispatch(signed_event(serviceStart="2020-02-01T17:00:00Z",
                                        serviceEnd="2020-02-01T18:00:00Z"))
    agent.flush()
    assert agent.transport.posts() == [] and agent.store.messages() == []
    assert agent.store.revisions_in("received") == []


def test_an_unexpected_error_in_a_cycle_is_logged_and_backed_off_not_fatal(agent, capsys):
    agent.transport.answer("GET", "events", ValueError("surprise"))
    assert agent.run(once=True) == 1
    record = json.loads(capsys.readouterr().out.splitlines()[-2])
    assert record["event"] == "cycle_error" and record["error"] == "ValueError: surprise"


def test_an_outage_is_backed_off_and_recorded_for_status(agent, capsys):
    agent.transport.answer("GET", "events", Unavailable("VTN unreachable"))
    assert agent.run(once=True) == 1
    record = json.loads(capsys.readouterr().out.splitlines()[-2])
    assert record["event"] == "cycle_failed" and record["failures"] == 1
    store = Store(agent.config.database_path)
    assert store.get("comms_state") == "backoff"
    assert store.get("last_error") == "VTN unreachable"
    store.close()


def test_a_revision_received_before_a_restart_reaches_the_handler_before_a_newer_one(
        agent, tmp_path):
    log = tmp_path / "handled"
    agent.config.handler_command = [
        sys.executable, "-c", "import json, sys; d = json.load(sys.stdin)['dispatch']; "
        f"open({str(log)!r}, 'a').write(str(d['revision']))"]
    agent.key_for = operator_keys
    with agent.store.transaction() as conn:  # revision 1 held, handler not yet started
        agent.store.add_revision(conn, operator="ENWL", dispatch_ref="ENWL-0042", revision=1,
                                 event_id="ev1", program_id="p1",
                                 document=verify(signed_event()), jws="j")
    agent.transport.answer("GET", "events", FakeResponse(200, [signed_event(revision=2)]))
    agent.cycle()
    assert log.read_text() == "12"
