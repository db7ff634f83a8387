"""The GB dispatch registry: operators, products, FSP onboarding, contracts."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from dispatch import onboarding, programs, registry
from dispatch.models import Contract, DispatchUnit, Fsp, FspSite, OperatorProgram, Product
from vtn.errors import BadRequest, Conflict
from vtn.models import Client, Resource, Ven

pytestmark = pytest.mark.django_db


def run(*args: str) -> dict:
    out = StringIO()
    call_command(*args, stdout=out)
    return json.loads(out.getvalue())


def test_the_five_products_are_loaded_with_their_parameters():
    codes = list(Product.objects.values_list("code", flat=True))
    assert codes == ["SUSTAIN", "SECURE", "DYNAMIC", "RESTORE", "MW_DISPATCH"]
    mw = Product.objects.get(code="MW_DISPATCH")
    assert mw.setpoint_types == ["absolute"] and mw.directions == ["export"]
    assert mw.heartbeat_interval == timedelta(minutes=1) and mw.quantity == "fixed"
    assert Product.objects.get(code="SUSTAIN").notice_period == timedelta(days=7)
    assert Product.objects.get(code="DYNAMIC").availability_paid is True


def test_loading_products_again_changes_nothing():
    Product.objects.filter(code="SECURE").update(notice_period=timedelta(hours=3))
    programs.load_products()
    programs.load_products()
    assert Product.objects.count() == 5
    assert Product.objects.get(code="SECURE").notice_period == timedelta(hours=3)


def test_only_well_known_operator_codes_are_accepted():
    assert programs.ensure_operator("ukpn-lpn").code == "UKPN-LPN"
    with pytest.raises(BadRequest, match="unknown network operator"):
        programs.ensure_operator("ACME-DNO")


def test_unit_spec_parsing():
    spec = registry.parse_unit_spec("bat1:250.5:export")
    assert (spec.reference, str(spec.capacity_kw), spec.direction) == ("bat1", "250.5", "export")
    assert registry.parse_unit_spec("hp:10").direction == "import"
    for bad in ("bat1", "bat1:x", "bat1:-5", "bat1:5:sideways", "/x:5"):
        with pytest.raises(registry.RegistryError):
            registry.parse_unit_spec(bad)


def test_onboard_command_creates_fsp_ven_client_resources_and_targets(fast_hashing):
    result = run("fsp", "onboard", "--operator", "SSEN-S", "--fsp", "volt", "--site", "depot",
                 "--unit", "ev1:300", "--unit", "pv1:150:export", "--zone", "Z-7")
    assert result["operator"] == "SSEN-S" and result["ven_name"] == "ssen-s-volt-depot"
    assert result["client_secret"] and "read_targets" in result["scopes"]
    assert result["targets"] == ["fsp:SSEN-S:volt"]
    ven = Ven.objects.get(pk=result["ven_id"])
    assert ven.client_id == result["client_id"]
    assert Client.objects.get(name="ssen-s-volt-depot").role == "ven"
    units = {u["reference"]: u for u in result["units"]}
    assert units["pv1"]["direction"] == "export" and units["ev1"]["capacity_kw"] == "300"
    resource = Resource.objects.get(pk=units["ev1"]["resource_id"])
    assert resource.ven_id == ven.pk and resource.client_id == ven.client_id
    assert resource.targets == [{"type": "TARGET", "values": ["unit:SSEN-S:volt:ev1"]}]
    unit = DispatchUnit.objects.get(reference="ev1")
    assert unit.resource == resource and unit.zone == "Z-7" and unit.site.ven == ven


def test_onboarding_a_second_site_reuses_the_fsp(fast_hashing):
    run("fsp", "onboard", "--operator", "ENWL", "--fsp", "acme", "--unit", "a:1")
    run("fsp", "onboard", "--operator", "ENWL", "--fsp", "acme", "--site", "b", "--unit", "b:1")
    assert Fsp.objects.count() == 1 and FspSite.objects.count() == 2


def test_onboarding_refuses_duplicates_and_creates_nothing(fast_hashing):
    run("fsp", "onboard", "--operator", "ENWL", "--fsp", "acme", "--unit", "a:1")
    clients = Client.objects.count()
    with pytest.raises(CommandError, match="already onboarded"):
        run("fsp", "onboard", "--operator", "ENWL", "--fsp", "acme", "--unit", "c:1")
    with pytest.raises(CommandError, match="already has units a"):
        run("fsp", "onboard", "--operator", "ENWL", "--fsp", "acme", "--site", "two",
            "--unit", "a:1")
    with pytest.raises(CommandError, match="unknown network operator"):
        run("fsp", "onboard", "--operator", "XX", "--fsp", "acme", "--unit", "a:1")
    assert Client.objects.count() == clients and DispatchUnit.objects.count() == 1


def test_onboard_with_pki_dir_issues_the_site_certificate(fast_hashing, tmp_path):
    from vtn import pki

    pki.init_pki(tmp_path)
    result = run("fsp", "onboard", "--operator", "ENWL", "--fsp", "acme", "--site", "north",
                 "--unit", "a:1", "--dir", str(tmp_path), "--out", str(tmp_path / "out"))
    assert result["require_mtls"] is True
    certificate = result["certificate"]
    assert (tmp_path / "out" / "north.pem").exists() and certificate["thumbprint"]
    client = Client.objects.get(name="enwl-acme-north")
    assert list(client.certificates.values_list("sha256", flat=True)) == [
        certificate["thumbprint"]]


def test_contract_creates_the_operator_product_program(gb):
    contract = Contract.objects.get(identifier="C-DYN")
    assert contract.currency == "GBP" and str(contract.availability_price) == "5.5000"
    assert contract.baseline_method == "high-8-of-10"
    assert sorted(contract.units.values_list("reference", flat=True)) == ["bat1", "hp1"]
    program = OperatorProgram.objects.get(operator__code="ENWL", product__code="DYNAMIC").program
    assert program.program_name == "GB-ENWL-DYNAMIC"
    attributes = {a["type"]: a["values"] for a in program.attributes}
    assert attributes["GB_NOTICE_PERIOD"] == ["PT15M"]
    assert attributes["GB_HEARTBEAT_INTERVAL"] == ["PT5M"]


def test_contract_refusals(gb):
    with pytest.raises(Conflict):
        onboarding.create_contract(operator="ENWL", identifier="C-DYN", fsp="acme",
                                   product="DYNAMIC", units=["bat1"])
    with pytest.raises(BadRequest, match="no units nope"):
        onboarding.create_contract(operator="ENWL", identifier="C-2", fsp="acme",
                                   product="DYNAMIC", units=["nope"])
    with pytest.raises(BadRequest, match="unknown product"):
        onboarding.create_contract(operator="ENWL", identifier="C-3", fsp="acme",
                                   product="TURBO", units=["bat1"])


def test_onboarding_registers_the_site_signing_key(fast_hashing, tmp_path):
    from gbflex_profile import jose

    public = jose.public_jwk(jose.generate_private_key(), "depot-1")
    key_file = tmp_path / "depot.jwk"
    key_file.write_text(json.dumps({k: public[k] for k in ("kty", "crv", "x", "kid")}))
    result = run("fsp", "onboard", "--operator", "ENWL", "--fsp", "acme", "--site", "depot",
                 "--unit", "a:1", "--site-key", str(key_file))
    assert result["site_keys"] == ["depot-1"]
    site = FspSite.objects.get(name="depot")
    assert list(site.signing_keys.values_list("kid", flat=True)) == ["depot-1"]
    private = tmp_path / "private.jwk"
    private.write_text(json.dumps(public | {"d": "AAAA"}))
    with pytest.raises(CommandError):
        run("fsp", "onboard", "--operator", "ENWL", "--fsp", "acme", "--site", "other",
            "--unit", "b:1", "--site-key", str(private))
    assert not FspSite.objects.filter(name="other").exists()  # nothing half-made
    with pytest.raises(CommandError, match="cannot read a JWK"):
        run("fsp", "onboard", "--operator", "ENWL", "--fsp", "acme", "--site", "other",
            "--unit", "b:1", "--site-key", str(tmp_path / "missing.jwk"))


def test_a_contract_records_its_contracted_capacity(gb):
    result = run("fsp", "contract", "--operator", "ENWL", "--fsp", "acme", "--id", "C-CAP",
                 "--product", "SECURE", "--unit", "bat1", "--capacity-kw", "450")
    assert result["capacity_kw"] == "450"
    assert Contract.objects.get(identifier="C-CAP").capacity_kw == 450
    with pytest.raises(CommandError, match="positive"):
        run("fsp", "contract", "--operator", "ENWL", "--fsp", "acme", "--id", "C-CAP2",
            "--product", "SECURE", "--unit", "bat1", "--capacity-kw", "0")


def test_a_contract_takes_a_reactive_baseline_method(gb):
    default = run("fsp", "contract", "--operator", "ENWL", "--fsp", "acme", "--id", "C-RB0",
                  "--product", "SECURE", "--unit", "bat1")
    assert default["reactive_baseline_method"] == "meter-before-4"
    assert Contract.objects.get(identifier="C-RB0").reactive_baseline_method == ""
    result = run("fsp", "contract", "--operator", "ENWL", "--fsp", "acme", "--id", "C-RB",
                 "--product", "SECURE", "--unit", "bat1", "--reactive-baseline", "High-3-of-5")
    assert result["reactive_baseline_method"] == "high-3-of-5"
    assert Contract.objects.get(identifier="C-RB").reactive_baseline_method == "high-3-of-5"


@pytest.mark.parametrize(("option", "method", "refusal"), [
    *[("--reactive-baseline", m, "unknown reactive baseline method")
      for m in ("nominated", "high-5-of-3", "mid-8-of-10", "meter-before-0", "average-")],
    *[("--baseline", m, "unknown baseline method")
      for m in ("high-5-of-3", "mid-8-of-10", "meter-before-0", "average-", "nominated-2")],
])
def test_an_unknown_baseline_method_is_refused_and_nothing_is_made(gb, option, method, refusal):
    with pytest.raises(CommandError, match=refusal):
        run("fsp", "contract", "--operator", "ENWL", "--fsp", "acme", "--id", "C-BX",
            "--product", "SECURE", "--unit", "bat1", option, method)
    assert not Contract.objects.filter(identifier="C-BX").exists()


def test_the_admin_lists_each_contracts_reactive_baseline_method(gb):
    from django.contrib.auth import get_user_model
    from django.test import Client as DjangoClient
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    run("fsp", "contract", "--operator", "ENWL", "--fsp", "acme", "--id", "C-RBA",
        "--product", "SECURE", "--unit", "bat1", "--reactive-baseline", "average-7")
    admin = get_user_model().objects.create_superuser("root", "root@example.org", "pw")
    http = DjangoClient()
    http.force_login(admin)
    device = TOTPDevice.objects.create(user=admin, name="root", confirmed=True)
    session = http.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    listed = http.get("/admin/dispatch/contract/", secure=True)
    assert listed.status_code == 200
    assert b"Reactive baseline method" in listed.content and b"average-7" in listed.content
