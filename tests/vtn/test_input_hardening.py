"""Inputs that once answered 500: each gets a clear 4xx problem and changes nothing.

Deeply nested JSON, lone surrogates in bodies and URLs, deleting or changing objects the
GB registry depends on, sandbox FSP names that collide with the PKI's own files, and
values with no sane bound (durations, date-times, names, reasons, zone-less times).
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.test import Client as DjangoClient

from tests.fixtures.api import new_actor, resource_body, resources_path, ven_body
from tests.fixtures.dispatch import hour

PROBLEM = "application/json"  # the default problem media type (Accept may ask for problem+json)
V31 = "/openadr3/3.1.0"
V301 = "/openadr3/3.0.1"


class Http:
    """A Django test client that returns 500s instead of raising them."""

    def __init__(self, token: str | None = None):
        self.http = DjangoClient(raise_request_exception=False)
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def send(self, method: str, url: str, data: str | bytes = b"",
             content_type: str = "application/json"):
        response = self.http.generic(method, url, data=data, content_type=content_type,
                                     headers=self.headers)
        body = json.loads(response.content) if response.content else None
        return response.status_code, body, response


def assert_problem(reply, status: int, *words: str) -> dict:
    code, body, response = reply
    assert code == status, (code, body)
    assert response["Content-Type"].startswith(PROBLEM), response["Content-Type"]
    assert body["status"] == status
    said = " ".join([body["detail"], *body.get("errors", [])]).lower()
    for word in words:
        assert word.lower() in said, body
    return body


def nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def z(value) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def operator(gb) -> Http:
    return Http(new_actor("operator", "bl", "3.1.0").token)


@pytest.fixture
def acme(gb) -> Http:
    return Http(gb.acme.token)


# --- deep nesting ---------------------------------------------------------------------------

@pytest.mark.parametrize("url", [f"{V31}/programs", f"{V301}/programs",
                                 "/dispatch/api/v1/dispatches"])
@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deeply_nested_json_is_refused_with_400(operator, url, depth):
    from vtn.models import Program

    before = Program.objects.count()
    assert_problem(operator.send("POST", url, nested(depth)), 400, "nest")
    assert_problem(operator.send("POST", url, "[" * depth + "]" * depth), 400, "nest")
    assert Program.objects.count() == before


def test_deeply_nested_json_from_a_ven_is_refused_with_400(acme):
    assert_problem(acme.send("POST", f"{V31}/reports", nested(5_000)), 400, "nest")


def test_nesting_up_to_the_limit_still_parses():
    from vtn.api.parsers import MAX_JSON_DEPTH, loads_strict

    assert loads_strict("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH) is not None
    with pytest.raises(ValueError, match="nested deeper"):
        loads_strict("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1))
    assert loads_strict('{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}') == {
        "a": "[" * 45}


# --- lone surrogates ------------------------------------------------------------------------

def test_lone_surrogate_in_a_body_string_is_refused(operator):
    from vtn.models import Program

    body = '{"programName": "bad\\ud800name"}'
    assert_problem(operator.send("POST", f"{V31}/programs", body), 400, "surrogate")
    assert_problem(operator.send("POST", f"{V301}/programs", body), 400, "surrogate")
    assert not Program.objects.filter(program_name__startswith="bad").exists()


def test_lone_surrogate_in_a_body_key_is_refused(operator):
    body = '{"programName": "p-key", "\\udc00": 1}'
    assert_problem(operator.send("POST", f"{V31}/programs", body), 400, "surrogate")


def test_lone_surrogate_in_a_dispatch_body_is_refused(operator):
    start = hour(2)
    body = json.dumps({"unit": "acme/bat1", "product": "DYNAMIC", "reference": "S\ud800",
                       "serviceStart": z(start), "serviceEnd": z(start + timedelta(hours=1)),
                       "serviceTimings": [{"setpointTime": z(start), "volume": 1}]})
    assert "\\ud800" in body
    assert_problem(operator.send("POST", "/dispatch/api/v1/dispatches", body),
                   400, "surrogate")


@pytest.mark.parametrize("query", ["programName=%ED%A0%80", "targetValues=a%ED%B0%80",
                                   "%ED%A0%80=1"])
def test_lone_surrogate_in_a_url_parameter_is_refused_or_ignored(operator, query):
    status, body, response = operator.send("GET", f"{V31}/programs?{query}")
    assert status < 500, body


def test_lone_surrogate_in_a_url_path_is_not_a_server_error(operator):
    for url in (f"{V31}/programs/%ED%A0%80", "/dispatch/api/v1/dispatches/%ED%A0%80/x",
                "/settlement/api/v1/statements/%ED%A0%80"):
        status, body, _ = operator.send("GET", url)
        assert 400 <= status < 500, (url, status, body)


# --- protected objects ----------------------------------------------------------------------

def test_a_gb_site_ven_cannot_delete_its_own_ven(gb, acme):
    from vtn.models import Ven

    ven_id = gb.acme.onboarding["ven_id"]
    for base in (V31, V301):
        body = assert_problem(acme.send("DELETE", f"{base}/vens/{ven_id}"), 400, "site")
        assert "registry" in body["detail"] or "GB" in body["detail"]
    assert Ven.objects.filter(pk=ven_id).exists()


def test_business_logic_cannot_delete_a_gb_site_ven_or_unit_resource(gb, operator):
    from vtn.models import Resource, Ven

    ven_id = gb.acme.onboarding["ven_id"]
    resource_id = gb.acme.onboarding["units"][0]["resource_id"]
    assert_problem(operator.send("DELETE", f"{V31}/vens/{ven_id}"), 400, "site")
    for version in ("3.1.0", "3.0.1"):
        url = f"/openadr3/{version}" + resources_path(version, ven_id, resource_id)
        assert_problem(operator.send("DELETE", url), 400, "dispatch unit")
    assert Ven.objects.filter(pk=ven_id).exists()
    assert Resource.objects.filter(pk=resource_id).exists()


def test_a_ven_cannot_delete_its_unit_resource(gb, acme):
    ven_id = gb.acme.onboarding["ven_id"]
    resource_id = gb.acme.onboarding["units"][0]["resource_id"]
    assert_problem(acme.send("DELETE", V31 + resources_path("3.1.0", ven_id, resource_id)),
                   400, "dispatch unit")


def test_an_operator_product_program_cannot_be_deleted(gb, operator):
    from dispatch.models import OperatorProgram

    program_id = OperatorProgram.objects.first().program_id
    for base in (V31, V301):
        assert_problem(operator.send("DELETE", f"{base}/programs/{program_id}"), 400,
                       "operator program")
    assert OperatorProgram.objects.filter(program_id=program_id).exists()


def test_standing_programs_and_events_cannot_be_deleted_or_renamed(gb, operator):
    """The profile finds an operator's heartbeat, availability and metering programs and
    an FSP's standing events by name: through the API they stay as they are."""
    from vtn.models import Event, Program

    event = Event.objects.get(pk=gb.acme.onboarding["heartbeat_event_id"])
    program = event.program
    events_before = program.events.count()
    for base in (V31, V301):
        assert_problem(operator.send("DELETE", f"{base}/events/{event.pk}"), 400,
                       "standing event")
        assert_problem(operator.send("DELETE", f"{base}/programs/{program.pk}"), 400,
                       "standing HEARTBEAT program")
    assert_problem(operator.send("PUT", f"{V31}/programs/{program.pk}", program_body(
        "renamed-heartbeats")), 400, "programName", "registry")
    other = Event.objects.get(pk=gb.acme.onboarding["metering_event_id"]).program
    for change in ({"eventName": "renamed"}, {"programID": other.pk}):
        body = {"programID": program.pk, "eventName": event.event_name, "intervals": []} | change
        assert_problem(operator.send("PUT", f"{V31}/events/{event.pk}", json.dumps(body)), 400,
                       "registry")
    event.refresh_from_db()
    assert (event.event_name, event.program_id) == (
        f"{program.program_name}/acme", program.pk)
    assert Program.objects.filter(pk=program.pk, program_name="GB-ENWL-HEARTBEAT").exists()
    assert program.events.count() == events_before


def test_a_dispatch_event_cannot_be_deleted_or_renamed(issue, operator):
    from vtn.models import Event

    dispatch = issue(reference="KEEP-ME")
    event = dispatch.event
    for base in (V31, V301):
        assert_problem(operator.send("DELETE", f"{base}/events/{event.pk}"), 400,
                       "dispatch instruction", "KEEP-ME")
    body = {"programID": event.program_id, "eventName": "not-a-dispatch", "intervals": []}
    assert_problem(operator.send("PUT", f"{V31}/events/{event.pk}", json.dumps(body)), 400,
                   "eventName", "registry")
    assert Event.objects.get(pk=event.pk).event_name == event.event_name


def test_a_plain_program_and_event_can_still_be_deleted_and_renamed(operator):
    status, created, _ = operator.send("POST", f"{V31}/programs", program_body("plain-prog"))
    assert status == 201, created
    status, renamed, _ = operator.send("PUT", f"{V31}/programs/{created['id']}",
                                       program_body("plain-prog-2"))
    assert status == 200 and renamed["programName"] == "plain-prog-2", renamed
    status, event, _ = operator.send("POST", f"{V31}/events", json.dumps(
        {"programID": created["id"], "eventName": "plain-event", "intervals": []}))
    assert status == 201, event
    status, _, _ = operator.send("PUT", f"{V31}/events/{event['id']}", json.dumps(
        {"programID": created["id"], "eventName": "plain-event-2", "intervals": []}))
    assert status == 200
    assert operator.send("DELETE", f"{V31}/events/{event['id']}")[0] == 200
    assert operator.send("DELETE", f"{V31}/programs/{created['id']}")[0] == 200


def test_a_plain_ven_can_still_be_deleted(operator):
    status, body, _ = operator.send("POST", f"{V31}/vens", json.dumps(
        ven_body("3.1.0", "bl", "plain-ven")))
    assert status == 201, body
    status, _, _ = operator.send("DELETE", f"{V31}/vens/{body['id']}")
    assert status == 200


def test_a_ven_may_not_rename_its_gb_site_ven_or_unit_resources(gb, acme):
    from vtn.models import Resource, Ven

    ven_id = gb.acme.onboarding["ven_id"]
    unit = gb.acme.onboarding["units"][0]
    assert_problem(acme.send("PUT", f"{V31}/vens/{ven_id}", json.dumps(
        ven_body("3.1.0", "ven", "stolen-name"))), 400, "registry")
    resource_url = V31 + resources_path("3.1.0", ven_id, unit["resource_id"])
    assert_problem(acme.send("PUT", resource_url, json.dumps(
        resource_body("3.1.0", "ven", ven_id, "other"))), 400, "registry")
    assert Ven.objects.get(pk=ven_id).ven_name == gb.acme.onboarding["ven_name"]
    assert Resource.objects.get(pk=unit["resource_id"]).resource_name == unit["reference"]
    # The same names (with new attributes) are still accepted.
    status, body, _ = acme.send("PUT", resource_url, json.dumps(resource_body(
        "3.1.0", "ven", ven_id, unit["reference"],
        attributes=[{"type": "LOCATION", "values": ["x"]}])))
    assert status == 200, body


def program_body(name: str) -> str:
    return json.dumps({"programName": name})


# --- content of protected objects -----------------------------------------------------------

SERVER_FIELDS = ("id", "createdDateTime", "modificationDateTime", "objectType")
OWNER_HINT = "dispatch API"  # where the refusal says to make the change


def fetched(http: Http, url: str, **request_kind) -> dict:
    """What GET answers, as a PUT body (``objectType`` given for 3.1 vens and resources)."""
    status, body, _ = http.send("GET", url)
    assert status == 200, body
    return {k: v for k, v in body.items() if k not in SERVER_FIELDS} | request_kind


def put(http: Http, url: str, body: dict):
    return http.send("PUT", url, json.dumps(body))


def rows(model, pk: str) -> list[dict]:
    return list(model.objects.filter(pk=pk).values())


def test_an_owned_programs_content_cannot_be_changed_through_the_api(gb, operator):
    """A product program's attributes are the product's parameters, a standing program's
    are the profile's: a PUT that changes anything is refused in both versions, naming
    the owner and where to change it; sending back what GET answered is accepted."""
    from dispatch.models import OperatorProgram
    from vtn.models import Event, Program

    product = OperatorProgram.objects.get(program__program_name="GB-ENWL-MW_DISPATCH").program
    standing = Event.objects.get(pk=gb.acme.onboarding["heartbeat_event_id"]).program
    for program, owner in ((product, "operator program"), (standing, "standing HEARTBEAT")):
        before = rows(Program, program.pk)
        url = f"{V31}/programs/{program.pk}"
        current = fetched(operator, url)
        changed_attributes = [{**a, "values": ["PT1S"]} if a["type"] == "GB_HEARTBEAT_INTERVAL"
                              else a for a in current["attributes"]] + [
            {"type": "EXTRA", "values": ["x"]}]
        for change, field in (({"attributes": changed_attributes}, "attributes"),
                              ({"targets": ["some-group"]}, "targets"),
                              ({"programDescriptions": [{"URL": "https://x.example"}]},
                               "programDescriptions")):
            body = assert_problem(put(operator, url, current | change), 400, field, owner,
                                  "registry", OWNER_HINT)
            assert program.program_name in body["detail"] or owner in body["detail"]
        # 3.0.1 cannot carry the GB attributes: its PUT of the same program would drop them.
        legacy = fetched(operator, f"{V301}/programs/{program.pk}")
        assert_problem(put(operator, f"{V301}/programs/{program.pk}", legacy), 400,
                       "attributes", owner)
        assert_problem(put(operator, f"{V301}/programs/{program.pk}", legacy | {
            "targets": [{"type": "GROUP", "values": ["g"]}]}), 400, "targets", owner)
        assert rows(Program, program.pk) == before
        status, same, _ = put(operator, url, current)
        assert status == 200, same
        assert same["attributes"] == current["attributes"]


def test_the_profile_still_changes_its_product_program(gb, operator):
    from django.test import Client as Plain

    from dispatch.models import OperatorProgram

    program = OperatorProgram.objects.get(program__program_name="GB-ENWL-MW_DISPATCH").program
    changed = Plain().put("/dispatch/api/v1/products/ENWL/MW_DISPATCH", json.dumps(
        {"parameters": {"heartbeat_interval": "PT20S"}, "reason": "test"}),
        content_type="application/json", headers=operator.headers)
    assert changed.status_code == 200, changed.content
    program.refresh_from_db()
    assert {"type": "GB_HEARTBEAT_INTERVAL", "values": ["PT20S"]} in program.attributes


def _event_changes(version: str, current: dict) -> list[tuple[dict, str]]:
    other = "ENWL/zeta"
    targets = ["ENWL/zeta"] if version == "3.1.0" else [
        {"type": "GROUP", "values": [other]}]
    intervals = json.loads(json.dumps(current["intervals"]))
    intervals[0]["payloads"][0]["values"] = [9999]
    return [({"targets": targets}, "targets"), ({"intervals": intervals}, "intervals"),
            ({"priority": 0 if current.get("priority") != 0 else 1}, "priority")]


@pytest.mark.parametrize("base", [V31, V301])
def test_a_dispatch_events_content_cannot_be_changed_through_the_api(issue, operator, base):
    """Its intervals carry the signed dispatch: another target or payload through the API
    would make the event disagree with what the operator signed."""
    from dispatch import issuing
    from vtn.models import Event

    dispatch = issue(reference="SIGNED-1")
    event = dispatch.event
    before = rows(Event, event.pk)
    url = f"{base}/events/{event.pk}"
    current = fetched(operator, url)
    version = base.rsplit("/", 1)[-1]
    for change, field in _event_changes(version, current):
        assert_problem(put(operator, url, current | change), 400, field,
                       "dispatch instruction", "SIGNED-1", OWNER_HINT)
    assert rows(Event, event.pk) == before
    status, same, _ = put(operator, url, current)  # unchanged: accepted
    assert status == 200, same
    # The profile itself still publishes a revision on the event.
    issuing.revise_dispatch(dispatch=dispatch, status="run", urgency="warning")
    event.refresh_from_db()
    assert event.intervals != before[0]["intervals"]


@pytest.mark.parametrize("base", [V31, V301])
def test_a_standing_events_content_cannot_be_changed_through_the_api(gb, operator, base):
    from vtn.models import Event

    event_id = gb.acme.onboarding["availability_event_id"]
    before = rows(Event, event_id)
    url = f"{base}/events/{event_id}"
    current = fetched(operator, url)
    version = base.rsplit("/", 1)[-1]
    for change, field in _event_changes(version, current)[:1] + [
            ({"reportDescriptors": None}, "reportDescriptors")]:
        assert_problem(put(operator, url, current | change), 400, field,
                       "standing event", OWNER_HINT)
    assert rows(Event, event_id) == before


@pytest.mark.parametrize("base", [V31, V301])
def test_business_logic_cannot_change_a_gb_site_ven_or_unit_resource(gb, operator, base):
    """The registry sets a site's ven and its units' resources: their targets (what the
    site and unit are dispatched by), attributes, clientID and ven stay as onboarded."""
    from vtn.models import Resource, Ven

    version = base.rsplit("/", 1)[-1]
    ven_id = gb.acme.onboarding["ven_id"]
    resource_id = gb.acme.onboarding["units"][0]["resource_id"]
    kinds = ({"objectType": "BL_VEN_REQUEST"}, {"objectType": "BL_RESOURCE_REQUEST"}) \
        if version == "3.1.0" else ({}, {})
    targets = ["ENWL/zeta"] if version == "3.1.0" else [{"type": "GROUP", "values": ["x"]}]
    before = rows(Ven, ven_id), rows(Resource, resource_id)
    objects = [(f"{base}/vens/{ven_id}", kinds[0], "site"),
               (base + resources_path(version, ven_id, resource_id), kinds[1], "dispatch unit")]
    for url, kind, owner in objects:
        current = fetched(operator, url, **kind)
        for change, field in (({"attributes": [{"type": "LOCATION", "values": ["x"]}]},
                               "attributes"), ({"targets": targets}, "targets")):
            assert_problem(put(operator, url, current | change), 400, field, owner,
                           OWNER_HINT)
        if version == "3.1.0":
            assert_problem(put(operator, url, current | {"clientID": "someone-else"}), 400,
                           "clientID", owner)
    if version == "3.1.0":
        url = base + resources_path(version, ven_id, resource_id)
        moved = fetched(operator, url, **kinds[1]) | {"venID": gb.zeta.onboarding["ven_id"]}
        assert_problem(put(operator, url, moved), 400, "venID", "dispatch unit")
    assert (rows(Ven, ven_id), rows(Resource, resource_id)) == before
    for url, kind, _ in objects:  # what GET answered goes back unchanged
        status, same, _ = put(operator, url, fetched(operator, url, **kind))
        assert status == 200, same


@pytest.mark.parametrize("base", [V31, V301])
def test_a_gb_sites_ven_still_describes_itself(gb, acme, base):
    """Attributes of a VEN's own ven and resources are its self-description: it may
    change them (and only them) on its registry-owned ven and unit resources."""
    from vtn.models import Resource, Ven

    version = base.rsplit("/", 1)[-1]
    ven_id = gb.acme.onboarding["ven_id"]
    unit = gb.acme.onboarding["units"][0]
    described = [{"type": "LOCATION", "values": [version]}]
    ven = {"venName": gb.acme.onboarding["ven_name"], "attributes": described}
    resource = {"resourceName": unit["reference"], "attributes": described}
    if version == "3.1.0":
        ven["objectType"] = "VEN_VEN_REQUEST"
        resource |= {"objectType": "VEN_RESOURCE_REQUEST", "venID": ven_id}
    status, body, _ = put(acme, f"{base}/vens/{ven_id}", ven)
    assert status == 200 and body["attributes"] == described, body
    url = base + resources_path(version, ven_id, unit["resource_id"])
    status, body, _ = put(acme, url, resource)
    assert status == 200 and body["attributes"] == described, body
    assert Ven.objects.get(pk=ven_id).attributes == described
    stored = Resource.objects.get(pk=unit["resource_id"])
    assert stored.attributes == described
    assert stored.resource_name == unit["reference"] and stored.targets


# --- sandbox onboarding names ---------------------------------------------------------------

@pytest.mark.parametrize("name", ["ca", "server", "crl", "CA"])
def test_sandbox_onboarding_refuses_names_the_pki_reserves(db, settings, tmp_path, name):
    from dispatch.models import Fsp
    from vtn import pki

    pki.init_pki(tmp_path / "pki")
    settings.CONFORMANCE_SELF_SERVICE = True
    settings.VTN_PKI_DIR = tmp_path / "pki"
    body = json.dumps({"fsp": name, "units": [{"reference": "u1", "capacityKw": 10}]})
    assert_problem(Http().send("POST", "/conformance/api/v1/onboard", body), 400, name.lower())
    assert not Fsp.objects.filter(identifier=name).exists()


# --- bounds ---------------------------------------------------------------------------------

def program(name: str = "bounded", **extra) -> str:
    return json.dumps({"programName": name, **extra})


def test_a_one_megabyte_name_is_refused(operator):
    from vtn.models import Program

    assert_problem(operator.send("POST", f"{V31}/programs", program("x" * 1_000_000)), 400,
                   "programName")
    status, created, _ = operator.send("POST", f"{V31}/programs", program("ev-host"))
    assert status == 201
    event = {"programID": created["id"], "eventName": "e" * 1_000_000, "intervals": []}
    assert_problem(operator.send("POST", f"{V31}/events", json.dumps(event)), 400, "eventName")
    assert not Program.objects.filter(program_name__startswith="xxx").exists()


@pytest.mark.parametrize("duration", ["P999999999Y", "PT99999999999999999999H", "P10001Y",
                                      "P9998Y900000M", "-P99999Y"])
def test_durations_beyond_sane_limits_are_refused(operator, duration):
    assert_problem(operator.send("POST", f"{V31}/programs", program(
        "dur", intervalPeriod={"start": "2026-01-01T00:00:00Z", "duration": duration})), 400,
        "duration")


@pytest.mark.parametrize("start", ["0002-01-01T00:00:00Z", "9999-12-31T23:59:59Z",
                                   "1000-01-01T00:00:00Z", "2026-13-01T00:00:00Z"])
def test_date_times_beyond_sane_limits_are_refused(operator, start):
    assert_problem(operator.send("POST", f"{V31}/programs", program(
        "dt", intervalPeriod={"start": start, "duration": "PT1H"})), 400)


@pytest.mark.parametrize("period", [{"start": "0001-01-01T00:00:00Z", "duration": "P9999Y"},
                                    {"start": "2026-01-01T00:00:00Z", "duration": "P1Y"}])
def test_the_documents_conventions_for_now_and_infinity_are_still_accepted(operator, period):
    status, body, _ = operator.send("POST", f"{V31}/programs", program(
        "conventions", intervalPeriod=period))
    assert status == 201, body


def test_a_dispatch_reason_has_a_length_limit(operator):
    start = hour(2)
    body = {"unit": "acme/bat1", "product": "DYNAMIC", "reference": "R-LONG",
            "serviceStart": z(start), "serviceEnd": z(start + timedelta(hours=1)),
            "serviceTimings": [{"setpointTime": z(start), "volume": 1}], "reason": "r" * 100_000}
    assert_problem(operator.send("POST", "/dispatch/api/v1/dispatches",
                                 json.dumps(body)), 400, "reason")


def test_a_zoneless_service_start_is_refused(operator):
    start = hour(2)
    body = {"unit": "acme/bat1", "product": "DYNAMIC", "reference": "NAIVE",
            "serviceStart": start.strftime("%Y-%m-%dT%H:%M:%S"),
            "serviceEnd": z(start + timedelta(hours=1)),
            "serviceTimings": [{"setpointTime": z(start), "volume": 1}]}
    assert_problem(operator.send("POST", "/dispatch/api/v1/dispatches",
                                 json.dumps(body)), 400, "zone")
