"""Every operator-side endpoint and console page x identities of two network operators.

ENWL (FSP acme, from the ``gb`` fixture) and SPEN-D (FSP beta) each have a dispatch, a
contract and a statement. An identity granted ENWL alone acts on ENWL's objects; for
SPEN-D's it gets exactly the answer it would get for objects that do not exist (404, the
same body with the names swapped) and the attempt is in the security log. A shared
service company granted both reaches both; an identity granted nothing reaches nothing.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client as DjangoClient
from django.utils import timezone

from tests.fixtures import worlds
from tests.fixtures.api import new_actor
from tests.fixtures.console import create_staff, log_in
from tests.fixtures.dispatch import hour, issue_dispatch, timing

pytestmark = pytest.mark.django_db
OTHER = "SPEN-D"


class Api:
    def __init__(self, token: str):
        self.http = DjangoClient()
        self.headers = {"Authorization": f"Bearer {token}"}

    def send(self, method: str, path: str, body: dict | None = None):
        if method == "GET":
            response = self.http.get(path, headers=self.headers)
        else:
            response = self.http.generic(method, path, json.dumps(body or {}),
                                         content_type="application/json",
                                         headers=self.headers)
        if response["Content-Type"].startswith("text/csv"):
            return response.status_code, response.content.decode()
        return response.status_code, json.loads(response.content or b"null")


def _build_two_operators() -> dict:
    from dispatch import issuing, onboarding, programs, registry, selectors
    from settlement import services as settlement

    onboarding.onboard_fsp(operator=OTHER, fsp="beta", units=[registry.parse_unit_spec("b1:100")])
    onboarding.create_contract(operator=OTHER, identifier="C-B", fsp="beta", product="DYNAMIC",
                             units=["b1"], availability_price=Decimal("2"))
    issue_dispatch(reference="D-ENWL")
    start = hour(2)
    issuing.issue_dispatch(
        unit=selectors.find_unit("beta/b1"), reference="D-SPEN", service_start=start,
        service_end=start + timedelta(hours=1), timings=[timing(start, 50)],
        product=programs.find_product("DYNAMIC"), issued_by="test")
    month = settlement.Month.parse(timezone.now().strftime("%Y-%m"))
    statements = {
        "ENWL": settlement.settle_month(contract=selectors.find_contract("C-DYN"), month=month),
        OTHER: settlement.settle_month(contract=selectors.find_contract("C-B"), month=month)}
    return {"ENWL": {"dispatch": "D-ENWL", "contract": "C-DYN", "unit": "acme/bat1",
                     "statement": statements["ENWL"].pk},
            OTHER: {"dispatch": "D-SPEN", "contract": "C-B", "unit": "beta/b1",
                    "statement": statements[OTHER].pk}}


worlds.shared(__name__, "two_operators", lambda _earlier: _build_two_operators())


@pytest.fixture
def two_operators(request, gb, issue):
    """Per operator: a dispatch (D-ENWL / D-SPEN), a contract (C-DYN / C-B) and a draft
    statement of this month. Built once for the module's consecutive tests on top of
    ``gb`` (``tests/fixtures/worlds.py``)."""
    return worlds.value(request, "two_operators")


def _z(value) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _issue_body(unit: str) -> dict:
    start = hour(3)
    return {"unit": unit, "product": "DYNAMIC", "reference": "NEW-1",
            "serviceStart": _z(start), "serviceEnd": _z(start + timedelta(hours=1)),
            "serviceTimings": [{"setpointTime": _z(start), "volume": "10"}]}


D = "/dispatch/api/v1"
S = "/settlement/api/v1"
# (method, path template, body, status when in scope). {op}, {dispatch}, {contract},
# {unit} and {statement} are the target operator's objects.
ITEM_ENDPOINTS = [
    ("GET", D + "/dispatches/{op}/{dispatch}", None, 200),
    ("POST", D + "/dispatches/{op}/{dispatch}/revisions",
     {"urgency": "emergency", "reason": "matrix"}, 201),
    ("POST", D + "/dispatches/{op}/{dispatch}/stop", {"reason": "matrix"}, 201),
    ("POST", D + "/dispatches/{op}/{dispatch}/emergency-stop", {"reason": "matrix"}, 201),
    ("GET", D + "/dispatches/{op}/{dispatch}/audit-export", None, 200),
    ("GET", D + "/products/{op}/DYNAMIC", None, 200),
    ("PUT", D + "/products/{op}/DYNAMIC", {"parameters": {"ramp_time": "PT2M"},
                                           "reason": "matrix"}, 200),
    ("GET", D + "/contracts/{op}/{contract}/availability?from=2026-01-01T00:00:00Z"
               "&to=2026-01-02T00:00:00Z", None, 200),
    ("POST", D + "/dispatches", "issue", 201),
    ("GET", D + "/meter-readings?unit={unit}", None, 200),
    ("GET", D + "/units/{op}/{unit}", None, 200),
    ("PUT", D + "/units/{op}/{unit}", {"capacityKvar": "10", "reason": "matrix"}, 200),
    ("GET", S + "/statements/{statement}", None, 200),
    ("GET", S + "/statements/{statement}/export?format=csv", None, 200),
    ("POST", S + "/statements/{statement}/issue", None, 200),
    ("POST", S + "/statements/{statement}/resolve", {"resolution": "matrix"}, 409),
    ("POST", S + "/statements/{statement}/finalise", None, 409),
    ("POST", S + "/statements", "compute", 200),
]


def _request(endpoint, objects: dict, operator: str, *, missing: bool = False):
    method, template, body, _ = endpoint
    names = dict(objects[operator], op=operator)
    if missing:  # the same request naming objects that do not exist
        names |= {"dispatch": "NO-SUCH", "contract": "NO-SUCH", "unit": "nobody/none",
                  "statement": 999999}
    path = template.format(**names)
    if body == "issue":
        body = _issue_body(names["unit"])
    elif body == "compute":
        body = {"operator": operator, "contract": names["contract"],
                "month": timezone.now().strftime("%Y-%m")}
    return method, path, body


def _anonymised(body: object, names: dict) -> str:
    text = json.dumps(body)
    # Longest first and whole words only: a statement numbered 9 must not eat 999999.
    for value in sorted({str(v) for v in names}, key=len, reverse=True):
        text = re.sub(rf"(?<!\w){re.escape(value)}(?!\w)", "X", text)
    return re.sub(r"\d{6,}", "X", text)


def _out_of_scope_events() -> list:
    from vtn.models import SecurityEvent

    return list(SecurityEvent.objects.filter(kind=SecurityEvent.Kind.OUT_OF_SCOPE))


@pytest.mark.parametrize("endpoint", ITEM_ENDPOINTS, ids=[f"{m} {p}" for m, p, *_ in
                                                           ITEM_ENDPOINTS])
def test_an_operator_reaches_its_own_objects_and_not_another_operators(two_operators,
                                                                         endpoint):
    enwl = Api(new_actor("enwl-ops", "bl", "3.1.0", operators=["ENWL"]).token)
    expected = endpoint[3]

    status, body = enwl.send(*_request(endpoint, two_operators, OTHER))
    assert status == 404, body
    events = _out_of_scope_events()
    assert len(events) == 1 and OTHER in events[0].detail, events
    assert events[0].client_id  # who tried

    status_missing, body_missing = enwl.send(*_request(endpoint, two_operators, OTHER,
                                                       missing=True))
    names = [str(v) for v in two_operators[OTHER].values()] + ["NO-SUCH", "nobody/none",
                                                               "999999", "beta/b1", "b1", "beta",
                                                               "nobody", "none"]
    assert status_missing == 404
    assert _anonymised(body, names) == _anonymised(body_missing, names)

    status, body = enwl.send(*_request(endpoint, two_operators, "ENWL"))
    assert status == expected, body


@pytest.mark.parametrize("endpoint", ITEM_ENDPOINTS, ids=[f"{m} {p}" for m, p, *_ in
                                                           ITEM_ENDPOINTS])
def test_a_shared_service_company_reaches_both_and_an_ungranted_client_neither(
        two_operators, endpoint):
    shared = Api(new_actor("shared-ops", "bl", "3.1.0", operators=["ENWL", OTHER]).token)
    nobody = Api(new_actor("nobody-ops", "bl", "3.1.0", operators=[]).token)
    assert nobody.send(*_request(endpoint, two_operators, OTHER))[0] == 404
    assert nobody.send(*_request(endpoint, two_operators, "ENWL"))[0] == 404
    for operator in (OTHER, "ENWL"):
        status, body = shared.send(*_request(endpoint, two_operators, operator))
        assert status == endpoint[3], (operator, body)


LISTS = [
    (D + "/dispatches", lambda row: row["networkOperator"]),
    (D + "/sites", lambda row: row["operator"]),
    (D + "/report-intakes", lambda row: row["site"].split("/")[0]),
    (D + "/meter-readings", None),
    (S + "/statements", lambda row: row["operator"]),
]


@pytest.mark.parametrize(("path", "operator_of"), LISTS, ids=[p for p, _ in LISTS])
def test_lists_show_only_the_granted_operators(two_operators, path, operator_of):
    enwl = Api(new_actor("enwl-ops", "bl", "3.1.0", operators=["ENWL"]).token)
    shared = Api(new_actor("shared-ops", "bl", "3.1.0", operators=["ENWL", OTHER]).token)
    nobody = Api(new_actor("nobody-ops", "bl", "3.1.0", operators=[]).token)
    status, rows = nobody.send("GET", path)
    assert status == 200 and rows == []
    if operator_of is None:
        return
    status, rows = enwl.send("GET", path)
    assert status == 200
    assert {operator_of(row) for row in rows} <= {"ENWL"}
    status, everything = shared.send("GET", path)
    if path.endswith(("dispatches", "sites", "statements")):
        assert {operator_of(row) for row in everything} == {"ENWL", OTHER}
        assert {operator_of(row) for row in rows} == {"ENWL"}
    # Naming the other operator in the filter finds nothing either.
    status, rows = enwl.send("GET", f"{path}?operator={OTHER}")
    assert status == 200 and rows == []


# --- the console ----------------------------------------------------------------------------

CONSOLE_ITEMS = [
    ("GET", "/console/dispatches/{op}/{dispatch}", 200),
    ("GET", "/console/dispatches/{op}/{dispatch}/timeline", 200),
    ("GET", "/console/dispatches/{op}/{dispatch}/revise", 200),
    ("GET", "/console/dispatches/{op}/{dispatch}/stop", 200),
    ("GET", "/console/dispatches/{op}/{dispatch}/emergency-stop", 200),
    ("GET", "/console/dispatches/{op}/{dispatch}/evidence", 200),
    ("GET", "/console/statements/{statement}", 200),
    ("GET", "/console/statements/{statement}/export.csv", 200),
    ("POST", "/console/statements/{statement}/issue", 302),
]


@pytest.mark.parametrize("endpoint", CONSOLE_ITEMS, ids=[f"{m} {p}" for m, p, _ in
                                                          CONSOLE_ITEMS])
def test_a_console_user_reaches_only_its_operators_pages(two_operators, client, endpoint):
    method, template, expected = endpoint
    log_in(client, create_staff("enwl-admin", "administrator", operators=["ENWL"]))
    send = client.get if method == "GET" else client.post
    other = template.format(op=OTHER, **two_operators[OTHER])
    response = send(other)
    assert response.status_code == 404, response.content[:500]
    assert [e.client_id for e in _out_of_scope_events()] == ["console:enwl-admin"]
    missing = template.format(op=OTHER, dispatch="NO-SUCH", statement=999999)
    assert send(missing).status_code == 404
    own = template.format(op="ENWL", **two_operators["ENWL"])
    assert send(own).status_code == expected


def test_console_lists_and_forms_show_only_the_users_operators(two_operators, client):
    log_in(client, create_staff("enwl-admin", "administrator", operators=["ENWL"]))
    for path in ("/console/", "/console/dispatches", "/console/registry",
                 "/console/statements", "/console/audit", "/console/registry/products",
                 "/console/dispatches/new", "/console/registry/onboard",
                 "/console/registry/contracts/new"):
        page = client.get(path)
        assert page.status_code == 200, path
        text = page.content.decode()
        for secret in ("D-SPEN", "beta/b1", "C-B<", ">beta<"):
            assert secret not in text, (path, secret)
    assert "D-ENWL" in client.get("/console/dispatches").content.decode()
    # An SPEN-D unit or operator sent in a form anyway is refused like an unknown one.
    from dispatch.models import DispatchUnit

    unit = DispatchUnit.objects.get(reference="b1")
    start = hour(3)
    response = client.post("/console/dispatches/new", {
        "unit": unit.pk, "product": "DYNAMIC", "start": _z(start),
        "end": _z(start + timedelta(hours=1)), "kw": "5", "setpoint_type": "delta",
        "status": "run", "step": "confirm"})
    assert response.status_code == 400
    response = client.post("/console/statements/compute", {
        "operator": OTHER, "contract": "C-B", "month": timezone.now().strftime("%Y-%m")})
    assert response.status_code == 400
    assert len(_out_of_scope_events()) == 2
    from dispatch.models import DispatchInstruction

    assert not DispatchInstruction.objects.filter(unit=unit).exclude(reference="D-SPEN")


# --- the OpenADR API, both versions ---------------------------------------------------------

VERSIONS = ("3.1.0", "3.0.1")
PROBLEM = "application/problem+json"


def _build_openadr() -> dict:
    from dispatch.models import DispatchInstruction, FspSite
    from tests.fixtures.api import (
        event_body,
        program_body,
        report_body,
        resource_body,
        subscription_body,
        unique,
        ven_body,
    )

    made: dict[str, dict] = {}
    for operator, fsp, dispatch in (("ENWL", "acme", "D-ENWL"), (OTHER, "beta", "D-SPEN")):
        actor = new_actor(f"{operator.lower()}-bl", "bl", "3.1.0", operators=[operator])
        api = actor.api
        created = {}
        for name, path, body in (
                ("program", "/programs", lambda c: program_body("3.1.0")),
                ("event", "/events", lambda c: event_body("3.1.0", c["program"]["id"])),
                ("report", "/reports", lambda c: report_body("3.1.0", c["event"])),
                ("subscription", "/subscriptions",
                 lambda c: subscription_body("3.1.0", c["program"]["id"])),
                ("ven", "/vens", lambda c: ven_body("3.1.0", "bl", client_id=unique("cid"))),
                ("resource", "/resources",
                 lambda c: resource_body("3.1.0", "bl", c["ven"]["id"]))):
            status, created[name] = api.post(path, body(created))
            assert status == 201, created[name]
        made[operator] = {
            "actor": actor, **{name: obj["id"] for name, obj in created.items()},
            "dispatch_event": DispatchInstruction.objects.get(reference=dispatch).event_id,
            "site_ven": FspSite.objects.get(fsp__identifier=fsp).ven_id}
    return made


def _own_actors(made: dict) -> dict:
    """A test's own copy of what :func:`_build_openadr` made: fresh clients, same tokens."""
    return {operator: {name: replace(item) if name == "actor" else item
                       for name, item in objects.items()}
            for operator, objects in made.items()}


worlds.shared(__name__, "openadr", lambda _earlier: _build_openadr(), copy=_own_actors)


@pytest.fixture
def openadr(request, two_operators):
    """Per operator: a business-logic client granted that operator alone, and what it made
    through OpenADR 3.1 (a program, an event in it, a report on the event, a subscription
    to the program, a ven bound to a VEN client and a resource of it), plus the operator's
    dispatch event and site ven made by the dispatch profile. Built once for the module's
    consecutive tests on top of ``two_operators``."""
    return worlds.value(request, "openadr")


def _resource_path(version: str, ven: str, resource: str | None = None) -> str:
    base = "/resources" if version == "3.1.0" else f"/vens/{ven}/resources"
    return base + (f"/{resource}" if resource else "")


def _bodies(version: str, ids: dict) -> dict:
    """Request bodies naming the objects ``ids`` (of one operator, or missing ones)."""
    from tests.fixtures.api import (
        event_body,
        program_body,
        report_body,
        resource_body,
        subscription_body,
        unique,
        ven_body,
    )

    event = {"id": ids["event"], "programID": ids["program"]}
    return {
        "program": program_body(version),
        "event": event_body(version, ids["program"]),
        "report": report_body(version, event),
        "subscription": subscription_body(version, ids["program"]),
        "ven": ven_body(version, "bl", client_id=unique("cid")),
        "resource": resource_body(version, "bl", ids["ven"]),
    }


# (method, path, body, status on one's own objects) from (version, the target's ids).
OPENADR_ENDPOINTS = [
    *[(method, f"/{kind}s/{{{kind}}}", body, 200)
      for kind in ("program", "event", "report", "subscription", "ven")
      for method, body in (("GET", None), ("PUT", kind), ("DELETE", None))],
    ("GET", "resource-item", None, 200),
    ("PUT", "resource-item", "resource", 200),
    ("DELETE", "resource-item", None, 200),
    # Creates that name another object: answered as when it does not exist.
    ("POST", "/events", "event", 201),
    ("POST", "/reports", "report", 201),
    ("POST", "/subscriptions", "subscription", 201),
    ("POST", "resource-list", "resource", 201),
]


def _openadr_request(endpoint, version: str, ids: dict):
    method, template, body, _ = endpoint
    if template == "resource-item":
        path = _resource_path(version, ids["ven"], ids["resource"])
    elif template == "resource-list":
        path = _resource_path(version, ids["ven"])
    else:
        path = template.format(**ids)
    return method, path, None if body is None else _bodies(version, ids)[body]


def _missing(ids: dict) -> dict:
    from tests.fixtures.api import missing_id

    return {name: missing_id() if isinstance(value, str) else value
            for name, value in ids.items()}


def _state(ids: dict) -> dict:
    """The stored rows of one operator's objects, to show a refused call changed nothing."""
    from vtn.models import Event, Program, Report, Resource, Subscription, Ven

    return {name: list(model.objects.filter(pk=ids[name]).values()) for name, model in (
        ("program", Program), ("event", Event), ("report", Report),
        ("subscription", Subscription), ("ven", Ven), ("resource", Resource))}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("endpoint", OPENADR_ENDPOINTS,
                         ids=[f"{m} {p} {b}" for m, p, b, _ in OPENADR_ENDPOINTS])
def test_an_operators_openadr_client_reaches_its_own_objects_and_not_another_operators(
        openadr, endpoint, version):
    enwl = openadr["ENWL"]["actor"].on(version)
    theirs = {k: v for k, v in openadr[OTHER].items() if k != "actor"}
    before = _state(theirs)
    headers = {"Accept": PROBLEM}

    method, path, body = _openadr_request(endpoint, version, theirs)
    refused = enwl.request(method, path, body, headers=headers)
    assert refused.status in (404, 409), refused.json
    assert refused.content_type.startswith(PROBLEM)
    events = _out_of_scope_events()
    assert len(events) == 1 and OTHER in events[0].detail, events
    assert events[0].client_id == openadr["ENWL"]["actor"].client_id
    assert _state(theirs) == before  # nothing changed

    missing = _missing(theirs)
    method, path, body = _openadr_request(endpoint, version, missing)
    absent = enwl.request(method, path, body, headers=headers)
    assert absent.status == refused.status
    names = [v for v in theirs.values() if isinstance(v, str)] + \
        [v for v in missing.values() if isinstance(v, str)]
    assert _anonymised(refused.json, names) == _anonymised(absent.json, names)
    assert len(_out_of_scope_events()) == 1  # a missing object is no reach across

    ours = {k: v for k, v in openadr["ENWL"].items() if k != "actor"}
    own = enwl.request(*_openadr_request(endpoint, version, ours))
    assert own.status == endpoint[3], own.json


OPENADR_LISTS = [
    ("/programs", ("program",)), ("/events", ("event", "dispatch_event")),
    ("/reports", ("report",)), ("/subscriptions", ("subscription",)),
    ("/vens", ("ven", "site_ven")), ("resources", ("resource",)),
]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("path", "names"), OPENADR_LISTS, ids=[p for p, _ in OPENADR_LISTS])
def test_openadr_lists_show_only_the_granted_operators(openadr, version, path, names):
    enwl = openadr["ENWL"]["actor"].on(version)
    shared = new_actor("shared-bl", "bl", version, operators=["ENWL", OTHER]).api
    nobody = new_actor("nobody-bl", "bl", version, operators=[]).api

    def listed(api, operator: str | None = None) -> set[str]:
        own = openadr[operator or "ENWL"]
        where = _resource_path(version, own["ven"]) if path == "resources" else path
        status, rows = api.get(where, {"limit": 50})
        if status == 404 and where != path:  # 3.0.1: a ven the caller does not see
            return set()
        assert status == 200, rows
        return {row["id"] for row in rows}

    def ids(operator: str) -> set[str]:
        return {openadr[operator][name] for name in names}

    assert ids("ENWL") <= listed(enwl)
    assert not ids(OTHER) & listed(enwl)
    assert ids("ENWL") | ids(OTHER) <= listed(shared) | listed(shared, OTHER)
    assert listed(nobody) == set()
    if where_is_list := not (path == "resources" and version != "3.1.0"):
        assert not _out_of_scope_events()  # filtering a list is no refusal
    assert where_is_list or len(_out_of_scope_events()) == 1  # a ven's resources: refused


@pytest.mark.parametrize("version", VERSIONS)
def test_openadr_filters_naming_another_operators_objects_find_nothing(openadr, version):
    enwl = openadr["ENWL"]["actor"].on(version)
    theirs = openadr[OTHER]
    for path, query in (("/events", {"programID": theirs["program"]}),
                        ("/reports", {"programID": theirs["program"]}),
                        ("/reports", {"eventID": theirs["event"]}),
                        ("/subscriptions", {"programID": theirs["program"]})):
        status, rows = enwl.get(path, query)
        assert (status, rows) == (200, []), (path, query)
    status, rows = enwl.get("/events", {"programID": openadr["ENWL"]["program"]})
    assert [row["id"] for row in rows] == [openadr["ENWL"]["event"]]


def test_what_an_all_operator_client_makes_only_all_operator_clients_see(openadr):
    from tests.fixtures.api import program_body

    everyone = new_actor("national-bl", "bl", "3.1.0")  # every network operator
    status, program = everyone.api.post("/programs", program_body("3.1.0"))
    assert status == 201
    assert everyone.api.get(f"/programs/{openadr[OTHER]['program']}").status == 200
    from dispatch.registry import NETWORK_OPERATORS
    from vtn.models import ObjectOwner

    owners = ObjectOwner.objects.filter(kind="PROGRAM", object_id=program["id"])
    assert set(owners.values_list("owner", flat=True)) == set(NETWORK_OPERATORS)
    for operator in ("ENWL", OTHER):
        assert openadr[operator]["actor"].api.get(f"/programs/{program['id']}").status == 404
    assert len(_out_of_scope_events()) == 2


def test_objects_no_operator_owns_are_seen_by_every_granted_client(openadr):
    """The sandbox's demo data is written by the VTN's own loader, for no operator."""
    from vtn import demo
    from vtn.models import ObjectOwner, Program

    demo.load_demo_data()
    owned = ObjectOwner.objects.filter(kind="PROGRAM").values("object_id")
    unowned = Program.objects.exclude(pk__in=owned).values_list("pk", flat=True)
    assert unowned
    nobody = new_actor("nobody-bl", "bl", "3.1.0", operators=[]).api
    for program in unowned:  # (demo bodies are checked against the document elsewhere)
        for operator in ("ENWL", OTHER):
            assert openadr[operator]["actor"].api.get(f"/programs/{program}",
                                                      validate=False).status == 200
        assert nobody.get(f"/programs/{program}", validate=False).status == 404
    # A client acting for no operator creates nothing either (it would own nothing).
    from tests.fixtures.api import program_body

    assert nobody.post("/programs", program_body("3.1.0")).status == 403


def test_webhooks_tell_an_operators_subscriptions_only_of_its_operators_objects(openadr):
    """Who is notified, judged from the database as the fan-out does (no delivery)."""
    from tests.fixtures.api import event_body, subscription_body
    from vtn import notifications, webhooks
    from vtn.models import Event

    subscribed = {}
    for operator in ("ENWL", OTHER):
        status, sub = openadr[operator]["actor"].api.post("/subscriptions", subscription_body(
            "3.1.0", None, objects=["EVENT"]))
        assert status == 201, sub
        subscribed[operator] = sub["id"]
    for operator in ("ENWL", OTHER):
        status, event = openadr[operator]["actor"].api.post(
            "/events", event_body("3.1.0", openadr[operator]["program"]))
        assert status == 201, event
        change = webhooks.describe("EVENT", "CREATE", Event.objects.get(pk=event["id"]))
        told = {r.subscription_id for r in notifications.recipients(
            change, webhooks.subscribers())}
        assert subscribed[operator] in told
        assert not told & {subscribed[o] for o in subscribed if o != operator}


def test_operator_scope_every_grants_the_whole_vtn_and_a_change_applies_at_once(openadr):
    from io import StringIO

    from django.core.management import call_command

    from tests.fixtures.api import program_body

    national = new_actor("later-national", "bl", "3.1.0", operators=["ENWL"])
    theirs = f"/programs/{openadr[OTHER]['program']}"
    assert national.api.get(theirs).status == 404
    call_command("operator_scope", "set", "--client", national.client_id, "--every",
                 stdout=StringIO())
    assert national.api.get(theirs).status == 200  # the same token, no restart
    status, program = national.api.post("/programs", program_body("3.1.0"))
    assert status == 201
    call_command("operator_scope", "set", "--client", national.client_id, stdout=StringIO())
    assert national.api.get(f"/programs/{program['id']}").status == 404
    assert national.api.get("/programs").json == []


@pytest.mark.parametrize("version", ["3.1.0"])  # 3.0.1 bodies name no clientID
def test_an_operator_cannot_bind_a_ven_to_another_operators_site(openadr, version):
    from tests.fixtures.api import ven_body
    from vtn.models import Ven

    site_client = Ven.objects.get(pk=openadr[OTHER]["site_ven"]).client_id
    enwl = openadr["ENWL"]["actor"].on(version)
    before = Ven.objects.count()
    status, body = enwl.post("/vens", ven_body(version, "bl", client_id=site_client))
    assert status == 403, body
    assert Ven.objects.count() == before
    assert len(_out_of_scope_events()) == 1 and OTHER in _out_of_scope_events()[0].detail
    own_site = Ven.objects.get(pk=openadr["ENWL"]["site_ven"]).client_id
    assert enwl.post("/vens", ven_body(version, "bl", client_id=own_site)).status == 201
