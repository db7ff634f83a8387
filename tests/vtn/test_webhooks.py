"""Webhook notifications end to end: a real VTN over HTTPS, a real Celery worker on Redis,
and a real HTTPS receiver on loopback (tests/fixtures/receiver.py).

The VTN here runs with the echo check on, private callback addresses allowed (the
receiver is on 127.0.0.1), the development CA trusted for receivers, and a short retry
schedule (two retries 0.5 s apart) so that breaking a subscription takes seconds.
"""

from __future__ import annotations

import copy
import json
import os
import secrets
import time
from collections.abc import Iterator

import pytest
import redis

from tests import spec
from tests.fixtures.receiver import WebhookReceiver
from tests.fixtures.requirements import starts_processes
from tests.fixtures.server import E2EDatabase, VtnServer, free_port
from tests.fixtures.worker import REDIS_URL, CeleryWorker

V31, V301 = "3.1.0", "3.0.1"
RETRIES = 2


class Stack:
    """The VTN, its worker, the receiver and a BL client, plus helpers."""

    def __init__(self, server: VtnServer, receiver: WebhookReceiver) -> None:
        self.server = server
        self.receiver = receiver
        self.bl = server.create_client("bl", "webhook-bl")
        self.bl_session = server.session(server.token(self.bl))

    def ven(self, label: str) -> dict:
        """A VEN client bound to a fresh ven granted ``label`` (set by BL)."""
        client = self.server.create_client("ven", "webhook-ven", ven="webhook-ven")
        response = self.bl_session.get(self.server.url(V31, "vens"),
                                       params={"venName": client["ven_name"]})
        ven = response.json()[0]
        ven["targets"] = [label]
        for key in ("id", "createdDateTime", "modificationDateTime"):
            ven.pop(key)
        ven["objectType"] = "BL_VEN_REQUEST"
        put = self.bl_session.put(self.server.url(V31, f"vens/{client['ven_id']}"), json=ven)
        assert put.status_code == 200, put.text
        client["session"] = self.server.session(self.server.token(client))
        client["label"] = label
        return client

    def program(self, targets: list[str] | None = None) -> dict:
        body = {"programName": self.server.unique("webhook-program")}
        if targets:
            body["targets"] = targets
        response = self.bl_session.post(self.server.url(V31, "programs"), json=body)
        assert response.status_code == 201, response.text
        return response.json()

    def event(self, program_id: str, targets: list[str] | None, name: str = "e") -> dict:
        body = {"programID": program_id, "eventName": name,
                "intervals": [{"id": 0, "payloads": [{"type": "SIMPLE", "values": [1]}]}]}
        if targets:
            body["targets"] = targets
        response = self.bl_session.post(self.server.url(V31, "events"), json=body)
        assert response.status_code == 201, response.text
        return response.json()

    def subscribe(self, session, version: str, program_id: str, path: str, *,
                  objects=("EVENT",), operations=("CREATE",), token: str | None = None,
                  expect: int = 201):
        entry = {"objects": list(objects), "operations": list(operations),
                 "callbackUrl": self.receiver.url(path)}
        if token:
            entry["bearerToken"] = token
        body = {"clientName": "webhook-test", "programID": program_id,
                "objectOperations": [entry]}
        response = session.post(self.server.url(version, "subscriptions"), json=body)
        assert response.status_code == expect, response.text
        return response

    def shell(self, code: str) -> str:
        return self.server.manage("shell", "-v", "0", "-c", code).stdout.strip().splitlines()[-1]


def path(name: str) -> str:
    return f"{name}/{secrets.token_hex(4)}"


def assert_notification(version: str, body: dict) -> None:
    """``body`` is the version's ``notification`` and its object the named object's schema.

    The documents' discriminator on ``object`` names no schema (EVENT vs ``event``), so
    the envelope and the object are checked separately, each against its component.
    """
    envelope = copy.deepcopy(spec.document(version)["components"]["schemas"]["notification"])
    envelope["properties"]["object"] = {"type": "object"}
    spec._validate(version, envelope, body, "notification")
    kind = body["objectType"].lower()
    spec._validate(version, {"$ref": f"#/components/schemas/{kind}"}, body["object"],
                   f"notification object ({kind})")


@pytest.fixture(scope="module")
@starts_processes
def stack(tmp_path_factory) -> Iterator[Stack]:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis at {REDIS_URL} is not reachable: {exc}")
    workdir = tmp_path_factory.mktemp("webhooks")
    database = E2EDatabase(os.environ.get("DATABASE_URL", ""), workdir)
    server = VtnServer(workdir, database)
    worker = None
    receiver = None
    try:
        server.prepare()
        settings = {"VTN_WEBHOOK_VERIFY_CALLBACKS": "true",
                    "VTN_CALLBACK_ALLOW_PRIVATE": "true",
                    "VTN_WEBHOOK_CA_BUNDLE": server.ca_bundle,
                    "VTN_WEBHOOK_RETRY_DELAYS": ",".join(["0.5"] * RETRIES),
                    "VTN_WEBHOOK_READ_TIMEOUT": "2"}
        server.env.update(settings)
        worker = CeleryWorker(server, workdir / "worker.log")
        queue = {"CELERY_BROKER_URL": REDIS_URL, "CELERY_TASK_DEFAULT_QUEUE": worker.queue}
        server.env.update(queue)
        worker.env.update(settings | queue)
        receiver = WebhookReceiver(server.pki_dir / "server.pem", server.pki_dir / "server.key",
                                   slow_seconds=4.0).start()
        server.start()
        worker.start()
        yield Stack(server, receiver)
    finally:
        if receiver is not None:
            receiver.stop()
        if worker is not None:
            worker.stop(graceful=False)
        server.stop(graceful=False)
        database.drop()


# --- callback verification -----------------------------------------------------------------

@pytest.mark.parametrize("version", [V31, V301])
def test_a_subscription_is_created_only_after_its_callback_echoes(stack, version):
    program = stack.program()
    good = path("ok")
    stack.subscribe(stack.bl_session, version, program["id"], good, token="tok-1")
    [check] = stack.receiver.gets(f"/{good}")
    assert check.headers["Authorization"] == "Bearer tok-1"

    def count() -> int:
        listed = stack.bl_session.get(stack.server.url(V31, "subscriptions"),
                                      params={"programID": program["id"]})
        return len(listed.json())

    before = count()
    refused = [stack.receiver.url(path("bad-echo")),
               f"https://127.0.0.1:{free_port()}/nothing-listens",
               stack.receiver.url(path("ok")).replace("https://", "http://")]
    for url in refused:
        body = {"clientName": "c", "programID": program["id"],
                "objectOperations": [{"objects": ["EVENT"], "operations": ["CREATE"],
                                      "callbackUrl": url}]}
        response = stack.bl_session.post(stack.server.url(version, "subscriptions"), json=body)
        assert response.status_code == 400, (url, response.text)
        assert response.headers["Content-Type"].startswith("application/json")
        assert "callbackUrl" in response.json()["detail"]
    assert count() == before


def test_changing_the_callback_url_is_checked_again(stack):
    program = stack.program()
    created = stack.subscribe(stack.bl_session, V31, program["id"], path("ok")).json()
    body = copy.deepcopy({key: created[key]
                          for key in ("clientName", "programID", "objectOperations")})
    body["objectOperations"][0]["callbackUrl"] = stack.receiver.url(path("bad-echo"))
    url = stack.server.url(V31, f"subscriptions/{created['id']}")
    assert stack.bl_session.put(url, json=body).status_code == 400
    assert stack.bl_session.get(url).json()["objectOperations"] == created["objectOperations"]
    new = path("ok")
    body["objectOperations"][0]["callbackUrl"] = stack.receiver.url(new)
    assert stack.bl_session.put(url, json=body).status_code == 200
    assert len(stack.receiver.gets(f"/{new}")) == 1


# --- delivery and privacy ------------------------------------------------------------------

@pytest.mark.parametrize("version", [V31, V301])
def test_a_ven_is_notified_of_its_own_event_only(stack, version):
    label_a, label_b = f"grp-{secrets.token_hex(3)}", f"grp-{secrets.token_hex(3)}"
    ven_a, ven_b = stack.ven(label_a), stack.ven(label_b)
    program = stack.program()
    path_a, path_b, path_bl = path("ok"), path("ok"), path("ok")
    stack.subscribe(ven_a["session"], version, program["id"], path_a, token="secret-a")
    stack.subscribe(ven_b["session"], version, program["id"], path_b)
    stack.subscribe(stack.bl_session, version, program["id"], path_bl)

    event = stack.event(program["id"], [label_a, "someone-else"])
    [got] = stack.receiver.wait_for(f"/{path_a}")
    assert got.headers["Authorization"] == "Bearer secret-a"
    assert got.headers["X-OpenADR-Notification-Id"]
    assert_notification(version, got.body)
    assert got.body["objectType"] == "EVENT"
    assert got.body["operation"] == ("CREATE" if version == V31 else "POST")
    assert got.body["object"]["id"] == event["id"]
    # Target hiding as in a GET: VEN A sees only its own label among the targets.
    if version == V31:
        assert got.body["object"]["targets"] == [label_a]
    else:
        assert [v for t in got.body["object"]["targets"] for v in t["values"]] == [label_a]
    [bl_got] = stack.receiver.wait_for(f"/{path_bl}")
    assert_notification(version, bl_got.body)
    assert "someone-else" in json.dumps(bl_got.body["object"]["targets"])

    # What VEN A is told it could also GET; VEN B could not, and is told nothing.
    seen = ven_a["session"].get(stack.server.url(version, f"events/{event['id']}"))
    assert seen.status_code == 200
    assert ven_b["session"].get(stack.server.url(version, f"events/{event['id']}")
                                ).status_code == 404
    stack.event(program["id"], [label_b], name="for-b")  # B's own event, after A's
    [b_got] = stack.receiver.wait_for(f"/{path_b}")
    assert b_got.body["object"]["eventName"] == "for-b"
    assert len(stack.receiver.posts(f"/{path_b}")) == 1
    assert len(stack.receiver.posts(f"/{path_a}")) == 1


def test_other_vens_objects_and_unasked_operations_are_not_notified(stack):
    ven_a, ven_b = stack.ven(f"g-{secrets.token_hex(3)}"), stack.ven(f"g-{secrets.token_hex(3)}")
    program = stack.program()
    watch = path("ok")
    stack.subscribe(ven_a["session"], V31, program["id"], watch,
                    objects=("REPORT", "EVENT"), operations=("CREATE",))
    open_event = stack.event(program["id"], None, name="open")  # untargeted: everyone sees
    report = {"eventID": open_event["id"], "clientName": "b", "resources": []}
    assert ven_b["session"].post(stack.server.url(V31, "reports"), json=report
                                 ).status_code == 201
    own = {"eventID": open_event["id"], "clientName": "a", "resources": []}
    assert ven_a["session"].post(stack.server.url(V31, "reports"), json=own).status_code == 201
    first, second = stack.receiver.wait_for(f"/{watch}", 2)
    assert (first.body["objectType"], second.body["objectType"]) == ("EVENT", "REPORT")
    assert second.body["object"]["clientName"] == "a"
    # An update was not asked for: nothing more arrives.
    update = {k: open_event[k] for k in ("programID", "eventName", "intervals")}
    update["eventName"] = "renamed"
    assert stack.bl_session.put(stack.server.url(V31, f"events/{open_event['id']}"),
                                json=update).status_code == 200
    time.sleep(1.0)
    assert len(stack.receiver.posts(f"/{watch}")) == 2


def test_a_program_filter_applies(stack):
    program, other = stack.program(), stack.program()
    watch = path("ok")
    stack.subscribe(stack.bl_session, V31, program["id"], watch)
    stack.event(other["id"], None, name="elsewhere")
    stack.event(program["id"], None, name="here")
    [got] = stack.receiver.wait_for(f"/{watch}")
    assert got.body["object"]["eventName"] == "here"
    time.sleep(0.5)
    assert len(stack.receiver.posts(f"/{watch}")) == 1


def test_notifications_arrive_in_commit_order_with_distinct_ids(stack):
    program = stack.program()
    watch = path("ok")
    stack.subscribe(stack.bl_session, V31, program["id"], watch,
                    operations=("CREATE", "UPDATE"))
    event = stack.event(program["id"], None, name="v0")
    url = stack.server.url(V31, f"events/{event['id']}")
    for n in range(1, 8):
        body = {"programID": program["id"], "eventName": f"v{n}",
                "intervals": event["intervals"]}
        assert stack.bl_session.put(url, json=body).status_code == 200
    got = stack.receiver.wait_for(f"/{watch}", 8)
    assert [g.body["object"]["eventName"] for g in got] == [f"v{n}" for n in range(8)]
    assert [g.body["operation"] for g in got] == ["CREATE"] + ["UPDATE"] * 7
    assert len({g.headers["X-OpenADR-Notification-Id"] for g in got}) == 8


def test_a_slow_receiver_does_not_delay_others(stack):
    program = stack.program()
    slow, fast = path("slow"), path("ok")
    stack.subscribe(stack.bl_session, V31, program["id"], slow)
    stack.subscribe(stack.bl_session, V31, program["id"], fast)
    stack.event(program["id"], None)
    [got] = stack.receiver.wait_for(f"/{fast}", timeout=30)
    # Compared with the slow receiver's own hold rather than a wall-clock budget, so a
    # busy machine cannot fail it: the fast one was served while the slow one still held.
    held = stack.receiver.posts(f"/{slow}")
    assert held == [] or got.time < held[0].time


# --- failures ------------------------------------------------------------------------------

def _state(stack: Stack, subscription_id: str) -> dict:
    code = ("import json; from vtn.models import Subscription as S; "
            f"s = S.objects.get(pk={subscription_id!r}); "
            "print(json.dumps({'broken': s.broken_at is not None, "
            "'failures': s.delivery_failures, 'error': s.last_error}))")
    return json.loads(stack.shell(code))


def test_retries_keep_the_notification_id_then_the_subscription_breaks(stack):
    program = stack.program()
    failing = path("fail")
    created = stack.subscribe(stack.bl_session, V31, program["id"], failing).json()
    stack.event(program["id"], None, name="first")
    attempts = stack.receiver.wait_for(f"/{failing}", RETRIES + 1, timeout=60)
    assert len({a.headers["X-OpenADR-Notification-Id"] for a in attempts}) == 1
    deadline = time.monotonic() + 30
    while not (state := _state(stack, created["id"]))["broken"]:
        assert time.monotonic() < deadline, state
        time.sleep(0.2)
    assert state["failures"] == RETRIES + 1 and "500" in state["error"]
    log = stack.server.manage("security_log", "--kind", "webhook_broken",
                              "--client", stack.bl["client_id"]).stdout
    assert created["id"] in log

    # Broken: nothing more is attempted.
    stack.event(program["id"], None, name="second")
    time.sleep(1.5)
    assert len(stack.receiver.posts(f"/{failing}")) == RETRIES + 1

    # The owner points it at a working receiver: it recovers and delivers again.
    healed = path("ok")
    body = copy.deepcopy({key: created[key]
                          for key in ("clientName", "programID", "objectOperations")})
    body["objectOperations"][0]["callbackUrl"] = stack.receiver.url(healed)
    url = stack.server.url(V31, f"subscriptions/{created['id']}")
    assert stack.bl_session.put(url, json=body).status_code == 200
    assert _state(stack, created["id"])["broken"] is False
    stack.event(program["id"], None, name="third")
    [got] = stack.receiver.wait_for(f"/{healed}")
    assert got.body["object"]["eventName"] == "third"


def test_a_redirect_is_not_followed(stack):
    program = stack.program()
    redirecting = path("redirect")
    created = stack.subscribe(stack.bl_session, V31, program["id"], redirecting).json()
    stack.event(program["id"], None)
    stack.receiver.wait_for(f"/{redirecting}", RETRIES + 1, timeout=60)
    target = "/ok/" + redirecting.split("/", 1)[1]
    time.sleep(0.5)
    assert stack.receiver.posts(target) == []
    deadline = time.monotonic() + 30
    while not (state := _state(stack, created["id"]))["broken"]:
        assert time.monotonic() < deadline, state
        time.sleep(0.2)
    assert "redirect" in state["error"]


# --- the embedded default: no broker, deliveries on a background thread of the server ----

@pytest.fixture
@starts_processes
def embedded(tmp_path) -> Iterator[Stack]:
    database = E2EDatabase(os.environ.get("DATABASE_URL", ""), tmp_path)
    server = VtnServer(tmp_path, database)
    receiver = None
    try:
        server.prepare()
        server.env.pop("CELERY_BROKER_URL", None)
        server.env.update({"VTN_WEBHOOK_VERIFY_CALLBACKS": "true",
                           "VTN_CALLBACK_ALLOW_PRIVATE": "true",
                           "VTN_WEBHOOK_CA_BUNDLE": server.ca_bundle,
                           "VTN_WEBHOOK_RETRY_DELAYS": "0.5"})
        receiver = WebhookReceiver(server.pki_dir / "server.pem",
                                   server.pki_dir / "server.key").start()
        server.start()
        yield Stack(server, receiver)
    finally:
        if receiver is not None:
            receiver.stop()
        server.stop(graceful=False)
        database.drop()


def test_the_embedded_default_delivers_without_a_broker(embedded):
    program = embedded.program()
    good, failing = path("ok"), path("fail")
    embedded.subscribe(embedded.bl_session, V301, program["id"], good)
    created = embedded.subscribe(embedded.bl_session, V31, program["id"], failing).json()
    embedded.event(program["id"], None, name="embedded")
    [got] = embedded.receiver.wait_for(f"/{good}", timeout=30)
    assert_notification(V301, got.body)
    assert got.body["operation"] == "POST"
    embedded.receiver.wait_for(f"/{failing}", 2, timeout=30)  # the try and its one retry
    deadline = time.monotonic() + 30
    while not _state(embedded, created["id"])["broken"]:
        assert time.monotonic() < deadline
        time.sleep(0.2)
