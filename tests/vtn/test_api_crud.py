"""Create, read, update and delete of every OpenADR object, in both versions."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from tests.fixtures.api import (
    api_setup,
    event_body,
    new_actor,
    program_body,
    report_body,
    resource_body,
    resources_path,
    rolled_back,
    subscription_body,
    unique,
    ven_body,
)
from tests.spec import VERSION_31, VERSION_301, VERSIONS


@dataclass(frozen=True)
class Kind:
    """How to create one kind of object: who, where, with which body."""

    name: str
    object_type: str
    actor: str  # fixture name of the creator
    name_field: str
    collection: Callable[[str, dict], str]
    body: Callable[[str, dict], dict]

    def item(self, version: str, ctx: dict, object_id: str) -> str:
        return f"{self.collection(version, ctx)}/{object_id}"


KINDS = [
    Kind("program", "PROGRAM", "bl", "programName", lambda v, c: "/programs",
         lambda v, c: program_body(v)),
    Kind("event", "EVENT", "bl", "eventName", lambda v, c: "/events",
         lambda v, c: event_body(v, c["program"]["id"])),
    Kind("report", "REPORT", "ven_a", "reportName", lambda v, c: "/reports",
         lambda v, c: report_body(v, c["event"])),
    Kind("subscription", "SUBSCRIPTION", "ven_a", "clientName", lambda v, c: "/subscriptions",
         lambda v, c: subscription_body(v, c["program"]["id"])),
    Kind("ven", "VEN", "bl", "venName", lambda v, c: "/vens",
         lambda v, c: ven_body(v, "bl", client_id="some-ven-client")),
    Kind("resource", "RESOURCE", "ven_a", "resourceName",
         lambda v, c: resources_path(v, c["ven_a"].ven_id),
         lambda v, c: resource_body(v, "ven", c["ven_a"].ven_id)),
]
KIND_IDS = [k.name for k in KINDS]


@pytest.fixture(scope="class")
def shared(django_db_setup, django_db_blocker, version) -> Iterator[dict]:
    """An untargeted program and event (visible to every VEN) and the actors, made once
    per class."""
    with rolled_back(django_db_blocker):
        with api_setup():
            bl = new_actor("bl", "bl", version)
            ven_a = new_actor("ven-a", "ven", version, ven_name="ven-a")
            status, program = bl.api.post("/programs", program_body(version))
            assert status == 201, program
            status, event = bl.api.post("/events", event_body(version, program["id"]))
            assert status == 201, event
        yield {"bl": bl, "ven_a": ven_a, "program": program, "event": event}


def create(kind: Kind, version: str, ctx: dict) -> tuple[dict, dict]:
    api = ctx[kind.actor].api
    body = kind.body(version, ctx)
    status, created = api.post(kind.collection(version, ctx), body)
    assert status == 201, created
    return body, created


@pytest.mark.parametrize("version", VERSIONS, scope="class")
class TestObjects:
    """Each kind of object, made and changed by the actors of ``shared``; each test's own
    objects are rolled back after it."""

    @pytest.fixture
    def ctx(self, shared, db, fresh_caches, api_settings) -> dict:
        return shared

    @pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
    def test_create_assigns_server_metadata(self, kind, version, ctx):
        body, created = create(kind, version, ctx)
        assert created["id"]
        assert created["objectType"] == kind.object_type
        assert created["createdDateTime"] == created["modificationDateTime"] or \
            created["createdDateTime"] <= created["modificationDateTime"]
        assert created[kind.name_field] == body[kind.name_field]

    @pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
    def test_create_ignores_client_supplied_metadata(self, kind, version, ctx):
        api = ctx[kind.actor].api
        body = kind.body(version, ctx) | {"id": "chosen-by-client",
                                          "createdDateTime": "2000-01-01T00:00:00Z",
                                          "modificationDateTime": "2000-01-01T00:00:00Z"}
        status, created = api.post(kind.collection(version, ctx), body)
        assert status == 201, created
        assert created["id"] != "chosen-by-client"
        assert not created["createdDateTime"].startswith("2000-")

    @pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
    def test_get_by_id_returns_the_created_object(self, kind, version, ctx):
        _, created = create(kind, version, ctx)
        status, fetched = ctx[kind.actor].api.get(kind.item(version, ctx, created["id"]))
        assert status == 200
        assert fetched == created

    @pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
    def test_list_includes_the_created_object(self, kind, version, ctx):
        _, created = create(kind, version, ctx)
        status, listed = ctx[kind.actor].api.get(kind.collection(version, ctx))
        assert status == 200
        assert created["id"] in [item["id"] for item in listed]

    @pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
    def test_update_replaces_fields_and_changes_modification_time(self, kind, version, ctx):
        body, created = create(kind, version, ctx)
        time.sleep(0.01)
        new_value = unique("renamed")
        status, updated = ctx[kind.actor].api.put(kind.item(version, ctx, created["id"]),
                                                  body | {kind.name_field: new_value})
        assert status == 200, updated
        assert updated["id"] == created["id"]
        assert updated[kind.name_field] == new_value
        assert updated["createdDateTime"] == created["createdDateTime"]
        assert updated["modificationDateTime"] > created["modificationDateTime"]
        status, fetched = ctx[kind.actor].api.get(kind.item(version, ctx, created["id"]))
        assert fetched[kind.name_field] == new_value

    @pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
    def test_delete_returns_the_deleted_object_and_removes_it(self, kind, version, ctx):
        _, created = create(kind, version, ctx)
        api = ctx[kind.actor].api
        status, deleted = api.delete(kind.item(version, ctx, created["id"]))
        assert status == 200
        assert deleted == created
        status, _ = api.get(kind.item(version, ctx, created["id"]))
        assert status == 404
        status, _ = api.delete(kind.item(version, ctx, created["id"]))
        assert status == 404

    def test_deleting_a_program_deletes_its_events(self, version, ctx):
        api = ctx["bl"].api
        status, _ = api.delete(f"/programs/{ctx['program']['id']}")
        assert status == 200
        status, _ = api.get(f"/events/{ctx['event']['id']}")
        assert status == 404

    @pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
    def test_object_created_in_one_version_is_readable_in_the_other(
            self, kind, version, other_version, ctx):
        _, created = create(kind, version, ctx)
        status, seen = ctx[kind.actor].on(other_version).get(
            kind.item(other_version, ctx, created["id"]))
        assert status == 200
        assert seen["id"] == created["id"]
        assert seen["objectType"] == created["objectType"]
        assert seen[kind.name_field] == created[kind.name_field]
        assert seen["createdDateTime"] == created["createdDateTime"]


# --- uniqueness ---------------------------------------------------------------------------

def test_duplicate_program_name_is_a_conflict(version, bl):
    name = unique("program")
    assert bl.api.post("/programs", program_body(version, name))[0] == 201
    status, problem = bl.api.post("/programs", program_body(version, name))
    assert status == 409
    assert problem["status"] == 409


def test_renaming_a_program_to_an_existing_name_is_a_conflict(version, bl):
    bl.api.post("/programs", program_body(version, "taken"))
    _, other = bl.api.post("/programs", program_body(version))
    status, _ = bl.api.put(f"/programs/{other['id']}", program_body(version, "taken"))
    assert status == 409
    assert bl.api.get(f"/programs/{other['id']}")[1]["programName"] == other["programName"]


def test_duplicate_ven_name_is_a_conflict(version, bl):
    name = unique("ven")
    assert bl.api.post("/vens", ven_body(version, "bl", name, client_id="c1"))[0] == 201
    status, problem = bl.api.post("/vens", ven_body(version, "bl", name, client_id="c2"))
    # 3.1 POST /vens lists no 409: the clash is a 400 that says so.
    expected = 409 if version == VERSION_301 else 400
    assert status == expected
    assert problem["status"] == expected
    assert "Conflict" in problem["detail"] or expected == 409


def test_duplicate_resource_name_within_a_ven_is_a_conflict(version, ven_a):
    api = ven_a.api
    path = resources_path(version, ven_a.ven_id)
    assert api.post(path, resource_body(version, "ven", ven_a.ven_id, "meter"))[0] == 201
    status, problem = api.post(path, resource_body(version, "ven", ven_a.ven_id, "meter"))
    assert status == 409
    assert problem["status"] == 409


def test_same_resource_name_in_two_vens_is_allowed(version, ven_a, ven_b):
    for actor in (ven_a, ven_b):
        status, created = actor.api.post(resources_path(version, actor.ven_id),
                                         resource_body(version, "ven", actor.ven_id, "meter"))
        assert status == 201, created
        assert created["venID"] == actor.ven_id


def test_a_ven_client_owns_exactly_one_ven(version, ven_a):
    status, _ = ven_a.api.post("/vens", ven_body(version, "ven"))
    assert status == (409 if version == VERSION_301 else 400)


# --- one model, two versions ------------------------------------------------------------------

def test_301_program_fields_are_31_program_attributes(bl):
    body = program_body(VERSION_301, programLongName="Long name", retailerName="ACME")
    _, created = bl.on(VERSION_301).post("/programs", body)
    status, seen = bl.on(VERSION_31).get(f"/programs/{created['id']}")
    assert status == 200
    attributes = {a["type"]: a["values"] for a in seen["attributes"]}
    assert attributes["PROGRAM_LONG_NAME"] == ["Long name"]
    assert attributes["RETAILER_NAME"] == ["ACME"]
    assert seen["programName"] == body["programName"]


def test_31_program_attributes_are_301_program_fields(bl):
    body = program_body(VERSION_31, attributes=[
        {"type": "PROGRAM_LONG_NAME", "values": ["Long name"]},
        {"type": "RETAILER_NAME", "values": ["ACME"]}])
    _, created = bl.on(VERSION_31).post("/programs", body)
    status, seen = bl.on(VERSION_301).get(f"/programs/{created['id']}")
    assert status == 200
    assert seen["programLongName"] == "Long name"
    assert seen["retailerName"] == "ACME"


def test_31_event_targets_read_as_301_values_maps(bl):
    _, program = bl.on(VERSION_31).post("/programs", program_body(VERSION_31))
    _, event = bl.on(VERSION_31).post("/events", event_body(VERSION_31, program["id"],
                                                             targets=["g1", "g2"]))
    status, seen = bl.on(VERSION_301).get(f"/events/{event['id']}")
    assert status == 200
    assert {v for item in seen["targets"] for v in item["values"]} == {"g1", "g2"}
    assert seen["programID"] == program["id"]
    assert seen["intervals"][0]["payloads"] == event["intervals"][0]["payloads"]


def test_301_event_values_maps_read_as_31_target_strings(bl):
    _, program = bl.on(VERSION_301).post("/programs", program_body(VERSION_301))
    _, event = bl.on(VERSION_301).post("/events", event_body(VERSION_301, program["id"],
                                                              targets=["g1"]))
    status, seen = bl.on(VERSION_31).get(f"/events/{event['id']}")
    assert status == 200
    assert seen["targets"] == ["g1"]


@pytest.mark.parametrize("version", [VERSION_31])
def test_ven_created_without_client_id_in_301_is_valid_in_31(bl):
    status, ven = bl.on(VERSION_301).post("/vens", ven_body(VERSION_301, "bl", "unbound"))
    assert status == 201
    status, seen = bl.on(VERSION_31).get(f"/vens/{ven['id']}")
    assert status == 200
    assert seen["clientID"] == f"unbound-{ven['id']}"
