"""Object privacy (Definition.md, "Object Privacy"), in both versions."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fixtures.api import (
    Actor,
    api_setup,
    event_body,
    labels_of,
    missing_id,
    new_actor,
    program_body,
    report_body,
    resource_body,
    resources_path,
    rolled_back,
    subscription_body,
    target_query,
    ven_body,
)
from tests.spec import VERSION_31, VERSION_301, VERSIONS
from vtn.models import Report, Resource, Subscription, Ven


def ids(items: list[dict]) -> set[str]:
    return {item["id"] for item in items}


def visible(actor, collection: str, query: dict | None = None) -> set[str]:
    status, listed = actor.api.get(f"/{collection}", query)
    assert status == 200
    return ids(listed)


def expected(catalogue: dict, keys: list[str], singular: str) -> set[str]:
    return {catalogue[k][singular]["id"] for k in keys}


# --- targeting of programs and events ---------------------------------------------------------

@pytest.fixture(scope="class")
def targeting(django_db_setup, django_db_blocker, version) -> Iterator[dict]:
    """A business-logic actor, VENs A and B, and programs (each with one event of the same
    targets) for several target sets, made once per class."""
    with rolled_back(django_db_blocker):
        with api_setup():
            bl = new_actor("bl", "bl", version)
            world = {"bl": bl, "ven_a": new_actor("ven-a", "ven", version, ven_name="ven-a"),
                     "ven_b": new_actor("ven-b", "ven", version, ven_name="ven-b"),
                     "catalogue": {}}
            for key, labels in (("open", None), ("g1", ["g1"]), ("g2", ["g2"]),
                                ("g1-secret", ["g1", "secret"]), ("secret", ["secret"])):
                status, program = bl.api.post("/programs",
                                              program_body(version, targets=labels))
                assert status == 201
                status, event = bl.api.post("/events", event_body(version, program["id"],
                                                                  targets=labels))
                assert status == 201
                world["catalogue"][key] = {"program": program, "event": event}
        yield world


class WorldActors:
    """The actors of a class's shared ``world`` (its ``bl``, ``ven_a`` and ``ven_b``), in
    place of the per-test ones."""

    @pytest.fixture
    def bl(self, world) -> Actor:
        return world["bl"]

    @pytest.fixture
    def ven_a(self, world) -> Actor:
        return world["ven_a"]

    @pytest.fixture
    def ven_b(self, world) -> Actor:
        return world["ven_b"]


@pytest.mark.parametrize("version", VERSIONS, scope="class")
class TestTargeting(WorldActors):
    """What each caller sees of targeted programs and events: the world of ``targeting``,
    shared by the class; each test's own grants and objects are rolled back after it."""

    @pytest.fixture
    def world(self, targeting, db, fresh_caches, api_settings) -> dict:
        return targeting

    @pytest.fixture
    def catalogue(self, world) -> dict:
        """Programs (each with one event of the same targets) for several target sets."""
        return world["catalogue"]

    @pytest.mark.parametrize("collection", ["programs", "events"])
    def test_ven_without_grants_sees_only_untargeted_objects(self, ven_a, catalogue, collection):
        assert visible(ven_a, collection) == expected(catalogue, ["open"], collection[:-1])

    @pytest.mark.parametrize("collection", ["programs", "events"])
    def test_ven_sees_objects_targeted_at_labels_granted_through_its_ven(
            self, ven_a, grant, catalogue, collection):
        grant(ven_a, ["g1"])
        assert visible(ven_a, collection) == expected(catalogue, ["open", "g1", "g1-secret"],
                                                      collection[:-1])

    def test_ven_sees_objects_targeted_at_labels_granted_through_its_resource(
            self, bl, ven_a, catalogue, version):
        body = resource_body(version, "bl", ven_a.ven_id, "meter", client_id=ven_a.client_id,
                             targets=["g2"])
        status, resource = bl.api.post(resources_path(version, ven_a.ven_id), body)
        assert status == 201, resource
        assert visible(ven_a, "programs") == expected(catalogue, ["open", "g2"], "program")
        assert visible(ven_a, "events") == expected(catalogue, ["open", "g2"], "event")

    def test_targeted_object_without_grant_is_not_found_by_id(self, ven_a, catalogue):
        for singular in ("program", "event"):
            object_id = catalogue["g1"][singular]["id"]
            status, _ = ven_a.api.get(f"/{singular}s/{object_id}")
            assert status == 404

    def test_targeted_object_with_grant_is_found_by_id(self, ven_a, grant, catalogue):
        grant(ven_a, ["g1"])
        for singular in ("program", "event"):
            status, body = ven_a.api.get(f"/{singular}s/{catalogue['g1'][singular]['id']}")
            assert status == 200
            assert body["id"] == catalogue["g1"][singular]["id"]

    def test_grants_of_one_ven_do_not_open_objects_to_another(self, ven_a, ven_b, grant, catalogue):
        grant(ven_a, ["g1", "g2", "secret"])
        assert visible(ven_b, "programs") == expected(catalogue, ["open"], "program")

    @pytest.mark.parametrize("singular", ["program", "event"])
    def test_ven_sees_only_the_targets_it_was_granted(
            self, ven_a, grant, catalogue, version, singular):
        grant(ven_a, ["g1"])
        object_id = catalogue["g1-secret"][singular]["id"]
        status, body = ven_a.api.get(f"/{singular}s/{object_id}")
        assert status == 200
        assert labels_of(version, body["targets"]) == {"g1"}
        status, listed = ven_a.api.get(f"/{singular}s")
        listed_body = next(item for item in listed if item["id"] == object_id)
        assert labels_of(version, listed_body["targets"]) == {"g1"}

    def test_bl_sees_every_target(self, bl, catalogue, version):
        status, body = bl.api.get(f"/programs/{catalogue['g1-secret']['program']['id']}")
        assert labels_of(version, body["targets"]) == {"g1", "secret"}

    @pytest.mark.parametrize("collection", ["programs", "events"])
    def test_requested_targets_narrow_to_requested_and_granted(
            self, ven_a, grant, catalogue, version, collection):
        grant(ven_a, ["g1", "g2"])
        singular = collection[:-1]
        assert visible(ven_a, collection, target_query(version, ["g2"])) == \
            expected(catalogue, ["g2"], singular)
        # "secret" is requested but not granted: it matches nothing.
        assert visible(ven_a, collection, target_query(version, ["g1", "secret"])) == \
            expected(catalogue, ["g1", "g1-secret"], singular)
        assert visible(ven_a, collection, target_query(version, ["secret"])) == set()

    def test_requested_targets_also_narrow_target_hiding(
            self, ven_a, grant, catalogue, version, bl):
        status, program = bl.api.post("/programs", program_body(version, targets=["g1", "g2"]))
        grant(ven_a, ["g1", "g2"])
        status, listed = ven_a.api.get("/programs", target_query(version, ["g2"]))
        body = next(item for item in listed if item["id"] == program["id"])
        assert labels_of(version, body["targets"]) == {"g2"}

    def test_bl_sees_every_program_and_event(self, bl, catalogue):
        assert visible(bl, "programs") == {c["program"]["id"] for c in catalogue.values()}
        assert visible(bl, "events") == {c["event"]["id"] for c in catalogue.values()}

    def test_ven_updating_its_ven_keeps_the_granted_targets(self, ven_a, grant, catalogue, version):
        grant(ven_a, ["g1"])
        status, body = ven_a.api.put(f"/vens/{ven_a.ven_id}", ven_body(version, "ven", "ven-a"))
        assert status == 200, body
        assert catalogue["g1"]["program"]["id"] in visible(ven_a, "programs")

    def test_report_on_an_event_the_ven_cannot_see_is_answered_like_a_nonexistent_event(
            self, ven_a, catalogue, version):
        event = catalogue["secret"]["event"]
        before = Report.objects.count()
        hidden = ven_a.api.post("/reports", report_body(version, event, "ven-a"))
        fake = {**event, "id": missing_id()}
        missing = ven_a.api.post("/reports", report_body(version, fake, "ven-a"))
        assert hidden.status == missing.status
        assert hidden.status in (400, 404, 409)
        assert hidden.json["detail"].replace(event["id"], "X") == \
            missing.json["detail"].replace(fake["id"], "X")
        assert Report.objects.count() == before

    def test_subscription_to_a_program_the_ven_cannot_see_is_refused(
            self, ven_a, catalogue, version):
        program_id = catalogue["secret"]["program"]["id"]
        before = Subscription.objects.count()
        hidden = ven_a.api.post("/subscriptions", subscription_body(version, program_id))
        missing = ven_a.api.post("/subscriptions", subscription_body(version, missing_id()))
        assert hidden.status == missing.status
        assert hidden.status >= 400
        assert Subscription.objects.count() == before

    def test_report_client_id_is_the_callers_not_the_bodys(self, ven_a, catalogue, version):
        body = report_body(version, catalogue["open"]["event"], "ven-a", clientID="forged")
        status, report = ven_a.api.post("/reports", body)
        assert status == 201
        assert Report.objects.get(pk=report["id"]).client_id == ven_a.client_id
        status, seen = ven_a.on(VERSION_31).get(f"/reports/{report['id']}")
        assert seen["clientID"] == ven_a.client_id

    def test_subscription_client_id_is_the_callers_not_the_bodys(self, ven_a, catalogue, version):
        body = subscription_body(version, catalogue["open"]["program"]["id"], "ven-a",
                                 clientID="forged")
        status, subscription = ven_a.api.post("/subscriptions", body)
        assert status == 201
        assert Subscription.objects.get(pk=subscription["id"]).client_id == ven_a.client_id

    def test_a_ven_without_a_ven_object_sees_only_untargeted_objects(self, make_actor, catalogue):
        stranger = make_actor("stranger", "ven")
        assert visible(stranger, "programs") == expected(catalogue, ["open"], "program")
        assert visible(stranger, "vens") == set()


def test_events_of_a_program_the_ven_cannot_see_are_hidden(bl, ven_a, version):
    _, program = bl.api.post("/programs", program_body(version, targets=["hidden"]))
    _, event = bl.api.post("/events", event_body(version, program["id"]))  # untargeted
    assert event["id"] not in visible(ven_a, "events")
    assert ven_a.api.get(f"/events/{event['id']}")[0] == 404
    assert ven_a.api.get("/events", {"programID": program["id"]}) == (200, [])


# --- VEN-owned objects -----------------------------------------------------------------------

def make_owned_by_b(bl: Actor, ven_b: Actor, version: str) -> dict:
    """A resource, report and subscription of VEN B (besides its ven)."""
    _, program = bl.api.post("/programs", program_body(version))
    _, event = bl.api.post("/events", event_body(version, program["id"]))
    api = ven_b.api
    status, resource = api.post(resources_path(version, ven_b.ven_id),
                                resource_body(version, "ven", ven_b.ven_id))
    assert status == 201, resource
    status, report = api.post("/reports", report_body(version, event, "ven-b"))
    assert status == 201, report
    status, subscription = api.post("/subscriptions",
                                    subscription_body(version, program["id"], "ven-b"))
    assert status == 201, subscription
    return {"ven": {"id": ven_b.ven_id}, "resource": resource, "report": report,
            "subscription": subscription, "program": program, "event": event}


@pytest.fixture
def owned_by_b(bl, ven_b, version) -> dict:
    return make_owned_by_b(bl, ven_b, version)


@pytest.fixture(scope="class")
def ownership(django_db_setup, django_db_blocker, version) -> Iterator[dict]:
    """A business-logic actor, VENs A and B, and VEN B's objects, made once per class."""
    with rolled_back(django_db_blocker):
        with api_setup():
            bl = new_actor("bl", "bl", version)
            ven_a = new_actor("ven-a", "ven", version, ven_name="ven-a")
            ven_b = new_actor("ven-b", "ven", version, ven_name="ven-b")
            world = {"bl": bl, "ven_a": ven_a, "ven_b": ven_b,
                     "owned_by_b": make_owned_by_b(bl, ven_b, version)}
        yield world


def item_paths(version: str, ven_id: str, owned: dict) -> dict[str, str]:
    return {
        "ven": f"/vens/{ven_id}",
        "resource": resources_path(version, ven_id, owned["resource"]["id"]),
        "report": f"/reports/{owned['report']['id']}",
        "subscription": f"/subscriptions/{owned['subscription']['id']}",
    }


@pytest.mark.parametrize("version", VERSIONS, scope="class")
class TestOwnedByB(WorldActors):
    """What VEN A and business logic see of VEN B's objects: the world of ``ownership``,
    shared by the class; each test's own changes are rolled back after it."""

    @pytest.fixture
    def world(self, ownership, db, fresh_caches, api_settings) -> dict:
        return ownership

    @pytest.fixture
    def owned_by_b(self, world) -> dict:
        return world["owned_by_b"]

    def test_ven_lists_exclude_other_vens_objects(self, ven_a, owned_by_b, version):
        assert ids(ven_a.api.get("/vens")[1]) == {ven_a.ven_id}
        assert ids(ven_a.api.get("/reports")[1]) == set()
        assert ids(ven_a.api.get("/subscriptions")[1]) == set()
        if version == VERSION_31:
            assert ids(ven_a.api.get("/resources")[1]) == set()
            assert ids(ven_a.api.get("/resources", {"venID": owned_by_b["ven"]["id"]})[1]) == set()

    @pytest.mark.parametrize("kind", ["ven", "resource", "report", "subscription"])
    @pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
    def test_other_vens_object_by_id_is_answered_like_a_nonexistent_one(
            self, ven_a, ven_b, owned_by_b, version, kind, method):
        path = item_paths(version, ven_b.ven_id, owned_by_b)[kind]
        nonexistent = path.replace(owned_by_b[kind]["id"], missing_id())
        if kind == "resource" and version == VERSION_301:
            elsewhere = {**owned_by_b, "resource": {"id": missing_id()}}
            nonexistent = item_paths(version, missing_id(), elsewhere)[kind]
        bodies = {
            "ven": ven_body(version, "ven", "taken-over"),
            "resource": resource_body(version, "ven", ven_b.ven_id, "taken-over"),
            "report": report_body(version, owned_by_b["event"], "ven-a"),
            "subscription": subscription_body(version, owned_by_b["program"]["id"], "ven-a"),
        }
        body = bodies[kind] if method == "PUT" else None
        kwargs = {"body": body} if body is not None else {}
        hidden = ven_a.api.request(method, path, **kwargs)
        missing = ven_a.api.request(method, nonexistent, **kwargs)
        assert hidden.status == 404
        assert (hidden.status, hidden.json) == (missing.status, missing.json)
        status, unchanged = ven_b.api.get(path)
        assert status == 200
        if kind != "ven":
            assert unchanged == owned_by_b[kind]

    def test_bl_sees_every_vens_objects(self, bl, ven_a, owned_by_b, version):
        assert {ven_a.ven_id, owned_by_b["ven"]["id"]} <= ids(bl.api.get("/vens")[1])
        assert owned_by_b["report"]["id"] in ids(bl.api.get("/reports")[1])
        assert owned_by_b["subscription"]["id"] in ids(bl.api.get("/subscriptions")[1])
        resources = bl.api.get(resources_path(version, owned_by_b["ven"]["id"]))[1]
        assert owned_by_b["resource"]["id"] in ids(resources)
        for path in item_paths(version, owned_by_b["ven"]["id"], owned_by_b).values():
            assert bl.api.get(path)[0] == 200


def test_ven_name_query_does_not_reveal_other_vens(ven_a, ven_b):
    assert ven_a.api.get("/vens", {"venName": "ven-b"}) == (200, [])


@pytest.mark.parametrize("version", [VERSION_301])
def test_301_resources_of_another_ven_are_not_found(ven_a, ven_b, owned_by_b, version):
    hidden = ven_a.api.get(resources_path(version, ven_b.ven_id))
    missing = ven_a.api.get(resources_path(version, missing_id()))
    assert hidden.status == 404
    assert hidden.json == missing.json
    status, _ = ven_a.api.post(resources_path(version, ven_b.ven_id),
                               resource_body(version, "ven", ven_b.ven_id))
    assert status == 404


@pytest.mark.parametrize("version", [VERSION_31])
def test_ven_cannot_add_a_resource_to_another_vens_ven(ven_a, ven_b, version):
    before = Resource.objects.count()
    hidden = ven_a.api.post("/resources", resource_body(version, "ven", ven_b.ven_id))
    missing = ven_a.api.post("/resources", resource_body(version, "ven", missing_id()))
    assert hidden.status == 404
    assert hidden.json == missing.json
    assert Resource.objects.count() == before


# --- only BL grants targets -------------------------------------------------------------------

@pytest.mark.parametrize("version", [VERSION_31])
def test_ven_cannot_send_a_bl_ven_request(ven_a, version):
    body = ven_body(version, "bl", "ven-a", client_id=ven_a.client_id, targets=["g1"])
    status, problem = ven_a.api.put(f"/vens/{ven_a.ven_id}", body)
    assert status == 403
    assert problem["status"] == 403
    assert Ven.objects.get(pk=ven_a.ven_id).targets == []


@pytest.mark.parametrize("version", [VERSION_31])
def test_ven_cannot_send_a_bl_resource_request(ven_a, version):
    body = resource_body(version, "bl", ven_a.ven_id, client_id=ven_a.client_id,
                         targets=["g1"])
    status, _ = ven_a.api.post("/resources", body)
    assert status == 403
    assert not Resource.objects.exists()


@pytest.mark.parametrize("version", [VERSION_301])
def test_ven_cannot_set_targets_on_its_ven(ven_a, version):
    body = ven_body(version, "ven", "ven-a", targets=["g1"])
    status, _ = ven_a.api.put(f"/vens/{ven_a.ven_id}", body)
    assert status == 403
    assert Ven.objects.get(pk=ven_a.ven_id).targets == []


@pytest.mark.parametrize("version", [VERSION_301])
def test_ven_cannot_set_targets_on_its_resource(ven_a, version):
    path = resources_path(version, ven_a.ven_id)
    status, _ = ven_a.api.post(path, resource_body(version, "ven", ven_a.ven_id,
                                                   targets=["g1"]))
    assert status == 403
    status, resource = ven_a.api.post(path, resource_body(version, "ven", ven_a.ven_id))
    assert status == 201
    body = resource_body(version, "ven", ven_a.ven_id, resource["resourceName"],
                         targets=["g1"])
    status, _ = ven_a.api.put(f"{path}/{resource['id']}", body)
    assert status == 403


# --- clientID comes from the token -------------------------------------------------------------


def test_ven_client_id_is_the_callers_not_the_bodys(make_actor, version):
    newcomer = make_actor("newcomer", "ven")
    body = ven_body(version, "ven", "newcomer-ven") | {"clientID": "forged"}
    status, ven = newcomer.api.post("/vens", body)
    assert status == 201, ven
    assert Ven.objects.get(pk=ven["id"]).client_id == newcomer.client_id
    status, seen = newcomer.on(VERSION_31).get(f"/vens/{ven['id']}")
    assert status == 200
    assert seen["clientID"] == newcomer.client_id


def test_targets_granted_through_301_match_targets_set_in_31(bl, ven_a):
    """Matching uses the label, whatever the 3.0.1 target type."""
    _, program = bl.on(VERSION_31).post("/programs", program_body(VERSION_31,
                                                                  targets=["zone-7"]))
    body = ven_body(VERSION_301, "bl", "ven-a", client_id=ven_a.client_id)
    body["targets"] = [{"type": "POSTAL_CODE", "values": ["zone-7"]}]
    status, _ = bl.on(VERSION_301).put(f"/vens/{ven_a.ven_id}", body)
    assert status == 200
    assert ven_a.on(VERSION_31).get(f"/programs/{program['id']}")[0] == 200
    status, seen = ven_a.on(VERSION_301).get(f"/programs/{program['id']}")
    assert status == 200
    assert labels_of(VERSION_301, seen["targets"]) == {"zone-7"}
