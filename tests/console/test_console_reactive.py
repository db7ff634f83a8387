"""Reactive power in the operator console: units list their kVAr, an administrator
changes a unit's capabilities (checked, audited), contracts take a reactive price and an
emergency premium, the issue form issues kVAr setpoints at an instructed price, and a
statement page shows reactive lines and the deficiency totals."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from dispatch.models import AuditEntry, Contract, DispatchInstruction, DispatchUnit
from tests.console.test_console_dispatch import confirm_fields, form

UNIT = "/console/registry/units/ENWL/acme/bat1"


def test_the_registry_shows_each_units_reactive_capacity(console, gb):
    DispatchUnit.objects.filter(reference="bat1").update(capacity_kvar=Decimal("350.5"))
    page = console("viewer").get("/console/registry").content.decode()
    assert "Reactive (kVAr)" in page and "350.5" in page
    assert UNIT not in page  # a viewer is not offered the change


def test_an_administrator_changes_a_units_capabilities_and_it_is_audited(console, gb):
    client = console("administrator")
    assert "Reactive power capacity (kVAr)" in client.get(UNIT).content.decode()
    response = client.post(UNIT, {"capacity_kw": "1600", "capacity_kvar": "400",
                                  "reason": "new inverter"})
    assert response.status_code == 302
    unit = DispatchUnit.objects.get(reference="bat1")
    assert (unit.capacity_kw, unit.capacity_kvar) == (Decimal(1600), Decimal(400))
    entry = AuditEntry.objects.get(kind="unit_capability_changed")
    assert entry.payload["changedBy"].endswith("administrator") or entry.payload["changedBy"]
    assert entry.payload["after"] == {"capacityKw": "1600", "capacityKvar": "400"}
    client.post(UNIT, {"capacity_kw": "1600", "capacity_kvar": ""})
    assert DispatchUnit.objects.get(reference="bat1").capacity_kvar is None


@pytest.mark.parametrize("data", [{"capacity_kw": "900", "capacity_kvar": ""},  # MW Dispatch
                                  {"capacity_kw": "0"}, {"capacity_kw": "x"},
                                  {"capacity_kw": "1500", "capacity_kvar": "-1"}])
def test_bad_capabilities_are_shown_and_change_nothing(console, gb, data):
    response = console("administrator").post(UNIT, data)
    assert response.status_code == 400
    unit = DispatchUnit.objects.get(reference="bat1")
    assert (unit.capacity_kw, unit.capacity_kvar) == (Decimal(1500), None)
    assert not AuditEntry.objects.filter(kind="unit_capability_changed").exists()


def test_only_administrators_change_capabilities_and_only_their_operators(console, gb):
    assert console("dispatcher").post(UNIT, {"capacity_kw": "1600"}).status_code == 403
    assert console("administrator").get(
        "/console/registry/units/ENWL/acme/nope").status_code == 404


def test_a_contract_takes_a_reactive_price_and_an_emergency_premium(console, gb):
    response = console("administrator").post("/console/registry/contracts/new", {
        "operator": "ENWL", "identifier": "C-Q", "fsp": "acme", "product": "SECURE",
        "units": "bat1", "availability_price": "0", "utilisation_price": "250",
        "reactive_utilisation_price": "18.5", "emergency_premium_percent": "12.5",
        "baseline_method": ""})
    assert response.status_code == 302, response.content.decode()
    contract = Contract.objects.get(identifier="C-Q")
    assert (contract.reactive_utilisation_price, contract.emergency_premium_percent) == (
        Decimal("18.5"), Decimal("12.5"))
    assert "18.5" in console("viewer").get("/console/registry").content.decode()


def test_a_contract_takes_a_reactive_baseline_method_and_the_registry_shows_it(console, gb):
    fields = {"operator": "ENWL", "fsp": "acme", "product": "SECURE", "units": "bat1",
              "availability_price": "0", "utilisation_price": "250", "baseline_method": ""}
    administrator = console("administrator")
    refused = administrator.post("/console/registry/contracts/new", fields | {
        "identifier": "C-RBX", "reactive_baseline_method": "nominated"})
    assert refused.status_code == 400
    assert "unknown reactive baseline method" in refused.content.decode()
    assert not Contract.objects.filter(identifier="C-RBX").exists()
    response = administrator.post("/console/registry/contracts/new", fields | {
        "identifier": "C-RB", "reactive_baseline_method": "average-5"})
    assert response.status_code == 302, response.content.decode()
    assert Contract.objects.get(identifier="C-RB").reactive_baseline_method == "average-5"
    page = console("viewer").get("/console/registry").content.decode()
    assert "Reactive baseline" in page and "average-5" in page


def test_the_issue_form_issues_kvar_setpoints_at_an_instructed_price(console, gb):
    DispatchUnit.objects.filter(reference="bat1").update(capacity_kvar=Decimal(400))
    client = console("dispatcher")
    checked = client.post("/console/dispatches/new", form(
        kw="300", service_type="reactive", price="0.04", setpoint_type="absolute"))
    assert checked.status_code == 200, checked.content.decode()
    client.post("/console/dispatches/new", confirm_fields(checked.content.decode()))
    (point,) = DispatchInstruction.objects.get().revisions.get().document["serviceTimings"]
    assert (point["units"], point["volume"], point["pricePerUnit"], point["priceUnits"]) == (
        "KVAR", 300, 0.04, "KVARH")


def test_the_issue_form_refuses_kvar_beyond_the_units_capacity(console, gb):
    response = console("dispatcher").post("/console/dispatches/new", form(
        kw="300", service_type="reactive", setpoint_type="absolute"))
    assert response.status_code == 400 and b"no reactive capacity" in response.content
    assert not DispatchInstruction.objects.exists()


def test_the_statement_page_shows_reactive_lines_and_the_deficiency(console, gb, issue):
    from settlement import services
    from tests.fixtures.dispatch import timing
    from tests.settlement.test_settlement_instruction import MONTH, T0, readings

    DispatchUnit.objects.filter(reference="bat1").update(capacity_kvar=Decimal(400))
    Contract.objects.filter(identifier="C-DYN").update(reactive_utilisation_price=20)
    issue("acme/bat1", reference="Q-C", service_start=T0, service_end=T0 + timedelta(
        minutes=30), timings=[timing(T0, 300, "absolute", service_type="reactive")],
        now=T0 - timedelta(hours=1))
    readings("bat1", T0, [-100], kind="GB_REACTIVE")
    row = services.settle_month(contract=Contract.objects.get(identifier="C-DYN"),
                                month=MONTH)
    page = console("settlement officer").get(f"/console/statements/{row.pk}").content.decode()
    for text in ("Reactive delivered (MVArh)", "Power deficiency (MWh)", "Delivered kVAr",
                 "reactive", "0.1"):
        assert text in page, text
