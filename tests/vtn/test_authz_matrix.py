"""Every operation of both documents x every kind of caller -> the expected status.

The table is generated from the official YAML documents, so no endpoint is missed
(including /auth/server, /notifiers and the MQTT topic endpoints). Objects in the paths
belong to VEN A or are targeted at it; VEN B must get exactly the answer it would get
for objects that do not exist. The world is built once per module, in a transaction
rolled back after the module, and each test runs in a savepoint of it rolled back after
the test, which keeps the ~450 cases fast.
"""

from __future__ import annotations

import json
import re

import pytest

from tests import spec
from tests.fixtures.api import (
    OpenADRClient,
    api_setup,
    clear_process_caches,
    event_body,
    expire_token,
    missing_id,
    new_actor,
    program_body,
    report_body,
    resource_body,
    revoke,
    rolled_back,
    subscription_body,
    unique,
    ven_body,
)
from tests.spec import VERSION_31, VERSIONS
from vtn.api import statuses

ACTORS = ("none", "expired", "revoked", "bl", "ven_a", "ven_b", "missing_scope")
READ_ONLY = "read_all"
WRITE_ONLY = "write_programs write_events write_reports write_subscriptions write_vens"
PARAM_OBJECTS = {"programID": "program", "eventID": "event", "reportID": "report",
                 "subscriptionID": "subscription", "venID": "ven", "resourceID": "resource"}


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker):
    """Clients, tokens and VEN A's objects, made once for the whole module (in a
    transaction rolled back after it)."""
    with rolled_back(django_db_blocker):
        with api_setup():
            bl = new_actor("m-bl", "bl", VERSION_31,
                           scopes=["read_all", *WRITE_ONLY.split()])
            ven_a = new_actor("m-ven-a", "ven", VERSION_31, ven_name="m-ven-a")
            ven_b = new_actor("m-ven-b", "ven", VERSION_31, ven_name="m-ven-b")
            doomed = new_actor("m-revoked", "bl", VERSION_31)
            api = bl.api
            tokens = {"none": None, "bl": bl.token, "ven_a": ven_a.token, "ven_b": ven_b.token}
            for name, scope in (("read_only", READ_ONLY), ("write_only", WRITE_ONLY),
                                ("expired", None)):
                status, body = api.request_token(bl.client_id, bl.secret, scope)
                assert status == 200, body
                tokens[name] = body["access_token"]
            expire_token(tokens["expired"])
            tokens["revoked"] = doomed.token
            revoke(doomed)

            ven = api.put(f"/vens/{ven_a.ven_id}", ven_body(VERSION_31, "bl", "m-ven-a",
                                                            client_id=ven_a.client_id,
                                                            targets=["ta"]))
            assert ven.status == 200, ven.json
            _, program = api.post("/programs", program_body(VERSION_31, "m-program",
                                                            targets=["ta"]))
            _, event = api.post("/events", event_body(VERSION_31, program["id"], targets=["ta"]))
            a = ven_a.api
            status, resource = a.post("/resources", resource_body(VERSION_31, "ven", ven_a.ven_id,
                                                                  "m-resource"))
            assert status == 201, resource
            status, report = a.post("/reports", report_body(VERSION_31, event, "m-ven-a"))
            assert status == 201, report
            status, subscription = a.post("/subscriptions",
                                          subscription_body(VERSION_31, program["id"], "m-ven-a"))
            assert status == 201, subscription
            objects = {"program": program, "event": event, "report": report,
                       "subscription": subscription, "ven": ven.json, "resource": resource}
            clear_process_caches()
        yield {"tokens": tokens, "objects": objects, "ven_a": ven_a, "bl": bl,
               "secrets": {"bl": (bl.client_id, bl.secret), "ven_a": (ven_a.client_id,
                                                                      ven_a.secret),
                           "ven_b": (ven_b.client_id, ven_b.secret),
                           "missing_scope": (bl.client_id, bl.secret),
                           "expired": (bl.client_id, bl.secret),
                           "revoked": (doomed.client_id, doomed.secret)}}


# --- the table ------------------------------------------------------------------------------

def _kind(template: str) -> str:
    """The collection an operation works on (the last collection segment)."""
    parts = [p for p in template.strip("/").split("/") if not p.startswith("{")]
    return parts[-1]


def expected_status(version: str, method: str, template: str, actor: str) -> int:
    if template == "/auth/server":
        return 200
    if template == "/auth/token":
        return 401 if actor in ("none", "revoked") else 200
    if actor in ("none", "expired", "revoked"):
        return 401
    if actor == "missing_scope":
        # 400 (naming the missing scope) where the operation lists no 403 (nor a deviation).
        return 403 if 403 in statuses.allowed(version, method, template) else 400
    if template.startswith("/notifiers/mqtt/"):
        # Per-type and per-program topics are for business logic (read_all); without a
        # broker configured every topic endpoint answers 404.
        if "{venID}" not in template and actor != "bl":
            return 403 if 403 in statuses.allowed(version, method, template) else 400
        return 404
    if template == "/notifiers":
        return 200
    kind = _kind(template)
    is_item = template.endswith("}")
    created = 201 if method == "POST" else 200
    # 3.1 POST /vens lists no 409: a clash there is a 400 saying so.
    vens_conflict = 400 if version == VERSION_31 else 409
    if kind in ("programs", "events"):
        if method != "GET" and actor != "bl":
            return 403
        if actor == "ven_b" and is_item:
            return 404
        return created
    # VEN-owned collections: vens, resources, reports, subscriptions.
    under_ven_a = "{venID}" in template  # 3.0.1 /vens/{venID}/resources...
    if actor == "ven_b":
        if is_item or under_ven_a:
            return 404
        if method == "POST":
            # vens: B already owns one; reports/subscriptions: A's event/program are
            # invisible (same as nonexistent); 3.1 resources: A's ven is invisible.
            return {"vens": vens_conflict, "reports": 409, "subscriptions": 409,
                    "resources": 404}[kind]
        return 200
    if actor == "ven_a" and method == "POST" and kind == "vens":
        return vens_conflict  # a VEN client owns exactly one ven
    return created


def body_for(version: str, method: str, template: str, actor: str, objects: dict,
             ven_a) -> dict | None:
    if method not in ("POST", "PUT"):
        return None
    role = "ven" if actor in ("ven_a", "ven_b") else "bl"
    kind = _kind(template)
    if kind == "programs":
        return program_body(version, targets=["ta"])
    if kind == "events":
        return event_body(version, objects["program"]["id"], targets=["ta"])
    if kind == "reports":
        return report_body(version, objects["event"], "matrix")
    if kind == "subscriptions":
        return subscription_body(version, objects["program"]["id"], "matrix")
    if kind == "vens":
        if method == "PUT":
            return ven_body(version, role, "m-ven-a", client_id=ven_a.client_id,
                            targets=["ta"] if role == "bl" else None)
        return ven_body(version, role, client_id=unique("cid"))
    if kind == "resources":
        name = "m-resource" if method == "PUT" else None
        return resource_body(version, role, ven_a.ven_id, name, client_id=ven_a.client_id)
    return {}


def token_for(actor: str, method: str, world: dict) -> str | None:
    tokens = world["tokens"]
    if actor == "missing_scope":
        return tokens["write_only"] if method == "GET" else tokens["read_only"]
    return tokens[actor]


def concrete(template: str, objects: dict, ids: dict | None = None) -> str:
    def fill(match: re.Match) -> str:
        name = match.group(1)
        if ids is not None:
            return ids[name]
        return objects[PARAM_OBJECTS[name]]["id"]

    return re.sub(r"\{(\w+)\}", fill, template)


CASES = [
    pytest.param(version, method, template, actor,
                 id=f"{version}-{method}-{template}-{actor}")
    for version in VERSIONS
    for method, template, _ in spec.operations(version)
    for actor in ACTORS
]


def test_table_covers_every_documented_operation():
    documented = {(v, m, t) for v in VERSIONS for m, t, _ in spec.operations(v)}
    tested = {tuple(case.values[:3]) for case in CASES}
    assert documented == tested
    assert (VERSION_31, "GET", "/auth/server") in tested
    assert (VERSION_31, "GET", "/notifiers/mqtt/topics/vens/{venID}/events") in tested


def _send(client: OpenADRClient, method: str, path: str, body: dict | None):
    if body is None:
        return client.request(method, path)
    return client.request(method, path, body)


@pytest.mark.parametrize(("version", "method", "template", "actor"), CASES)
def test_status(world, db, fresh_caches, api_settings, version, method, template, actor):
    objects, ven_a = world["objects"], world["ven_a"]
    path = concrete(template, objects)
    if template == "/auth/token":
        client = OpenADRClient(version)
        if actor == "none":
            reply = client.post_form(path, {"grant_type": "client_credentials"})
        else:
            client_id, secret = world["secrets"][actor]
            reply = client.request_token(client_id, secret)
        assert reply.status == expected_status(version, method, template, actor), reply.json
        return
    client = OpenADRClient(version, token_for(actor, method, world))
    body = body_for(version, method, template, actor, objects, ven_a)
    reply = _send(client, method, path, body)
    expected = expected_status(version, method, template, actor)
    assert reply.status == expected, reply.json

    if actor == "ven_b":
        assert_nothing_of_ven_a_leaks(reply.json, world, sent=path + json.dumps(body))
        if reply.status >= 400:
            assert_same_as_nonexistent(client, method, template, body, reply, world)


A_OWNED = ("program", "event", "report", "subscription", "ven", "resource")


def assert_nothing_of_ven_a_leaks(body: object, world: dict, sent: str) -> None:
    """VEN B's answers never name VEN A's objects (beyond echoing what B sent)."""
    text = json.dumps(body)
    for kind in A_OWNED:
        if world["objects"][kind]["id"] not in sent:
            assert world["objects"][kind]["id"] not in text, kind
    assert world["ven_a"].client_id not in text
    assert "m-ven-a" not in text and "m-resource" not in text


def assert_same_as_nonexistent(client, method: str, template: str, body: dict | None, reply,
                               world: dict) -> None:
    """The same request naming nonexistent objects gets the same status and body."""
    substitutes = {world["objects"][kind]["id"]: missing_id() for kind in A_OWNED}
    ids = {name: substitutes[world["objects"][kind]["id"]]
           for name, kind in PARAM_OBJECTS.items()}
    path = concrete(template, world["objects"], ids)
    if body is not None:
        text = json.dumps(body)
        for old, new in substitutes.items():
            text = text.replace(old, new)
        body = json.loads(text)
    other = _send(client, method, path, body)
    other_text = json.dumps(other.json)
    for old, new in substitutes.items():
        other_text = other_text.replace(new, old)
    assert other.status == reply.status
    assert json.loads(other_text) == reply.json
