"""The conformance sandbox's push scenarios end to end: a VTN of its own over HTTPS that
publishes to a real Mosquitto (dynamic security, provisioned by the VTN), real
``ven_client`` agents, a real HTTPS webhook receiver on loopback, and runs through the CLI
(``manage.py conformance run``).

* ``mqtt``: our agent (push on, polling only every 30 s) discovered its topics and wakes on
  its dispatch: passes; a VEN that never asked for its topics is not applicable.
* ``webhook``: our agent takes no webhooks: not applicable; the same site with a
  subscription whose callback echoes and accepts passes; a callback that stopped echoing
  fails exactly ``webhook-echo``; a callback that refuses notifications fails exactly
  ``webhook-delivered``. No run ever notifies the VEN of the decoy event for another VEN.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.fixtures.agent import OPERATOR, AgentWorld, Site, wait_for
from tests.fixtures.broker import ACL_CONFIG, Broker
from tests.fixtures.receiver import WebhookReceiver
from tests.fixtures.requirements import starts_processes
from tests.fixtures.server import MANAGE, ROOT, E2EDatabase, PinnedSession, VtnServer

pytestmark = pytest.mark.slow

POLL_S = 30.0
CLI_OPTIONS = ["--poll-interval", str(POLL_S), "--deadline", "15", "--margin", "2",
               "--heartbeat-interval", "120", "--push-within", "5"]


@pytest.fixture(scope="module")
@starts_processes
def push_vtn(tmp_path_factory) -> Iterator[tuple[VtnServer, Broker, WebhookReceiver]]:
    workdir = tmp_path_factory.mktemp("conformance_push")
    admin = secrets.token_urlsafe(16)
    broker = Broker(workdir, ACL_CONFIG, admin=admin)
    broker.start()
    database = E2EDatabase(os.environ.get("DATABASE_URL", ""), workdir)
    server = VtnServer(workdir, database)
    server.env.pop("CELERY_BROKER_URL", None)  # deliveries from the process that changed
    server.env.update({
        "VTN_MQTT_BROKER_URL": f"mqtt://127.0.0.1:{broker.port}",
        "VTN_MQTT_AUTHENTICATION": "OAUTH2_BEARER_TOKEN",
        "VTN_MQTT_DYNSEC_USERNAME": "vtn-admin", "VTN_MQTT_DYNSEC_PASSWORD": admin,
        "VTN_WEBHOOK_CA_BUNDLE": server.ca_bundle, "VTN_WEBHOOK_RETRY_DELAYS": "0.5",
        "VTN_PKI_DIR": str(server.pki_dir),
        "DISPATCH_LAST_SEEN_RESOLUTION_SECONDS": "0.2"})
    receiver = None
    try:
        server.prepare()
        server.start()
        receiver = WebhookReceiver(server.pki_dir / "server.pem",
                                   server.pki_dir / "server.key").start()
        yield server, broker, receiver
    finally:
        if receiver is not None:
            receiver.stop()
        server.stop(graceful=False)
        broker.stop()
        database.drop()


@pytest.fixture(scope="module")
def world(push_vtn, tmp_path_factory) -> Iterator[AgentWorld]:
    server, _, _ = push_vtn
    world = AgentWorld(server=server, root=tmp_path_factory.mktemp("push_agents"))
    try:
        yield world
    finally:
        world.close()


@pytest.fixture(scope="module")
def pushed_site(world: AgentWorld) -> Site:
    """One site whose agent polls every 30 s with MQTT push on, connected to the broker."""
    site = world.onboard(poll_interval_s=POLL_S, poll_jitter=0.0)
    world.start_agent(site)

    def push_state() -> str:
        return str(json.loads(world.cli(site, "status").stdout).get("push"))

    wait_for(lambda: push_state() == "connected", 60, "the agent connected to the broker",
             interval=1.0)
    return site


def cli_run(server: VtnServer, site: Site, scenario: str, out: Path) -> tuple[int, dict]:
    result = subprocess.run(
        [sys.executable, str(MANAGE), "conformance", "run", "--fsp", f"{OPERATOR}/{site.fsp}",
         "--scenario", scenario, *CLI_OPTIONS, "--out", str(out)], cwd=ROOT, env=server.env,
        capture_output=True, text=True, timeout=300)
    assert (out / "report.json").exists(), result.stdout + result.stderr
    return result.returncode, json.loads((out / "report.json").read_text())


def scenario(report: dict, name: str) -> dict:
    return next(s for s in report["scenarios"] if s["name"] == name)


def failed(report: dict, name: str) -> set[str]:
    return {c["name"] for c in scenario(report, name)["checks"] if not c["passed"]}


def ven_session(server: VtnServer, site: Site) -> requests.Session:
    cert = (site.onboarding["certificate"]["cert_path"],
            site.onboarding["certificate"]["key_path"])
    response = requests.post(server.url("3.1.0", "auth/token"), data={
        "grant_type": "client_credentials", "client_id": site.onboarding["client_id"],
        "client_secret": site.onboarding["client_secret"]}, cert=cert,
        verify=server.ca_bundle, timeout=30)
    assert response.status_code == 200, response.text
    session = PinnedSession()
    session.verify = server.ca_bundle
    session.cert = cert
    session.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
    return session


def subscribe(server: VtnServer, site: Site, callback_url: str) -> str:
    """The VEN subscribes to its events with one callback; every earlier one goes."""
    with ven_session(server, site) as session:
        url = server.url("3.1.0", "subscriptions")
        for old in session.get(url, timeout=30).json():
            assert session.delete(f"{url}/{old['id']}", timeout=30).status_code == 200
        created = session.post(url, json={
            "clientName": site.onboarding["ven_name"],
            "objectOperations": [{"objects": ["EVENT"], "operations": ["CREATE", "UPDATE"],
                                  "callbackUrl": callback_url, "bearerToken": "cb-token"}]},
            timeout=30)
    assert created.status_code == 201, created.text
    return created.json()["id"]


# --- MQTT --------------------------------------------------------------------------------------


def test_our_agent_passes_mqtt_and_webhook_is_not_applicable(push_vtn, pushed_site,
                                                            tmp_path):
    server, _, _ = push_vtn
    code, report = cli_run(server, pushed_site, "mqtt,webhook", tmp_path / "out")

    mqtt = scenario(report, "mqtt")
    assert code == 0 and report["passed"], json.dumps(mqtt, indent=1)[:6000]
    assert [c["name"] for c in mqtt["checks"]] == [
        "mqtt-topics-discovered", "mqtt-woken", "acks-valid", "heartbeat-regular"]
    assert all(c["passed"] for c in mqtt["checks"])
    woken = next(c for c in mqtt["checks"] if c["name"] == "mqtt-woken")
    assert woken["evidence"]["acknowledgements"][0]["secondsAfterIssue"] < 5
    webhook = scenario(report, "webhook")
    assert webhook["notApplicable"].startswith("the VEN has no subscription")
    assert webhook["checks"] == [] and webhook["passed"]
    assert report["summary"]["notApplicable"] == 1
    assert "NOT APPLICABLE" in (tmp_path / "out" / "report.html").read_text()


def test_a_ven_that_never_asked_for_its_topics_is_not_applicable(push_vtn, world, tmp_path):
    server, _, _ = push_vtn
    site = world.onboard(push=False)  # it never runs: no discovery, no subscription

    code, report = cli_run(server, site, "mqtt", tmp_path / "out")

    assert code == 0 and report["passed"]
    assert "never asked for its MQTT topics" in scenario(report, "mqtt")["notApplicable"]


# --- webhooks ----------------------------------------------------------------------------------


def test_a_webhook_receiver_that_echoes_and_accepts_passes(push_vtn, pushed_site, tmp_path):
    server, _, receiver = push_vtn
    path = f"/ok/{secrets.token_hex(4)}"
    subscribe(server, pushed_site, receiver.url(path))

    code, report = cli_run(server, pushed_site, "webhook", tmp_path / "out")

    webhook = scenario(report, "webhook")
    assert code == 0, json.dumps(webhook, indent=1)[:6000]
    assert [c["name"] for c in webhook["checks"]] == [
        "webhook-echo", "webhook-delivered", "webhook-private"]
    event_id = webhook["facts"]["eventID"]
    notified = [r.body["object"]["id"] for r in receiver.posts(path)]
    assert event_id in notified
    assert webhook["facts"]["decoyEventID"] not in notified
    assert receiver.gets(path)  # the sandbox ran the echo check itself


def test_a_callback_that_stopped_echoing_fails_only_the_echo_check(push_vtn, pushed_site,
                                                                   tmp_path):
    server, _, receiver = push_vtn
    # Stored without the VTN's own check (the test VTN skips it); the sandbox runs it.
    subscribe(server, pushed_site, receiver.url(f"/bad-echo/{secrets.token_hex(4)}"))

    code, report = cli_run(server, pushed_site, "webhook", tmp_path / "out")

    assert code == 1
    assert failed(report, "webhook") == {"webhook-echo"}
    echo = next(c for c in scenario(report, "webhook")["checks"] if c["name"] == "webhook-echo")
    assert "echo value" in echo["observed"]


def test_a_callback_that_refuses_notifications_fails_only_delivery(push_vtn, pushed_site,
                                                                   tmp_path):
    server, _, receiver = push_vtn
    subscribe(server, pushed_site, receiver.url(f"/fail/{secrets.token_hex(4)}"))

    code, report = cli_run(server, pushed_site, "webhook", tmp_path / "out")

    assert code == 1
    assert failed(report, "webhook") == {"webhook-delivered"}
