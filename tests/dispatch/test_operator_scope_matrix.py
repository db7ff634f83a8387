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
from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client as DjangoClient
from django.utils import timezone

from tests.fixtures.api import new_actor
from tests.fixtures.console import create_staff, log_in
from tests.fixtures.dispatch import hour, timing

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


@pytest.fixture
def two_operators(gb, issue):
    """Per operator: a dispatch (D-ENWL / D-SPEN), a contract (C-DYN / C-B) and a draft
    statement of this month."""
    from dispatch import issuing, onboarding, programs, registry, selectors
    from settlement import services as settlement

    onboarding.onboard_fsp(operator=OTHER, fsp="beta", units=[registry.parse_unit_spec("b1:100")])
    onboarding.create_contract(operator=OTHER, identifier="C-B", fsp="beta", product="DYNAMIC",
                             units=["b1"], availability_price=Decimal("2"))
    issue(reference="D-ENWL")
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
