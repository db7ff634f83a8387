"""Reactive power through every path: unit capabilities in kW and kVAr (onboarding syntax,
the `fsp` command, the operator API; validated and audited), reactive dispatches (kVAr
setpoints, priced per kVArh, signed and published), and GB_REACTIVE meter readings."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client as DjangoClient

from dispatch import readings, registry
from dispatch.models import AuditEntry, DispatchUnit
from tests.fixtures.api import new_actor
from tests.fixtures.dispatch import hour

pytestmark = pytest.mark.django_db
BASE = "/dispatch/api/v1"


class Api:
    def __init__(self, token: str):
        self.http = DjangoClient()
        self.headers = {"Authorization": f"Bearer {token}"}

    def call(self, method: str, path: str, body: dict | None = None):
        response = getattr(self.http, method)(
            BASE + path, json.dumps(body) if body is not None else None,
            content_type="application/json", headers=self.headers)
        return response.status_code, json.loads(response.content or b"null")


@pytest.fixture
def operator(gb) -> Api:
    return Api(new_actor("operator", "bl", "3.1.0").token)


def z(value) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def fsp(*args: str) -> dict:
    out = StringIO()
    call_command("fsp", *args, stdout=out)
    return json.loads(out.getvalue())


# -- the onboarding syntax ------------------------------------------------------------------

def test_a_unit_spec_may_name_a_reactive_capacity():
    spec = registry.parse_unit_spec("bat1:500:export:300")
    assert (spec.capacity_kw, spec.direction, spec.capacity_kvar) == (
        Decimal(500), "export", Decimal(300))
    short = registry.parse_unit_spec("hp1:200:50.5")
    assert (short.direction, short.capacity_kvar) == ("import", Decimal("50.5"))
    assert registry.parse_unit_spec("hp1:200").capacity_kvar is None


@pytest.mark.parametrize("bad", ["b:500:export:0", "b:500:export:-3", "b:500:export:x",
                                 "b:500:sideways:30", "b:500:export:30:9", "b:500:1e12",
                                 "b:500:0.0001"])
def test_a_bad_reactive_capacity_is_refused(bad):
    with pytest.raises(registry.RegistryError):
        registry.parse_unit_spec(bad)


def test_onboarding_stores_and_prints_the_reactive_capacity(gb):
    result = fsp("onboard", "--operator", "ENWL", "--fsp", "volt", "--site", "s1",
                 "--unit", "inv1:800:export:350", "--unit", "hp9:40")
    units = {u["reference"]: u for u in result["units"]}
    assert (units["inv1"]["capacity_kvar"], units["hp9"]["capacity_kvar"]) == ("350", None)
    assert DispatchUnit.objects.get(reference="inv1").capacity_kvar == Decimal(350)


# -- changing capabilities: API and command ---------------------------------------------------

def test_the_api_shows_and_changes_a_units_capabilities_with_an_audit_entry(operator):
    status, unit = operator.call("get", "/units/ENWL/acme/bat1")
    assert status == 200 and (unit["capacityKw"], unit["capacityKvar"]) == ("1500", None)
    status, unit = operator.call("put", "/units/ENWL/acme/bat1",
                                 {"capacityKvar": "600", "reason": "inverter upgrade"})
    assert status == 200, unit
    assert (unit["capacityKw"], unit["capacityKvar"], unit["direction"]) == (
        "1500", "600", "export")
    entry = AuditEntry.objects.get(kind="unit_capability_changed")
    assert entry.subject == {"networkOperatorId": "ENWL", "fsp": "acme", "unit": "bat1"}
    assert entry.payload["before"] == {"capacityKw": "1500", "capacityKvar": None}
    assert entry.payload["after"] == {"capacityKw": "1500", "capacityKvar": "600"}
    assert entry.payload["reason"] == "inverter upgrade" and entry.payload["changedBy"]
    status, unit = operator.call("put", "/units/ENWL/acme/bat1", {"capacityKvar": None})
    assert status == 200 and unit["capacityKvar"] is None


@pytest.mark.parametrize("body", [{}, {"capacityKvar": "-5"}, {"capacityKw": "0"},
                                  {"capacityKw": "abc"}, {"capacityKvar": "1e40"},
                                  {"capacityKw": 900}])  # bat1 is under MW Dispatch: > 1 MW
def test_bad_capabilities_are_problems_and_change_nothing(operator, body):
    status, problem = operator.call("put", "/units/ENWL/acme/bat1", body)
    assert status == 400, problem
    assert problem["status"] == 400 and problem.get("title")
    unit = DispatchUnit.objects.get(reference="bat1")
    assert (unit.capacity_kw, unit.capacity_kvar) == (Decimal(1500), None)
    assert not AuditEntry.objects.filter(kind="unit_capability_changed").exists()


def test_a_unit_of_another_operator_or_a_vens_client_is_refused(gb, operator):
    assert operator.call("get", "/units/SPEN-D/acme/bat1")[0] == 404
    assert operator.call("put", "/units/ENWL/acme/nope", {"capacityKvar": 5})[0] == 404
    ven = Api(gb.acme.token)
    assert ven.call("put", "/units/ENWL/acme/bat1", {"capacityKvar": 5})[0] == 403


def test_the_fsp_command_changes_and_removes_the_reactive_capacity(gb):
    changed = fsp("unit", "--operator", "ENWL", "--fsp", "acme", "--unit", "hp1",
                  "--kvar", "75", "--kw", "250", "--reason", "survey")
    assert (changed["capacityKw"], changed["capacityKvar"]) == ("250", "75")
    removed = fsp("unit", "--operator", "ENWL", "--fsp", "acme", "--unit", "hp1",
                  "--kvar", "none")
    assert removed["capacityKvar"] is None and removed["capacityKw"] == "250"
    shown = fsp("unit", "--operator", "ENWL", "--fsp", "acme", "--unit", "hp1")
    assert shown == removed
    assert AuditEntry.objects.filter(kind="unit_capability_changed").count() == 2
    with pytest.raises(CommandError, match="positive"):
        fsp("unit", "--operator", "ENWL", "--fsp", "acme", "--unit", "hp1", "--kvar", "0")


# -- reactive dispatches ----------------------------------------------------------------------

def reactive_body(**overrides) -> dict:
    start = hour(2)
    return {"unit": "acme/bat1", "product": "DYNAMIC", "reference": "Q-API",
            "serviceStart": z(start), "serviceEnd": z(start + timedelta(hours=1)),
            "serviceTimings": [{"setpointTime": z(start), "volume": "300", "units": "KVAR",
                                "setpointType": "absolute", "pricePerUnit": "0.02"}]
            } | overrides


def test_a_reactive_dispatch_is_refused_until_the_unit_offers_reactive_power(operator):
    status, problem = operator.call("post", "/dispatches", reactive_body())
    assert status == 400 and any("no reactive capacity" in e for e in problem["errors"])
    operator.call("put", "/units/ENWL/acme/bat1", {"capacityKvar": "400"})
    status, created = operator.call("post", "/dispatches", reactive_body())
    assert status == 201, created
    (point,) = created["current"]["document"]["serviceTimings"]
    assert (point["units"], point["serviceType"], point["priceUnits"], point["volume"]) == (
        "KVAR", "REACTIVE", "KVARH", 300)
    status, problem = operator.call("post", "/dispatches",
                                    reactive_body(reference="Q-BIG", serviceTimings=[
                                        {**reactive_body()["serviceTimings"][0],
                                         "volume": "401"}]))
    assert status == 400 and any("exceeds the unit's capacity of 400" in e
                                 for e in problem["errors"])


def test_a_reactive_dispatch_is_published_in_kvar_and_read_by_its_ven(gb, operator):
    from tests.fixtures.api import OpenADRClient

    operator.call("put", "/units/ENWL/acme/bat1", {"capacityKvar": "400"})
    status, created = operator.call("post", "/dispatches", reactive_body())
    assert status == 201, created
    status, event = OpenADRClient("3.1.0", gb.acme.token).get(f"/events/{created['eventID']}")
    assert status == 200
    units = {d["payloadType"]: d.get("units") for d in event["payloadDescriptors"]}
    assert units == {"DISPATCH_SETPOINT": "KVAR", "PRICE": "KVARH"}
    payloads = {p["type"]: p["values"] for p in event["intervals"][0]["payloads"]}
    assert payloads["GB_SERVICE_TYPE"] == ["REACTIVE"] and payloads["DISPATCH_SETPOINT"] == [300]


def test_a_revision_keeps_the_service_type(operator):
    operator.call("put", "/units/ENWL/acme/bat1", {"capacityKvar": "400"})
    operator.call("post", "/dispatches", reactive_body())
    start = hour(2)
    status, problem = operator.call("post", "/dispatches/ENWL/Q-API/revisions", {
        "serviceTimings": [{"setpointTime": z(start + timedelta(minutes=30)), "volume": 100,
                            "setpointType": "absolute"}]})
    assert status == 400 and any("keeps the dispatch's service type" in e
                                 for e in problem["errors"])


def test_the_dispatch_command_issues_kvar(gb):
    DispatchUnit.objects.filter(reference="bat1").update(capacity_kvar=Decimal(400))
    start = hour(2)
    out = StringIO()
    call_command("dispatch", "issue", "--unit", "acme/bat1", "--product", "DYNAMIC",
                 "--start", start.isoformat(), "--end", (start + timedelta(hours=1)).isoformat(),
                 "--kvar", "120", "--absolute", "--ref", "Q-CLI", stdout=out)
    document = json.loads(out.getvalue())["current"]["document"]
    assert [(t["volume"], t["units"]) for t in document["serviceTimings"]] == [(120, "KVAR")]


# -- reactive readings -------------------------------------------------------------------------

def test_gb_reactive_readings_are_read_in_kvarh():
    resources = [{"resourceName": "bat1", "intervals": [
        {"id": 0, "intervalPeriod": {"start": "2026-09-16T17:00:00Z", "duration": "PT30M"},
         "payloads": [{"type": "GB_REACTIVE", "values": [-1500]},
                      {"type": "USAGE", "values": [-200]}]}]}]
    descriptors = [{"payloadType": "GB_REACTIVE", "units": "VARH"}]
    found, rejected = readings.parse_readings(resources, descriptors, ["bat1"])
    assert not rejected
    assert {(r.reading_type, r.value) for r in found} == {("GB_REACTIVE", Decimal("-1.5")),
                                                          ("USAGE", Decimal(-200))}
    _, rejected = readings.parse_readings(resources, [{"payloadType": "GB_REACTIVE",
                                                       "units": "KWH"}], ["bat1"])
    assert [r.outcome for r in rejected] == ["invalid"]
