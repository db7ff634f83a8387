"""Product parameters per operator: documented defaults, each operator's own values set
through the service, the dispatch API and the CLI (validated, audited), published at once
in that operator's OpenADR program, and applied by the dispatch rules."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client as DjangoClient

from dispatch import issuing, mapping, programs, selectors
from dispatch.models import OperatorProgram, Product, ProductParameterChange
from tests.fixtures.api import new_actor
from tests.fixtures.dispatch import hour, timing
from vtn.errors import BadRequest

pytestmark = pytest.mark.django_db
BASE = "/dispatch/api/v1"


def attribute(operator: str, product: str, name: str) -> list:
    program = OperatorProgram.objects.get(operator__code=operator,
                                          product__code=product).program
    program.refresh_from_db()
    return next(a["values"] for a in program.attributes if a["type"] == name)


def test_defaults_until_the_operator_sets_its_own(gb):
    shown = programs.product_parameter_settings(selectors.find_operator("ENWL"),
                                                programs.find_product("MW_DISPATCH"))
    assert shown.parameters == shown.defaults == {
        "notice_period": "PT0S", "ramp_time": "PT2M", "heartbeat_interval": "PT1M"}
    assert shown.operator_set == []


def test_a_change_is_published_in_the_operators_program_and_audited(gb):
    programs.ensure_program(programs.ensure_operator("NGED-WM"),
                            programs.find_product("MW_DISPATCH"))
    assert attribute("ENWL", "MW_DISPATCH", "GB_HEARTBEAT_INTERVAL") == ["PT1M"]
    shown = programs.set_product_parameters(
        operator="ENWL", product="mw-dispatch", changed_by="ops",
        changes={"heartbeat_interval": "PT30S", "ramp_time": "PT5M"}, reason="ENWL policy")
    assert shown.parameters["heartbeat_interval"] == "PT30S"
    assert shown.operator_set == ["heartbeat_interval", "ramp_time"]
    assert attribute("ENWL", "MW_DISPATCH", "GB_HEARTBEAT_INTERVAL") == ["PT30S"]
    assert attribute("ENWL", "MW_DISPATCH", "GB_RAMP_TIME") == ["PT5M"]
    # another operator's program and the product's defaults are untouched
    assert attribute("NGED-WM", "MW_DISPATCH", "GB_HEARTBEAT_INTERVAL") == ["PT1M"]
    assert Product.objects.get(code="MW_DISPATCH").heartbeat_interval == timedelta(minutes=1)
    (entry,) = ProductParameterChange.objects.all()
    assert (entry.operator.code, entry.product.code, entry.changed_by, entry.reason) == (
        "ENWL", "MW_DISPATCH", "ops", "ENWL policy")
    assert entry.before["heartbeat_interval"] == "PT1M"
    assert entry.after["heartbeat_interval"] == "PT30S"
    back = programs.set_product_parameters(operator="ENWL", product="MW_DISPATCH",
                                           changed_by="ops",
                                           changes={"heartbeat_interval": "DEFAULT"})
    assert back.parameters["heartbeat_interval"] == "PT1M"
    assert attribute("ENWL", "MW_DISPATCH", "GB_HEARTBEAT_INTERVAL") == ["PT1M"]
    none = programs.set_product_parameters(operator="ENWL", product="SECURE",
                                           changed_by="ops",
                                           changes={"heartbeat_interval": "NONE"})
    assert none.parameters["heartbeat_interval"] is None
    assert attribute("ENWL", "SECURE", "GB_HEARTBEAT_INTERVAL") == ["NONE"]


@pytest.mark.parametrize("changes, message", [
    ({"heartbeat_interval": "soon"}, "not an ISO 8601 duration"),
    ({"heartbeat_interval": "PT1S"}, "between PT10S and P1D"),
    ({"notice_period": "P60D"}, "between PT0S and P30D"),
    ({"notice_period": "NONE"}, "a duration is required"),
    ({"minimum": "PT1M"}, "unknown parameter"),
])
def test_bad_values_change_nothing(gb, changes, message):
    with pytest.raises(BadRequest) as caught:
        programs.set_product_parameters(operator="ENWL", product="DYNAMIC",
                                        changed_by="ops", changes=changes)
    assert any(message in e for e in caught.value.errors), caught.value.errors
    assert not ProductParameterChange.objects.exists()
    assert programs.product_parameter_settings(
        selectors.find_operator("ENWL"), programs.find_product("DYNAMIC")).operator_set == []


def test_the_rules_apply_the_operators_notice_period(gb):
    programs.set_product_parameters(operator="ENWL", product="DYNAMIC", changed_by="ops",
                                    changes={"notice_period": "PT3H"})
    start = hour(2)
    with pytest.raises(BadRequest) as caught:
        issuing.issue_dispatch(unit=selectors.find_unit("acme/bat1"),
                               product=programs.find_product("DYNAMIC"),
                               service_start=start, service_end=start + timedelta(hours=1),
                               timings=[timing(start, 100)])
    assert any("needs 3 hour(s) notice" in e for e in caught.value.errors)


def test_the_dispatch_api_reads_and_sets_parameters(gb):
    http = DjangoClient()
    operator = {"Authorization": f"Bearer {new_actor('operator', 'bl', '3.1.0').token}"}
    url = f"{BASE}/products/ENWL/MW_DISPATCH"
    shown = http.get(url, headers=operator)
    assert shown.status_code == 200 and shown.json()["parameters"]["heartbeat_interval"] == "PT1M"
    changed = http.put(url, json.dumps({"parameters": {"heartbeat_interval": "PT20S"},
                                        "reason": "trial"}),
                       content_type="application/json", headers=operator)
    assert changed.status_code == 200, changed.content
    assert changed.json()["parameters"]["heartbeat_interval"] == "PT20S"
    assert attribute("ENWL", "MW_DISPATCH", "GB_HEARTBEAT_INTERVAL") == ["PT20S"]
    bad = http.put(url, json.dumps({"parameters": {"ramp_time": "-PT5M"}}),
                   content_type="application/json", headers=operator)
    assert bad.status_code == 400 and bad["Content-Type"] == "application/json"
    assert http.get(f"{BASE}/products/XX/MW_DISPATCH", headers=operator).status_code == 404
    assert http.get(f"{BASE}/products/ENWL/NOPE", headers=operator).status_code == 400
    ven = {"Authorization": f"Bearer {gb.acme.token}"}
    assert http.put(url, json.dumps({"parameters": {"heartbeat_interval": "PT10S"}}),
                    content_type="application/json", headers=ven).status_code == 403
    assert ProductParameterChange.objects.count() == 1


def test_the_cli_lists_and_sets_parameters(gb):
    def run(*args):
        out = StringIO()
        call_command("fsp", "products", *args, stdout=out)
        return json.loads(out.getvalue())

    assert {p["code"] for p in run()} == {"SUSTAIN", "SECURE", "DYNAMIC", "RESTORE",
                                          "MW_DISPATCH"}
    changed = run("--operator", "ENWL", "--product", "MW_DISPATCH", "--set",
                  "heartbeat_interval=PT45S", "--reason", "cli trial")
    assert changed["parameters"]["heartbeat_interval"] == "PT45S"
    (listed,) = run("--operator", "ENWL", "--product", "MW_DISPATCH")
    assert listed["operatorSet"] == ["heartbeat_interval"]
    assert ProductParameterChange.objects.get().changed_by == "cli"
    with pytest.raises(CommandError, match="needs --operator and --product"):
        run("--set", "ramp_time=PT1M")
    with pytest.raises(CommandError):
        run("--operator", "ENWL", "--product", "MW_DISPATCH", "--set", "ramp_time=fast")
    assert mapping.duration(timedelta(seconds=45)) == "PT45S"


def test_mw_dispatch_turns_to_zero_by_default(gb):
    http = DjangoClient()
    operator = {"Authorization": f"Bearer {new_actor('operator', 'bl', '3.1.0').token}"}
    start = hour(1)
    window = {"serviceStart": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
              "serviceEnd": (start + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")}
    created = http.post(f"{BASE}/dispatches", json.dumps(
        {"unit": "acme/bat1", "product": "MW_DISPATCH", "reference": "MW-ZERO"} | window),
        content_type="application/json", headers=operator)
    assert created.status_code == 201, created.content
    (setpoint,) = created.json()["current"]["document"]["serviceTimings"]
    assert (setpoint["volume"], setpoint["setpointType"], setpoint["setpointTime"]) == (
        0, "ABSOLUTE", window["serviceStart"])
    # other products have no such default: the setpoints are required
    refused = http.post(f"{BASE}/dispatches", json.dumps(
        {"unit": "acme/bat1", "product": "DYNAMIC", "reference": "DYN-NONE"}
        | {"serviceStart": (start + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
           "serviceEnd": (start + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")}),
        content_type="application/json", headers=operator)
    assert refused.status_code == 400
    assert "at least one service timing is required" in refused.json()["errors"]


def test_the_admin_shows_the_defaults_and_the_changes_but_edits_nothing(gb):
    from django.contrib.auth import get_user_model

    admin = get_user_model().objects.create_superuser("root", "root@example.org", "pw")
    http = DjangoClient()
    http.force_login(admin)
    # The admin asks for the second factor too: a session django-otp has verified.
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.create(user=admin, name="root", confirmed=True)
    session = http.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    product = Product.objects.get(code="MW_DISPATCH")
    url = f"/admin/dispatch/product/{product.pk}/change/"
    assert http.get(url, secure=True).status_code == 200
    refused = http.post(url, {"code": "MW_DISPATCH", "name": "x", "notice_period": "0",
                              "ramp_time": "0", "heartbeat_interval": "00:00:01"},
                        secure=True)
    assert refused.status_code == 403
    product.refresh_from_db()
    assert product.heartbeat_interval == timedelta(minutes=1)
    programs.set_product_parameters(operator="ENWL", product="MW_DISPATCH", changed_by="ops",
                                    changes={"ramp_time": "PT3M"})
    listed = http.get("/admin/dispatch/productparameterchange/", secure=True)
    assert listed.status_code == 200 and b"PT3M" in listed.content
