"""Query parameters: paging and filters of both versions (filters are additive)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fixtures.api import (
    Actor,
    api_setup,
    event_body,
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

V31 = pytest.mark.parametrize("version", [VERSION_31])


def ids(items: list[dict]) -> list[str]:
    return [item["id"] for item in items]


@pytest.fixture(scope="class")
def paged(django_db_setup, django_db_blocker, version) -> Iterator[tuple[Actor, list[dict]]]:
    """A business-logic actor and 55 programs it created in order, once per class."""
    with rolled_back(django_db_blocker):
        with api_setup():
            bl = new_actor("bl", "bl", version)
            created = []
            for n in range(55):
                status, program = bl.api.post("/programs", program_body(version, f"p{n:02d}"))
                assert status == 201
                created.append(program)
        yield bl, created


@pytest.mark.parametrize("version", VERSIONS, scope="class")
class TestPaging:
    """55 programs, created in order once per version for the class."""

    @pytest.fixture
    def bl(self, paged, db, fresh_caches, api_settings) -> Actor:
        return paged[0]

    @pytest.fixture
    def programs(self, paged) -> list[dict]:
        return paged[1]

    def test_list_defaults_to_50_items(self, bl, programs):
        status, listed = bl.api.get("/programs")
        assert status == 200
        assert ids(listed) == ids(programs[:50])

    def test_skip_and_limit_select_a_page(self, bl, programs):
        status, listed = bl.api.get("/programs", {"skip": 10, "limit": 5})
        assert status == 200
        assert ids(listed) == ids(programs[10:15])

    def test_limit_50_is_allowed(self, bl, programs):
        status, listed = bl.api.get("/programs", {"limit": 50})
        assert status == 200
        assert len(listed) == 50

    def test_skip_past_the_end_is_empty(self, bl, programs):
        assert bl.api.get("/programs", {"skip": 100}) == (200, [])

    def test_limit_zero_is_empty(self, bl, programs):
        assert bl.api.get("/programs", {"limit": 0}) == (200, [])


@pytest.mark.parametrize("query", [
    {"limit": 51}, {"limit": -1}, {"skip": -1}, {"limit": "ten"}, {"skip": "1.5"},
], ids=["limit-over-50", "negative-limit", "negative-skip", "non-integer-limit",
        "non-integer-skip"])
@pytest.mark.parametrize("collection", ["/programs", "/events", "/reports", "/subscriptions",
                                        "/vens"])
def test_bad_paging_is_a_bad_request(bl, collection, query):
    status, problem = bl.api.get(collection, query)
    assert status == 400
    assert problem["status"] == 400


# --- programID, eventID, clientName -------------------------------------------------------------

@pytest.fixture(scope="class")
def filtered(django_db_setup, django_db_blocker, version) -> Iterator[tuple[Actor, dict]]:
    """A business-logic actor and two programs with an event each; each VEN reports and
    subscribes on each; once per class."""
    with rolled_back(django_db_blocker):
        with api_setup():
            bl = new_actor("bl", "bl", version)
            ven_a = new_actor("ven-a", "ven", version, ven_name="ven-a")
            ven_b = new_actor("ven-b", "ven", version, ven_name="ven-b")
            world: dict = {"programs": [], "events": [], "reports": [], "subscriptions": []}
            for _ in range(2):
                _, program = bl.api.post("/programs", program_body(version))
                _, event = bl.api.post("/events", event_body(version, program["id"]))
                world["programs"].append(program)
                world["events"].append(event)
                for actor in (ven_a, ven_b):
                    status, report = actor.api.post("/reports", report_body(
                        version, event, client_name=actor.name))
                    assert status == 201, report
                    world["reports"].append(report)
                    status, subscription = actor.api.post(
                        "/subscriptions", subscription_body(version, program["id"], actor.name))
                    assert status == 201, subscription
                    world["subscriptions"].append(subscription)
        yield bl, world


@pytest.mark.parametrize("version", VERSIONS, scope="class")
class TestFilters:
    """Two programs with an event each; each VEN reports and subscribes on each (made once
    per version for the class)."""

    @pytest.fixture
    def bl(self, filtered, db, fresh_caches, api_settings) -> Actor:
        return filtered[0]

    @pytest.fixture
    def two_programs(self, filtered) -> dict:
        return filtered[1]

    def test_events_filter_by_program_id(self, bl, two_programs):
        program, event = two_programs["programs"][1], two_programs["events"][1]
        status, listed = bl.api.get("/events", {"programID": program["id"]})
        assert status == 200
        assert ids(listed) == [event["id"]]

    def test_reports_filter_by_program_id(self, bl, two_programs):
        program = two_programs["programs"][0]
        status, listed = bl.api.get("/reports", {"programID": program["id"]})
        assert status == 200
        assert sorted(ids(listed)) == sorted(r["id"] for r in two_programs["reports"]
                                             if r["programID"] == program["id"])
        assert len(listed) == 2

    def test_reports_filter_by_event_id(self, bl, two_programs):
        event = two_programs["events"][1]
        status, listed = bl.api.get("/reports", {"eventID": event["id"]})
        assert status == 200
        assert {r["eventID"] for r in listed} == {event["id"]}
        assert len(listed) == 2

    def test_reports_filter_by_client_name(self, bl, two_programs):
        status, listed = bl.api.get("/reports", {"clientName": "ven-a"})
        assert status == 200
        assert len(listed) == 2
        assert {r["clientName"] for r in listed} == {"ven-a"}

    def test_report_filters_are_additive(self, bl, two_programs):
        event = two_programs["events"][0]
        status, listed = bl.api.get("/reports", {"eventID": event["id"], "clientName": "ven-b"})
        assert status == 200
        assert len(listed) == 1
        assert listed[0]["eventID"] == event["id"] and listed[0]["clientName"] == "ven-b"
        other = two_programs["programs"][1]
        query = {"eventID": event["id"], "programID": other["id"]}
        assert bl.api.get("/reports", query) == (200, [])

    def test_subscriptions_filter_by_program_id(self, bl, two_programs):
        program = two_programs["programs"][1]
        status, listed = bl.api.get("/subscriptions", {"programID": program["id"]})
        assert status == 200
        assert len(listed) == 2
        assert {s["programID"] for s in listed} == {program["id"]}

    def test_subscriptions_filter_by_client_name_and_program_id(self, bl, two_programs):
        program = two_programs["programs"][0]
        status, listed = bl.api.get("/subscriptions", {"programID": program["id"],
                                                       "clientName": "ven-b"})
        assert status == 200
        assert len(listed) == 1
        assert listed[0]["clientName"] == "ven-b"

    def test_unknown_program_id_filter_gives_an_empty_list(self, bl, two_programs):
        assert bl.api.get("/events", {"programID": "nothing-here"}) == (200, [])


@pytest.mark.parametrize("value", ["bad id!", "x" * 129])
def test_malformed_program_id_filter_is_a_bad_request(bl, value):
    status, _ = bl.api.get("/events", {"programID": value})
    assert status == 400


# --- names -------------------------------------------------------------------------------

def test_vens_filter_by_ven_name(bl, ven_a, ven_b):
    status, listed = bl.api.get("/vens", {"venName": "ven-b"})
    assert status == 200
    assert ids(listed) == [ven_b.ven_id]


def test_resources_filter_by_resource_name(ven_a, version):
    path = resources_path(version, ven_a.ven_id)
    for name in ("meter", "battery"):
        assert ven_a.api.post(path, resource_body(version, "ven", ven_a.ven_id, name))[0] == 201
    status, listed = ven_a.api.get(path, {"resourceName": "battery"})
    assert status == 200
    assert [r["resourceName"] for r in listed] == ["battery"]


@V31
def test_resources_filter_by_ven_id(bl, ven_a, ven_b, version):
    for actor in (ven_a, ven_b):
        body = resource_body(version, "ven", actor.ven_id, "meter")
        assert actor.api.post("/resources", body)[0] == 201
    status, listed = bl.api.get("/resources", {"venID": ven_b.ven_id})
    assert status == 200
    assert [r["venID"] for r in listed] == [ven_b.ven_id]
    status, listed = bl.api.get("/resources", {"venID": ven_b.ven_id, "resourceName": "meter"})
    assert len(listed) == 1
    assert bl.api.get("/resources", {"venID": ven_b.ven_id, "resourceName": "x"}) == (200, [])


@pytest.mark.parametrize("version", [VERSION_301])
def test_301_resources_are_listed_per_ven(bl, ven_a, ven_b, version):
    for actor in (ven_a, ven_b):
        body = resource_body(version, "ven", actor.ven_id, "meter")
        assert actor.api.post(resources_path(version, actor.ven_id), body)[0] == 201
    status, listed = bl.api.get(resources_path(version, ven_a.ven_id))
    assert status == 200
    assert [r["venID"] for r in listed] == [ven_a.ven_id]


def test_name_filter_longer_than_128_characters_is_a_bad_request(bl):
    status, _ = bl.api.get("/vens", {"venName": "v" * 129})
    assert status == 400


# --- targets -----------------------------------------------------------------------------

@pytest.fixture
def targeted(bl, version) -> dict:
    """Programs and events targeted at g1, g2 and nothing, all in one program each."""
    made = {}
    for key, labels in (("g1", ["g1"]), ("g2", ["g2"]), ("both", ["g1", "g2"]),
                        ("none", None)):
        _, program = bl.api.post("/programs", program_body(version, targets=labels))
        _, event = bl.api.post("/events", event_body(version, program["id"], targets=labels))
        made[key] = {"program": program, "event": event}
    return made


@pytest.mark.parametrize("collection", ["programs", "events"])
def test_target_filter_selects_objects_with_the_target(bl, version, targeted, collection):
    singular = collection[:-1]
    status, listed = bl.api.get(f"/{collection}", target_query(version, ["g1"]))
    assert status == 200
    assert sorted(ids(listed)) == sorted([targeted["g1"][singular]["id"],
                                          targeted["both"][singular]["id"]])


def test_repeated_target_values_match_any_of_them(bl, version, targeted):
    status, listed = bl.api.get("/programs", target_query(version, ["g1", "g2"]))
    assert status == 200
    assert len(listed) == 3
    assert targeted["none"]["program"]["id"] not in ids(listed)


def test_target_filter_is_additive_with_program_id(bl, version, targeted):
    program_id = targeted["g2"]["program"]["id"]
    query = target_query(version, ["g1"]) | {"programID": program_id}
    assert bl.api.get("/events", query) == (200, [])
    query = target_query(version, ["g2"]) | {"programID": program_id}
    assert ids(bl.api.get("/events", query)[1]) == [targeted["g2"]["event"]["id"]]


def test_vens_filter_by_target(bl, ven_a, ven_b, grant, version):
    grant(ven_a, ["zone-1"])
    grant(ven_b, ["zone-2"])
    status, listed = bl.api.get("/vens", target_query(version, ["zone-2"]))
    assert status == 200
    assert ids(listed) == [ven_b.ven_id]


@pytest.mark.parametrize("version", [VERSION_301])
def test_301_target_type_without_target_values_is_a_bad_request(bl, version):
    status, _ = bl.api.get("/programs", {"targetType": "GROUP"})
    assert status == 400


@V31
def test_target_longer_than_128_characters_is_a_bad_request(bl, version):
    status, _ = bl.api.get("/programs", {"targets": ["t" * 129]})
    assert status == 400


# --- active (3.1) --------------------------------------------------------------------------

@pytest.fixture
def timed_events(bl, version) -> dict:
    _, program = bl.api.post("/programs", program_body(version))
    pid = program["id"]
    bodies = {
        "ended": event_body(version, pid, start="2020-01-01T00:00:00Z", duration="PT1H"),
        "future": event_body(version, pid, start="2099-01-01T00:00:00Z", duration="PT1H"),
        "open": event_body(version, pid, start="2020-01-01T00:00:00Z", duration="P9999Y"),
        "running": event_body(version, pid, start="2020-01-01T00:00:00Z", duration="P200Y"),
    }
    made = {}
    for key, body in bodies.items():
        status, made[key] = bl.api.post("/events", body)
        assert status == 201, made[key]
    return made


@V31
def test_active_true_hides_events_that_have_ended(bl, timed_events):
    status, listed = bl.api.get("/events", {"active": "true"})
    assert status == 200
    assert sorted(ids(listed)) == sorted(timed_events[k]["id"]
                                         for k in ("future", "open", "running"))


@V31
def test_active_false_or_absent_lists_every_event(bl, timed_events):
    assert len(bl.api.get("/events", {"active": "false"})[1]) == 4
    assert len(bl.api.get("/events")[1]) == 4


@V31
def test_active_is_additive_with_program_id(bl, timed_events, version):
    _, other = bl.api.post("/programs", program_body(version))
    assert bl.api.post("/events", event_body(version, other["id"],
                                             start="2099-01-01T00:00:00Z"))[0] == 201
    query = {"active": "true", "programID": timed_events["future"]["programID"]}
    assert len(bl.api.get("/events", query)[1]) == 3


@V31
def test_active_with_a_non_boolean_value_is_a_bad_request(bl):
    status, _ = bl.api.get("/events", {"active": "yes please"})
    assert status == 400


@V31
def test_ven_name_query_is_exact_not_a_prefix(bl, version):
    bl.api.post("/vens", ven_body(version, "bl", "alpha", client_id="c-alpha"))
    bl.api.post("/vens", ven_body(version, "bl", "alphabet", client_id="c-alphabet"))
    status, listed = bl.api.get("/vens", {"venName": "alpha"})
    assert [v["venName"] for v in listed] == ["alpha"]
