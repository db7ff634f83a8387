"""Operator console registry: lists, onboarding (administrator) with the client secret
shown once and the certificate bundle downloadable once, and contracts."""

from __future__ import annotations

import io
import zipfile

import pytest

from console.models import CertificateBundle
from dispatch.models import Contract, DispatchUnit, FspSite


@pytest.fixture
def pki_settings(settings, tmp_path):
    from vtn import pki

    pki.init_pki(tmp_path / "pki")
    settings.VTN_PKI_DIR = tmp_path / "pki"
    settings.VAR_DIR = tmp_path / "var"
    return tmp_path


def onboard(client, **overrides):
    data = {"operator": "ENWL", "fsp": "acme", "fsp_name": "Acme Flex", "site": "north",
            "units": "bat1:500:export\nhp1:200", "zone": "Z-7"} | overrides
    return client.post("/console/registry/onboard", data)


def test_the_registry_lists_fsps_sites_units_and_contracts(console, gb):
    page = console("viewer").get("/console/registry").content.decode()
    for text in ("acme", "zeta", "ENWL/acme/north", "ENWL/acme/bat1", "ENWL/C-DYN",
                 "<th scope=\"col\">"):
        assert text in page, text
    assert "Onboard an FSP site" not in page  # a viewer is not offered it


def test_onboarding_shows_the_secret_once_and_gives_the_site_a_certificate(
        console, pki_settings):
    client = console("administrator")
    response = onboard(client)
    assert response.status_code == 200
    page = response.content.decode()
    site = FspSite.objects.select_related("ven").get(fsp__identifier="acme", name="north")
    assert site.ven.ven_name == "enwl-acme-north"
    assert sorted(DispatchUnit.objects.filter(site=site).values_list("reference", "zone")) == [
        ("bat1", "Z-7"), ("hp1", "Z-7")]
    assert 'id="client-secret"' in page
    secret = page.split('id="client-secret">')[1].split("<")[0]
    assert len(secret) > 20
    assert response["Cache-Control"] == "no-store"
    for url in ("/console/", "/console/registry"):
        assert secret not in client.get(url).content.decode()


def test_the_certificate_bundle_downloads_once(console, pki_settings):
    client = console("administrator")
    onboard(client)
    bundle = CertificateBundle.objects.get()
    shown = client.get(f"/console/bundles/{bundle.id}")
    assert shown.status_code == 200 and b'id="bundle-download"' in shown.content
    assert CertificateBundle.objects.get().downloaded_at is None  # looking takes nothing
    first = client.post(f"/console/bundles/{bundle.id}")
    assert first.status_code == 200
    assert first["Content-Type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(first.content)).namelist()
    assert sorted(names) == ["ca.pem", "north.key", "north.pem", "onboarding.json"]
    key = zipfile.ZipFile(io.BytesIO(first.content)).read("north.key")
    assert b"PRIVATE KEY" in key
    bundle.refresh_from_db()
    assert bundle.downloaded_at is not None and bundle.downloaded_by == "administrator"
    from pathlib import Path

    assert not Path(bundle.directory).exists()
    second = client.post(f"/console/bundles/{bundle.id}")
    assert second.status_code == 410
    assert b"no longer on the server" in second.content
    assert b"no longer on the server" in client.get(f"/console/bundles/{bundle.id}").content


def test_onboarding_an_existing_site_is_refused_and_shows_why(console, pki_settings):
    client = console("administrator")
    onboard(client)
    again = onboard(client, units="bat9:100")
    assert again.status_code == 400
    assert b"already onboarded" in again.content
    assert CertificateBundle.objects.count() == 1


def test_a_bad_unit_line_is_shown_next_to_the_form(console, pki_settings):
    response = onboard(console("administrator"), units="bat1:lots")
    assert response.status_code == 200
    assert b"is not a number" in response.content
    assert not FspSite.objects.exists()


@pytest.mark.parametrize("role", ["viewer", "dispatcher", "settlement officer"])
def test_only_an_administrator_may_onboard(console, pki_settings, role):
    client = console(role)
    assert client.get("/console/registry/onboard").status_code == 403
    assert onboard(client).status_code == 403
    assert not FspSite.objects.exists()
    assert client.post("/console/registry/contracts/new", {}).status_code == 403


def test_only_an_administrator_may_take_a_bundle(console, client, console_staff, pki_settings):
    from tests.fixtures.console import log_in

    onboard(console("administrator"))
    bundle = CertificateBundle.objects.get()
    client.post("/console/logout")
    log_in(client, console_staff("dispatcher"))
    assert client.post(f"/console/bundles/{bundle.id}").status_code == 403
    bundle.refresh_from_db()
    assert bundle.downloaded_at is None


def test_an_administrator_records_a_contract(console, gb):
    client = console("administrator")
    response = client.post("/console/registry/contracts/new", {
        "operator": "ENWL", "identifier": "C-NEW", "fsp": "acme", "product": "RESTORE",
        "units": "hp1", "availability_price": "0", "utilisation_price": "250",
        "baseline_method": "meter-before-2", "capacity_kw": ""})
    assert response.status_code == 302
    contract = Contract.objects.get(identifier="C-NEW")
    assert contract.product.code == "RESTORE"
    assert list(contract.units.values_list("reference", flat=True)) == ["hp1"]


def test_a_contract_for_an_unknown_unit_shows_the_service_error(console, gb):
    response = console("administrator").post("/console/registry/contracts/new", {
        "operator": "ENWL", "identifier": "C-BAD", "fsp": "acme", "product": "RESTORE",
        "units": "nope", "availability_price": "0", "utilisation_price": "0"})
    assert response.status_code == 400
    assert b"has no units nope" in response.content


def test_an_administrator_sets_an_operators_product_parameters(console, gb):
    from dispatch.models import OperatorProgram, ProductParameterChange

    client = console("administrator")
    assert client.get("/console/registry/products").status_code == 200
    refused = client.post("/console/registry/products", {
        "operator": "ENWL", "product": "MW_DISPATCH", "heartbeat_interval": "PT1S"})
    assert refused.status_code == 400 and b"between PT10S and P1D" in refused.content
    assert not ProductParameterChange.objects.exists()
    done = client.post("/console/registry/products", {
        "operator": "ENWL", "product": "MW_DISPATCH", "heartbeat_interval": "PT30S",
        "reason": "trial"})
    assert done.status_code == 302
    (change,) = ProductParameterChange.objects.all()
    assert change.after["heartbeat_interval"] == "PT30S" and change.reason == "trial"
    program = OperatorProgram.objects.get(operator__code="ENWL",
                                          product__code="MW_DISPATCH").program
    assert {"type": "GB_HEARTBEAT_INTERVAL", "values": ["PT30S"]} in program.attributes
    listed = client.get("/console/registry/products")
    assert b"GB-ENWL-MW_DISPATCH" in listed.content and b"PT30S" in listed.content


def test_only_an_administrator_sets_product_parameters(console, gb):
    from dispatch.models import ProductParameterChange

    client = console("dispatcher")
    assert client.get("/console/registry/products").status_code == 403
    assert client.post("/console/registry/products", {
        "operator": "ENWL", "product": "MW_DISPATCH",
        "heartbeat_interval": "PT30S"}).status_code == 403
    assert not ProductParameterChange.objects.exists()
