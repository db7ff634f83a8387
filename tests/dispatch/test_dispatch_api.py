"""Operator API (business logic only) and the `dispatch` command: happy and failure paths."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client as DjangoClient

from tests.fixtures.api import new_actor
from tests.fixtures.dispatch import hour

pytestmark = pytest.mark.django_db
BASE = "/dispatch/api/v1"


class Api:
    def __init__(self, token: str | None):
        self.http = DjangoClient()
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def get(self, path: str, query: dict | None = None):
        response = self.http.get(BASE + path, query or {}, headers=self.headers)
        return response.status_code, json.loads(response.content or b"null"), response

    def post(self, path: str, body: dict):
        response = self.http.post(BASE + path, json.dumps(body), content_type="application/json",
                                  headers=self.headers)
        return response.status_code, json.loads(response.content or b"null"), response


@pytest.fixture
def operator(gb) -> Api:
    return Api(new_actor("operator", "bl", "3.1.0").token)


def z(value) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def body(**overrides) -> dict:
    start = hour(2)
    return {"unit": "acme/bat1", "product": "DYNAMIC", "reference": "API-1",
            "serviceStart": z(start), "serviceEnd": z(start + timedelta(hours=2)),
            "urgency": "warning",
            "serviceTimings": [{"setpointTime": z(start), "volume": "250.5"},
                               {"setpointTime": z(start + timedelta(hours=1)), "volume": 0.25,
                                "units": "MW", "pricePerUnit": "0.31"}]} | overrides


def test_issue_revise_stop_and_show(operator):
    status, created, _ = operator.post("/dispatches", body())
    assert status == 201, created
    assert created["revision"] == 1 and created["status"] == "run"
    timings = created["current"]["document"]["serviceTimings"]
    assert timings[1]["volume"] == 250 and timings[1]["units"] == "KW"  # MW -> kW
    assert timings[1]["pricePerUnit"] == 0.31 and timings[0]["setpointType"] == "DELTA"
    status, revised, _ = operator.post("/dispatches/ENWL/API-1/revisions",
                                       {"urgency": "emergency", "expectedRevision": 1})
    assert status == 201 and revised["revision"] == 2 and revised["urgency"] == "emergency"
    status, stopped, _ = operator.post("/dispatches/ENWL/API-1/emergency-stop",
                                       {"reason": "fault"})
    assert status == 201 and stopped["status"] == "emergency-stop"
    status, shown, _ = operator.get("/dispatches/ENWL/API-1")
    assert status == 200
    assert [r["revision"] for r in shown["revisions"]] == [1, 2, 3]
    assert shown["revisions"][2]["reason"] == "fault"


def test_list_filters(operator):
    operator.post("/dispatches", body())
    start = hour(5)
    operator.post("/dispatches", body(reference="API-2", unit="z1", serviceStart=z(start),
                                      serviceEnd=z(start + timedelta(hours=1)),
                                      serviceTimings=[{"setpointTime": z(start), "volume": 5}]))
    operator.post("/dispatches/ENWL/API-2/stop", {})

    def refs(query: dict) -> list[str]:
        status, rows, _ = operator.get("/dispatches", query)
        assert status == 200, rows
        return sorted(r["reference"] for r in rows)

    assert refs({}) == ["API-1", "API-2"]
    assert refs({"fsp": "acme"}) == ["API-1"]
    assert refs({"unit": "z1"}) == ["API-2"]
    assert refs({"status": "stop"}) == ["API-2"]
    assert refs({"from": z(hour(4)), "to": z(hour(7))}) == ["API-2"]
    assert refs({"limit": "1"}) == ["API-2"]  # newest first


def test_rule_violations_are_problem_documents(operator):
    status, problem, response = operator.post("/dispatches", body(serviceTimings=[
        {"setpointTime": z(hour(2)), "volume": 9000}]))
    assert status == 400 and response["Content-Type"] == "application/json"
    assert problem["title"] == "Bad Request"
    assert any("exceeds the unit's capacity" in e for e in problem["errors"])
    status, problem, _ = operator.post("/dispatches", body(status="stop"))
    assert status == 400 and any("status" in e for e in problem["errors"])
    operator.post("/dispatches", body())
    status, problem, _ = operator.post("/dispatches", body())
    assert status == 409
    status, problem, _ = operator.post("/dispatches/ENWL/API-1/revisions",
                                       {"expectedRevision": 7})
    assert status == 409
    status, problem, _ = operator.get("/dispatches/ENWL/NOPE")
    assert status == 404 and problem["status"] == 404


def test_only_business_logic_with_the_right_scopes(gb, operator):
    status, _, _ = Api(None).get("/dispatches")
    assert status == 401
    status, problem, _ = Api(gb.acme.token).get("/dispatches")
    assert status == 403
    reader = Api(new_actor("reader", "bl", "3.1.0", scopes=["read_all"]).token)
    assert reader.get("/dispatches")[0] == 200
    assert reader.post("/dispatches", body())[0] == 403


def test_openapi_document_and_docs_are_served(gb):
    response = DjangoClient().get(BASE + "/openapi.yaml")
    assert response.status_code == 200
    text = response.content.decode()
    assert "/dispatch/api/v1/dispatches/{operator}/{reference}/emergency-stop" in text
    assert DjangoClient().get(BASE + "/docs").status_code == 200


# --- the `dispatch` command --------------------------------------------------------------------

def run(*args: str) -> dict:
    out = StringIO()
    call_command("dispatch", *args, stdout=out)
    return json.loads(out.getvalue())


def test_cli_issue_revise_stop_show(gb):
    start = hour(2)
    issued = run("issue", "--unit", "bat1", "--product", "mw-dispatch", "--start", z(start),
                 "--end", z(start + timedelta(hours=1)), "--kw", "0", "--absolute",
                 "--ref", "CLI-1", "--status", "pre-notify")
    assert issued["contract"] == "C-MW" and issued["status"] == "pre-notify"
    assert issued["current"]["document"]["serviceTimings"][0]["setpointType"] == "ABSOLUTE"
    revised = run("revise", "CLI-1", "--status", "run")
    assert revised["revision"] == 2 and revised["status"] == "run"
    stopped = run("stop", "CLI-1")
    assert stopped["status"] == "stop" and stopped["revision"] == 3
    shown = run("show", "CLI-1")
    assert [r["status"] for r in shown["revisions"]] == ["pre-notify", "run", "stop"]


def test_cli_failures_are_clear(gb):
    start = hour(2)
    with pytest.raises(CommandError, match="takes absolute setpoints"):
        run("issue", "--unit", "bat1", "--product", "MW_DISPATCH", "--start", z(start),
            "--end", z(start + timedelta(hours=1)), "--kw", "0", "--delta")
    with pytest.raises(CommandError, match="no dispatch 'NOPE'"):
        run("show", "NOPE")
    with pytest.raises(CommandError, match="no contract covers"):
        run("issue", "--unit", "z1", "--product", "SUSTAIN", "--start", z(start),
            "--end", z(start + timedelta(hours=1)), "--kw", "1")


def test_cli_rotate_key(gb):
    first = run("rotate-key", "--operator", "ENWL")
    second = run("rotate-key", "--operator", "ENWL")
    assert first["kid"] != second["kid"]
    assert {k["kid"] for k in second["jwks"]["keys"]} >= {first["kid"], second["kid"]}
