"""Idempotency-Key: an FSP agent's resent POST creates nothing twice (vtn/idempotency.py).

Every response of the in-process client is validated against the official document of
its version, replays included.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.utils import timezone

from dispatch.models import Acknowledgement, SiteSigningKey
from tests.dispatch.test_dispatch_acks import FspAgent
from tests.dispatch.test_dispatch_api import Api
from tests.fixtures.api import (
    VERSION_31,
    event_body,
    program_body,
    report_body,
    resource_body,
    resources_path,
    subscription_body,
    unique,
    ven_body,
)
from vtn import idempotency
from vtn.models import Event, IdempotencyKey, Program, Report, Resource, Subscription, Ven

pytestmark = pytest.mark.django_db
KEY = "outbox-7f3a9c"
REPLAYED = "Idempotent-Replayed"


def with_key(key: str = KEY) -> dict:
    return {"Idempotency-Key": key}


@pytest.fixture
def world(bl, ven_a, version):
    """A program and an untargeted event (which ven_a may see and report on)."""
    status, program = bl.api.post("/programs", program_body(version))
    assert status == 201, program
    status, event = bl.api.post("/events", event_body(version, program["id"]))
    assert status == 201, event
    return {"program": program, "event": event}


def creation(kind: str, version: str, bl, ven_a, world) -> tuple:
    """(client, path, body, model) of one creating POST of ``kind``."""
    program, event = world["program"], world["event"]
    return {
        "program": (bl.api, "/programs", program_body(version), Program),
        "event": (bl.api, "/events", event_body(version, program["id"]), Event),
        "report": (ven_a.api, "/reports", report_body(version, event), Report),
        "subscription": (ven_a.api, "/subscriptions", subscription_body(version, program["id"]),
                         Subscription),
        "ven": (bl.api, "/vens", ven_body(version, "bl"), Ven),
        "resource": (ven_a.api, resources_path(version, ven_a.ven_id),
                     resource_body(version, "ven", ven_a.ven_id), Resource),
    }[kind]


KINDS = ["program", "event", "report", "subscription", "ven", "resource"]


# --- first request and replay ------------------------------------------------------------------

def test_the_first_request_with_a_key_creates_and_records_it(ven_a, world, version):
    status, report = ven_a.api.post("/reports", report_body(version, world["event"]),
                                    headers=with_key())
    assert status == 201
    record = IdempotencyKey.objects.get()
    assert (record.client_id, record.key, record.method) == (ven_a.client_id, KEY, "POST")
    assert record.path == f"/openadr3/{version}/reports" and len(record.body_sha256) == 64
    assert (record.status_code, record.object_type, record.object_id) == (
        201, "REPORT", report["id"])


@pytest.mark.parametrize("kind", KINDS)
def test_a_retry_with_the_same_key_replays_the_object_and_creates_nothing(
        kind, version, bl, ven_a, world):
    client, path, body, model = creation(kind, version, bl, ven_a, world)
    first = client.post(path, body, headers=with_key())
    assert first.status == 201, first.json
    assert REPLAYED not in first.response.headers
    count = model.objects.count()
    again = client.post(path, body, headers=with_key())
    assert again.status == 201, again.json
    assert again.response.headers[REPLAYED] == "true"
    assert again.json["id"] == first.json["id"]
    assert model.objects.count() == count
    assert IdempotencyKey.objects.count() == 1


def test_a_replay_answers_the_current_representation(ven_a, world, version):
    body = report_body(version, world["event"])
    status, report = ven_a.api.post("/reports", body, headers=with_key())
    assert status == 201
    status, _ = ven_a.api.put(f"/reports/{report['id']}", body | {"reportName": "renamed"})
    assert status == 200
    again = ven_a.api.post("/reports", body, headers=with_key())
    assert again.status == 201 and again.json["reportName"] == "renamed"


def test_body_key_order_and_spacing_do_not_change_the_fingerprint(ven_a, world, version):
    body = report_body(version, world["event"])
    assert ven_a.api.post("/reports", body, headers=with_key()).status == 201
    reordered = dict(reversed(list(body.items())))
    again = ven_a.api.post("/reports", reordered, headers=with_key())
    assert again.status == 201 and again.response.headers[REPLAYED] == "true"


def test_a_replay_does_not_announce_the_object_again(ven_a, world, version,
                                                     django_capture_on_commit_callbacks):
    body = report_body(version, world["event"])
    with django_capture_on_commit_callbacks() as first:
        assert ven_a.api.post("/reports", body, headers=with_key()).status == 201
    with django_capture_on_commit_callbacks() as again:
        assert ven_a.api.post("/reports", body, headers=with_key()).status == 201
    assert len(first) >= 1 and again == []


def test_without_a_key_every_post_creates(ven_a, world, version):
    body = report_body(version, world["event"])
    assert ven_a.api.post("/reports", body).status == 201
    assert ven_a.api.post("/reports", body).status == 201
    assert Report.objects.count() == 2 and not IdempotencyKey.objects.exists()


# --- refusals ---------------------------------------------------------------------------------

def test_the_same_key_with_another_body_is_refused_with_422(ven_a, world, version):
    body = report_body(version, world["event"])
    assert ven_a.api.post("/reports", body, headers=with_key()).status == 201
    reply = ven_a.api.post("/reports", body | {"reportName": "other"}, headers=with_key())
    assert reply.status == 422
    assert reply.content_type.startswith("application/json")
    assert reply.json["type"] == idempotency.PROBLEM_KEY_REUSED
    assert reply.json["title"] == "Idempotency-Key reused"
    assert "different request" in reply.json["detail"]
    assert Report.objects.count() == 1
    assert Report.objects.get().report_name == body["reportName"]


def test_the_same_key_on_another_path_is_refused_with_422(bl, ven_a, world, version):
    assert ven_a.api.post("/reports", report_body(version, world["event"]),
                          headers=with_key()).status == 201
    reply = ven_a.api.post("/subscriptions", subscription_body(version, None),
                           headers=with_key())
    assert reply.status == 422 and reply.json["type"] == idempotency.PROBLEM_KEY_REUSED
    assert not Subscription.objects.exists()


def test_the_same_key_on_the_other_version_is_another_request(ven_a, world, version,
                                                              other_version):
    assert ven_a.api.post("/reports", report_body(version, world["event"]),
                          headers=with_key()).status == 201
    reply = ven_a.on(other_version).post("/reports", report_body(other_version, world["event"]),
                                         headers=with_key())
    assert reply.status == 422
    assert Report.objects.count() == 1


def test_keys_are_per_client(make_actor, ven_a, world, version):
    ven_c = make_actor("ven-c", "ven", ven_name="ven-c")
    body = report_body(version, world["event"])
    mine = ven_a.api.post("/reports", body, headers=with_key())
    theirs = ven_c.api.post("/reports", body | {"reportName": "theirs"}, headers=with_key())
    assert mine.status == theirs.status == 201
    assert REPLAYED not in theirs.response.headers
    assert mine.json["id"] != theirs.json["id"]
    assert Report.objects.count() == 2
    assert set(IdempotencyKey.objects.values_list("client_id", flat=True)) == {
        ven_a.client_id, ven_c.client_id}


@pytest.mark.parametrize("version", [VERSION_31])
@pytest.mark.parametrize("key", ["", "x" * 256, "schlüssel", "tab\there", "new\x7fline"],
                         ids=["empty", "too-long", "non-ascii", "control", "delete"])
def test_a_malformed_key_is_refused_with_400(ven_a, world, version, key):
    reply = ven_a.api.post("/reports", report_body(version, world["event"]),
                           headers={"Idempotency-Key": key})
    assert reply.status == 400, reply.json
    assert "Idempotency-Key" in reply.json["detail"]
    assert not Report.objects.exists() and not IdempotencyKey.objects.exists()


@pytest.mark.parametrize("version", [VERSION_31])
def test_the_longest_printable_key_is_accepted(ven_a, world, version):
    key = "~ " + "k" * 253
    body = report_body(version, world["event"])
    assert ven_a.api.post("/reports", body, headers=with_key(key)).status == 201
    assert ven_a.api.post("/reports", body, headers=with_key(key)).status == 201
    assert Report.objects.count() == 1


def test_a_failed_request_does_not_consume_the_key(ven_a, world, version):
    body = report_body(version, world["event"])
    invalid = ven_a.api.post("/reports", {"eventID": world["event"]["id"]}, headers=with_key())
    assert invalid.status == 400
    assert not IdempotencyKey.objects.exists()
    missing = ven_a.api.post("/reports", body | {"eventID": "missing-event"},
                             headers=with_key())
    assert missing.status == 409  # a rule of the service, still no record
    assert not IdempotencyKey.objects.exists()
    reply = ven_a.api.post("/reports", body, headers=with_key())
    assert reply.status == 201 and REPLAYED not in reply.response.headers
    assert Report.objects.count() == 1


def test_a_retry_after_the_object_was_deleted_is_409(ven_a, world, version):
    body = report_body(version, world["event"])
    status, report = ven_a.api.post("/reports", body, headers=with_key())
    assert ven_a.api.delete(f"/reports/{report['id']}").status == 200
    reply = ven_a.api.post("/reports", body, headers=with_key())
    assert reply.status == 409
    assert reply.json["type"] == idempotency.PROBLEM_OBJECT_GONE
    assert "deleted" in reply.json["detail"] and report["id"] in reply.json["detail"]
    assert not Report.objects.exists()


# --- expiry -----------------------------------------------------------------------------------

def _age(hours: float) -> None:
    IdempotencyKey.objects.update(created=timezone.now() - timedelta(hours=hours))


@pytest.mark.parametrize("version", [VERSION_31])
def test_expired_records_are_purged_by_the_task(ven_a, world, version, settings):
    from vtn.tasks import purge_idempotency_keys

    settings.IDEMPOTENCY_KEY_RETENTION_HOURS = 72
    body = report_body(version, world["event"])
    assert ven_a.api.post("/reports", body, headers=with_key("old")).status == 201
    _age(73)
    assert ven_a.api.post("/reports", body, headers=with_key("fresh")).status == 201
    assert purge_idempotency_keys.apply().get() == 1
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["fresh"]
    assert Report.objects.count() == 2  # the objects stay


@pytest.mark.parametrize("version", [VERSION_31])
def test_the_purge_is_scheduled_with_celery_beat(version):
    from django_celery_beat.models import PeriodicTask

    from vtn.tasks import PURGE_IDEMPOTENCY_KEYS

    task = PeriodicTask.objects.get(task=PURGE_IDEMPOTENCY_KEYS)
    assert task.enabled and task.interval.every == 1 and task.interval.period == "hours"


@pytest.mark.parametrize("version", [VERSION_31])
def test_an_expired_key_is_free_again(ven_a, world, version, settings):
    settings.IDEMPOTENCY_KEY_RETENTION_HOURS = 1
    body = report_body(version, world["event"])
    first = ven_a.api.post("/reports", body, headers=with_key())
    _age(2)  # not purged yet
    again = ven_a.api.post("/reports", body, headers=with_key())
    assert again.status == 201 and REPLAYED not in again.response.headers
    assert again.json["id"] != first.json["id"]
    assert IdempotencyKey.objects.get().object_id == again.json["id"]


# --- the GB dispatch profile -------------------------------------------------------------------

def test_a_replayed_acknowledgement_records_no_second_acknowledgement(
        gb, issue, django_capture_on_commit_callbacks):
    from gbflex_profile import acks, jose

    agent = FspAgent(gb.acme)
    assert agent.register()[0] == 201
    dispatch = issue()
    document = agent.read_back(dispatch.revisions.get())
    body = {"eventID": dispatch.event_id, "clientName": "acme-agent", "reportName": "ack",
            "resources": [{"resourceName": dispatch.unit.reference, "intervals": [
                {"id": 0, "payloads": acks.payloads_for(
                    document, jose.sign(document, agent.key, agent.kid))}]}]}
    with django_capture_on_commit_callbacks(execute=True):
        first = agent.api.post("/reports", body, headers=with_key("ack-1"))
    assert first.status == 201
    assert Acknowledgement.objects.get().outcome == Acknowledgement.Outcome.ACCEPTED
    with django_capture_on_commit_callbacks(execute=True):
        again = agent.api.post("/reports", body, headers=with_key("ack-1"))
    assert again.status == 201 and again.response.headers[REPLAYED] == "true"
    assert again.json["id"] == first.json["id"]
    assert Acknowledgement.objects.count() == 1  # no DUPLICATE recorded either
    assert Report.objects.filter(event_id=dispatch.event_id).count() == 1


def test_a_resent_site_key_registration_replays_instead_of_409(gb):
    agent = FspAgent(gb.acme)
    api = Api(gb.acme.token)
    api.headers.update(with_key("key-1"))
    status, first, response = api.post("/site-keys", {"jwk": agent.jwk()})
    assert status == 201 and "Idempotent-Replayed" not in response.headers
    status, again, response = api.post("/site-keys", {"jwk": agent.jwk()})
    assert status == 201 and response.headers[REPLAYED] == "true"
    assert again == first and SiteSigningKey.objects.count() == 1
    other = FspAgent(gb.acme, kid="acme-north-2")
    status, problem, _ = api.post("/site-keys", {"jwk": other.jwk()})
    assert status == 422 and problem["type"] == idempotency.PROBLEM_KEY_REUSED
    api.headers["Idempotency-Key"] = "\x01"
    assert api.post("/site-keys", {"jwk": other.jwk()})[0] == 400


# --- concurrency, over real sockets -------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("version", ["3.1.0", "3.0.1"])
def test_concurrent_requests_with_one_key_create_one_object(vtn_server, version):
    """Several threads race the same key against the real server (two gunicorn workers,
    its own database: PostgreSQL when DATABASE_URL names one): one event is created and
    every request answers it."""
    bl = vtn_server.create_client("bl", "idem-bl")
    token = vtn_server.token(bl, version)
    with vtn_server.session(token) as http:
        program = http.post(vtn_server.url(version, "programs"),
                            json={"programName": unique("idem-program")}, timeout=30)
        assert program.status_code == 201, program.text
    program_id = program.json()["id"]
    body = {"programID": program_id, "eventName": "raced",
            "intervalPeriod": {"start": "2030-01-01T00:00:00Z", "duration": "PT1H"},
            "intervals": [{"id": 0, "payloads": [{"type": "PRICE", "values": [0.2]}]}]}
    for attempt in range(4):
        key = unique(f"race-{attempt}")
        barrier = threading.Barrier(4)
        replies: list = []

        def post(key=key, barrier=barrier, replies=replies) -> None:
            with vtn_server.session(token) as http:
                barrier.wait()
                reply = http.post(vtn_server.url(version, "events"), json=body, timeout=60,
                                  headers=with_key(key))
                replies.append((reply.status_code, reply.json(),
                                reply.headers.get(REPLAYED)))

        threads = [threading.Thread(target=post) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=90)
        assert [status for status, _, _ in replies] == [201] * 4, replies
        assert len({reply["id"] for _, reply, _ in replies}) == 1, replies
        assert sorted(str(flag) for _, _, flag in replies) == ["None", "true", "true", "true"]
    with vtn_server.session(token) as http:
        events = http.get(vtn_server.url(version, "events"), params={"programID": program_id},
                          timeout=30)
    assert events.status_code == 200 and len(events.json()) == 4

