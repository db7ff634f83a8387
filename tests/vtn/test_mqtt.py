"""The MQTT notifier against a real Mosquitto (started by the test from the shipped
development config on a free port): topic discovery through /notifiers, delivery of a
VEN's own event on its per-VEN topic, nothing on another VEN's topic, and an API that
keeps answering while the broker is down."""

from __future__ import annotations

import json
import os
import queue
import secrets
import time
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest

from tests.fixtures.broker import ACL_CONFIG, Broker
from tests.fixtures.requirements import starts_processes
from tests.fixtures.server import E2EDatabase, VtnServer

V31 = "3.1.0"


class Listener:
    """A subscriber collecting (topic, JSON body) messages."""

    def __init__(self, port: int, topics: list[str], *, username: str | None = None,
                 password: str | None = None) -> None:
        self.messages: queue.Queue = queue.Queue()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        if username:
            self.client.username_pw_set(username, password)
        subscribed = queue.Queue()
        self.client.on_message = lambda c, u, m: self.messages.put(
            (m.topic, json.loads(m.payload), time.monotonic()))
        self.client.on_subscribe = lambda c, u, mid, codes, props: subscribed.put(codes)
        self.granted = []
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        for name in topics:
            self.client.subscribe(name, qos=1)
            self.granted.append([code.value for code in subscribed.get(timeout=5)])

    def get(self, timeout: float):
        return self.messages.get(timeout=timeout)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture(scope="module")
@starts_processes
def mqtt_stack(tmp_path_factory) -> Iterator[tuple[VtnServer, Broker]]:
    workdir = tmp_path_factory.mktemp("mqtt")
    broker = Broker(workdir)
    broker.start()
    database = E2EDatabase(os.environ.get("DATABASE_URL", ""), workdir)
    server = VtnServer(workdir, database)
    server.env.pop("CELERY_BROKER_URL", None)
    server.env.update({"VTN_MQTT_BROKER_URL": f"mqtt://127.0.0.1:{broker.port}",
                       "VTN_MQTT_AUTHENTICATION": "ANONYMOUS"})
    try:
        server.prepare()
        server.start()
        yield server, broker
    finally:
        server.stop(graceful=False)
        broker.stop()
        database.drop()


def ven(server: VtnServer, bl, label: str) -> dict:
    client = server.create_client("ven", "mqtt-ven", ven="mqtt-ven")
    url = server.url(V31, f"vens/{client['ven_id']}")
    body = {"objectType": "BL_VEN_REQUEST", "venName": client["ven_name"],
            "clientID": client["client_id"], "targets": [label]}
    assert bl.put(url, json=body).status_code == 200
    client["token"] = server.token(client)
    client["session"] = server.session(client["token"])
    return client


def test_mqtt_discovery_delivery_and_privacy(mqtt_stack):
    server, broker = mqtt_stack
    bl_client = server.create_client("bl", "mqtt-bl")
    bl = server.session(server.token(bl_client))
    notifiers = bl.get(server.url(V31, "notifiers")).json()
    assert notifiers == {"WEBHOOK": True, "MQTT": {
        "URIS": [f"mqtt://127.0.0.1:{broker.port}"], "serialization": "JSON",
        "authentication": {"method": "ANONYMOUS"}}}
    label_a, label_b = f"a-{secrets.token_hex(3)}", f"b-{secrets.token_hex(3)}"
    ven_a, ven_b = ven(server, bl, label_a), ven(server, bl, label_b)

    # Discovery: a VEN asks only for its own ven's topics; BL topics need read_all.
    mine = ven_a["session"].get(server.url(V31, f"notifiers/mqtt/topics/vens/{ven_a['ven_id']}"
                                               "/events"))
    assert mine.status_code == 200
    topics_a = mine.json()["topics"]
    assert set(topics_a) == {"CREATE", "UPDATE", "DELETE", "ALL"}
    assert ven_a["session"].get(server.url(
        V31, f"notifiers/mqtt/topics/vens/{ven_b['ven_id']}/events")).status_code == 404
    assert ven_a["session"].get(server.url(V31, "notifiers/mqtt/topics/events")
                                ).status_code == 403
    topics_b = ven_b["session"].get(server.url(
        V31, f"notifiers/mqtt/topics/vens/{ven_b['ven_id']}/events")).json()["topics"]
    bl_topics = bl.get(server.url(V31, "notifiers/mqtt/topics/events")).json()["topics"]

    listen_a = Listener(broker.port, [topics_a["ALL"]])
    listen_b = Listener(broker.port, [topics_b["ALL"]])
    listen_bl = Listener(broker.port, [bl_topics["CREATE"]])
    try:
        program = bl.post(server.url(V31, "programs"),
                          json={"programName": server.unique("mqtt-program")}).json()
        started = time.monotonic()
        event = bl.post(server.url(V31, "events"), json={
            "programID": program["id"], "eventName": "for-a", "targets": [label_a, "other"],
            "intervals": [{"id": 0, "payloads": [{"type": "SIMPLE", "values": [1]}]}]})
        assert event.status_code == 201
        name, body, arrived = listen_a.get(timeout=5)
        assert arrived - started < 1.0
        assert name == topics_a["CREATE"]
        assert body["operation"] == "CREATE" and body["object"]["id"] == event.json()["id"]
        assert body["object"]["targets"] == [label_a]  # only its own label, as in a GET
        bl_name, bl_body, _ = listen_bl.get(timeout=5)
        assert bl_name == bl_topics["CREATE"]
        assert set(bl_body["object"]["targets"]) == {label_a, "other"}
        with pytest.raises(queue.Empty):
            listen_b.get(timeout=1.0)
    finally:
        for listener in (listen_a, listen_b, listen_bl):
            listener.close()


def test_the_api_answers_while_the_broker_is_down(mqtt_stack):
    server, broker = mqtt_stack
    bl = server.session(server.token(server.create_client("bl", "mqtt-bl")))
    broker.stop()
    try:
        started = time.monotonic()
        response = bl.post(server.url(V31, "programs"),
                           json={"programName": server.unique("while-down")})
        assert response.status_code == 201
        assert time.monotonic() - started < 10  # not held up by the broker, even when busy
    finally:
        broker.start()


# --- broker access control (dynamic security, provisioned by the VTN) -------------------------

REFUSED = 0x80  # SUBACK "unspecified error": the broker refused the subscription


@pytest.fixture(scope="module")
@starts_processes
def acl_stack(tmp_path_factory) -> Iterator[tuple[VtnServer, Broker]]:
    workdir = tmp_path_factory.mktemp("mqtt_acl")
    admin = secrets.token_urlsafe(16)
    broker = Broker(workdir, ACL_CONFIG, admin=admin)
    broker.start()
    database = E2EDatabase(os.environ.get("DATABASE_URL", ""), workdir)
    server = VtnServer(workdir, database)
    server.env.pop("CELERY_BROKER_URL", None)
    server.env.update({"VTN_MQTT_BROKER_URL": f"mqtt://127.0.0.1:{broker.port}",
                       "VTN_MQTT_AUTHENTICATION": "OAUTH2_BEARER_TOKEN",
                       "VTN_MQTT_DYNSEC_USERNAME": "vtn-admin",
                       "VTN_MQTT_DYNSEC_PASSWORD": admin})
    try:
        server.prepare()
        server.start()
        yield server, broker
    finally:
        server.stop(graceful=False)
        broker.stop()
        database.drop()


def connect_as(port: int, username: str, password: str, topics: list[str],
               timeout: float = 10.0) -> Listener:
    """Connect once provisioning has caught up (it runs after the token is issued)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return Listener(port, topics, username=username, password=password)
        except (OSError, queue.Empty, mqtt.WebsocketConnectionError) as exc:
            if time.monotonic() > deadline:
                raise AssertionError(f"{username} could not connect: {exc!r}") from exc
            time.sleep(0.3)


def refused_to_connect(port: int, username: str, password: str) -> bool:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.username_pw_set(username, password)
    answer: queue.Queue = queue.Queue()
    client.on_connect = lambda c, u, flags, code, props: answer.put(code)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        return answer.get(timeout=5).is_failure
    finally:
        client.loop_stop()
        client.disconnect()


def test_the_broker_lets_a_ven_subscribe_only_to_its_own_topics(acl_stack):
    server, broker = acl_stack
    bl = server.session(server.token(server.create_client("bl", "acl-bl")))
    auth = bl.get(server.url(V31, "notifiers")).json()["MQTT"]["authentication"]
    assert auth == {"method": "OAUTH2_BEARER_TOKEN", "username": "{clientID}"}
    label_a, label_b = f"a-{secrets.token_hex(3)}", f"b-{secrets.token_hex(3)}"
    ven_a, ven_b = ven(server, bl, label_a), ven(server, bl, label_b)
    token_a = ven_a["token"]
    own = mqtt_topics(server, ven_a, ven_a["ven_id"])
    other = f"openadr3/vens/{ven_b['ven_id']}/events/+"
    listener = connect_as(broker.port, ven_a["client_id"], token_a,
                          [own, other, "openadr3/events/+", "openadr3/#"])
    try:
        assert listener.granted[0] == [1]
        assert listener.granted[1:] == [[REFUSED], [REFUSED], [REFUSED]]
        program = bl.post(server.url(V31, "programs"),
                          json={"programName": server.unique("acl-program")}).json()
        started = time.monotonic()
        for label in (label_b, label_a):  # B's event first: A must never see it
            assert bl.post(server.url(V31, "events"), json={
                "programID": program["id"], "targets": [label],
                "intervals": [{"id": 0, "payloads": [{"type": "SIMPLE", "values": [1]}]}],
            }).status_code == 201
        name, body, arrived = listener.get(timeout=5)
        assert arrived - started < 1.5
        assert name.startswith(f"openadr3/vens/{ven_a['ven_id']}/")
        assert body["object"]["targets"] == [label_a]
        with pytest.raises(queue.Empty):
            listener.get(timeout=1.0)
    finally:
        listener.close()
    # A wrong password, and a revoked client, cannot connect.
    assert refused_to_connect(broker.port, ven_a["client_id"], "not-the-token")
    server.manage("oadr_client", "revoke", ven_a["client_id"])
    deadline = time.monotonic() + 60
    while not refused_to_connect(broker.port, ven_a["client_id"], token_a):
        assert time.monotonic() < deadline, "the revoked client still connects"
        time.sleep(0.3)


def mqtt_topics(server: VtnServer, client: dict, ven_id: str) -> str:
    reply = client["session"].get(server.url(V31, f"notifiers/mqtt/topics/vens/{ven_id}/events"))
    assert reply.status_code == 200, reply.text
    return reply.json()["topics"]["ALL"]


# --- the agent wakes on MQTT --------------------------------------------------------------------

def test_the_agent_polls_at_once_when_its_topic_says_so(acl_stack, tmp_path):
    from tests.fixtures.agent import CYCLE_ENDS, AgentWorld, wait_for

    server, broker = acl_stack
    world = AgentWorld(server=server, root=tmp_path)
    try:
        # A 20 s poll interval: only a push wakes the agent before it (the dispatch is
        # issued a few seconds after the cycle that stored "connected"). Its status is
        # stored once a cycle, so the broker's loss shows at the next poll: the interval
        # is also how long that part waits.
        site = world.onboard(poll_interval_s=20.0, poll_jitter=0.0)
        world.start_agent(site)
        # The push start is logged with the state it has by then: "connecting", or
        # already "broker unreachable" when paho's first attempt failed before it (paho
        # retries after a second).
        wait_for(lambda: any(r.get("event") == "push" for r in site.log_records()), 30,
                 "the agent's push start")
        def status() -> dict:
            return json.loads(world.cli(site, "status").stdout)

        status_now = wait_for(lambda: (s := status())["push"] == "connected" and s, 30,
                              "the agent connected to the broker", interval=1.0)
        assert status_now["commsState"] == "online"
        time.sleep(1.0)  # its next poll is ~18 s away
        dispatch = world.issue(site, kw=120)

        def received():
            acks = world.acknowledgements(dispatch["reference"]).get(1, [])
            return [a for a in acks if a["stage"] == "received"]

        wait_for(received, 20, "RECEIVED acknowledged after a push")
        # The push woke the agent: the cycle that received the dispatch began with a
        # wake-up, not with the end of its 30-second poll interval (timed by the agent's
        # own log, so a busy machine cannot fail it).
        started_by = None
        for record in site.log_records():
            if record.get("event") in CYCLE_ENDS | {"woken"}:
                started_by = record["event"]
            if (record.get("event") == "dispatch_received"
                    and record.get("dispatch_ref") == dispatch["reference"]):
                break
        assert started_by == "woken", started_by

        # Broker gone: the agent says so and keeps polling.
        broker.stop()
        try:
            wait_for(lambda: "unreachable" in str(status()["push"]), 70,
                     "status reporting the broker unreachable", interval=1.0)
        finally:
            broker.start()
    finally:
        world.close()
