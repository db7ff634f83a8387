"""The conformance sandbox in-process: the getting-started page and its links, the profile
text, self-service onboarding (enabled, disabled, capped), the run API (202, then the
report as JSON and HTML) and the fault-injection middleware."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.exceptions import MiddlewareNotUsed
from django.core.management import call_command
from django.http import HttpResponse
from django.test import Client, RequestFactory
from django.utils import timezone

from conformance import onboarding, runner
from conformance.middleware import FaultInjectionMiddleware
from conformance.models import ConformanceRun, FaultHit, InjectedFault, SandboxFsp
from dispatch import onboarding as dispatch_onboarding
from dispatch import registry, signing_keys
from tests.fixtures.api import OpenADRClient, new_actor
from tests.fixtures.dispatch import token_for

pytestmark = pytest.mark.django_db
ONBOARD = "/conformance/api/v1/onboard"
RUNS = "/conformance/api/v1/runs"
UNITS = [{"reference": "bat1", "capacityKw": 1500, "direction": "export"},
         {"reference": "hp1", "capacityKw": 200, "direction": "import"}]


@pytest.fixture
def sandbox(settings, tmp_path, fresh_caches, api_settings):
    """Self-service on, with a development PKI for the site certificates."""
    call_command("pki", "init", "--dir", str(tmp_path / "pki"), stdout=StringIO())
    settings.VTN_PKI_DIR = tmp_path / "pki"
    settings.CONFORMANCE_SELF_SERVICE = True
    settings.CONFORMANCE_OPERATOR = "ENWL"
    return settings


@pytest.fixture
def site(fresh_caches, api_settings) -> dict:
    """A sandbox site without mTLS (in-process clients present no certificate)."""
    specs = [registry.UnitSpec(reference="u1", capacity_kw=100, direction="export")]
    result = dispatch_onboarding.onboard_fsp(operator="ENWL", fsp="solo", units=specs)
    onboarding.sandbox_contracts(operator="ENWL", fsp="solo", units=specs)
    return result | {"token": token_for(result)}


def bearer(token: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


@pytest.mark.parametrize("version", ["3.1.0", "3.0.1"])
def test_a_sandbox_sites_client_gets_a_token_for_the_scopes_it_holds(site, version):
    """A certified VEN asks for ``read_all`` on every token request; other clients ask for
    every scope they know, or none. The sandbox's clients are granted what they hold."""
    vtn = OpenADRClient(version)
    asked_read_all = vtn.request_token(site["client_id"], site["client_secret"], "read_all")
    assert asked_read_all.status == 200, asked_read_all.json
    assert set(asked_read_all.json["scope"].split()) == {"read_targets", "read_ven_objects"}
    everything = vtn.request_token(
        site["client_id"], site["client_secret"],
        "read_all write_reports write_subscriptions write_vens read_targets")
    assert everything.status == 200 and "read_all" not in everything.json["scope"].split()
    assert "write_reports" in everything.json["scope"].split()
    nothing = vtn.request_token(site["client_id"], site["client_secret"])
    assert nothing.status == 200 and "write_reports" in nothing.json["scope"].split()
    lacking = vtn.request_token(site["client_id"], site["client_secret"], "write_programs")
    assert lacking.status == 400 and lacking.json["error"] == "invalid_scope"
    assert "read_targets" in lacking.json.get("error_description", "")
    # The narrow token reads what the site may read, and may not report.
    narrow = vtn.with_token(asked_read_all.json["access_token"])
    assert narrow.get("/programs").status == 200
    assert narrow.post("/reports", {}).status == 403


# --- getting started ---------------------------------------------------------------------------


def test_getting_started_page_renders_with_its_links(client: Client):
    response = client.get("/conformance/")

    assert response.status_code == 200
    page = response.content.decode()
    for link in ("/openadr3/3.1.0/docs", "/openadr3/3.0.1/docs", "/dispatch/api/v1/docs",
                 "/settlement/api/v1/docs", "/conformance/docs/profile.md",
                 "/conformance/docs/guide.md", "/.well-known/jwks.json"):
        assert f'href="{link}"' in page, link
    assert "ven-client" in page and "/auth/token" in page and "site-keys" in page
    assert "GB_ACK_JWS" in page and "keys generate" in page
    for name in ("lifecycle", "emergency-stop", "stale-revision", "key-rotation",
                 "comms-loss", "metering"):
        assert name in page


@pytest.mark.parametrize("path", ["/openadr3/3.1.0/docs", "/openadr3/3.0.1/docs",
                                  "/dispatch/api/v1/docs", "/settlement/api/v1/docs"])
def test_the_linked_api_docs_exist(client: Client, path: str):
    assert client.get(path).status_code == 200


def test_the_profile_is_served_as_markdown_text(client: Client):
    response = client.get("/conformance/docs/profile.md")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/markdown")
    assert b"GB dispatch profile" in b"".join(response.streaming_content)
    assert client.get("/conformance/docs/secrets.md").status_code == 404


# --- self-service onboarding -------------------------------------------------------------------


def test_onboarding_is_not_found_when_self_service_is_disabled(client: Client, settings):
    settings.CONFORMANCE_SELF_SERVICE = False

    response = client.post(ONBOARD, {"fsp": "acme", "units": UNITS},
                           content_type="application/json")

    assert response.status_code == 404
    assert not SandboxFsp.objects.exists()


def test_onboarding_returns_credentials_certificate_and_standing_events_once(
        client: Client, sandbox):
    response = client.post(ONBOARD, {"fsp": "acme", "units": UNITS},
                           content_type="application/json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["operator"] == "ENWL" and body["fsp"] == "acme" and body["site"] == "main"
    assert body["client_id"] and body["client_secret"] and body["require_mtls"] is True
    assert body["ven_name"] == "enwl-acme-main"
    assert body["certificate"]["cert_pem"].startswith("-----BEGIN CERTIFICATE-----")
    assert "PRIVATE KEY" in body["certificate"]["key_pem"]
    assert body["certificate"]["ca_pem"].startswith("-----BEGIN CERTIFICATE-----")
    assert "cert_path" not in body["certificate"]
    assert body["heartbeat_event_id"] and body["metering_event_id"]
    assert body["availability_event_id"]
    assert body["contracts"] == ["SBX-acme-RESTORE", "SBX-acme-MWDISPATCH", "SBX-acme-DYNAMIC"]
    assert [u["reference"] for u in body["units"]] == ["bat1", "hp1"]
    again = client.post(ONBOARD, {"fsp": "acme", "units": UNITS},
                        content_type="application/json")
    assert again.status_code == 409


@pytest.mark.parametrize("units", [None, [], [{"reference": "x", "capacityKw": -1}],
                                   [{"reference": "bad ref", "capacityKw": 1}],
                                   [{"reference": "x", "capacityKw": 1, "direction": "up"}],
                                   [{"reference": "x", "capacityKw": 1, "capacityKvar": 0}],
                                   [{"reference": "x", "capacityKw": 1, "capacityKvar": "q"}],
                                   [{"reference": "x", "capacityKw": 1,
                                     "capacityKvar": 200000}]])
def test_onboarding_refuses_bad_units(client: Client, sandbox, units):
    response = client.post(ONBOARD, {"fsp": "acme", "units": units},
                           content_type="application/json")

    assert response.status_code == 400, response.content


def test_onboarding_gives_a_unit_its_reactive_capacity(client: Client, sandbox):
    from dispatch.models import DispatchUnit

    response = client.post(ONBOARD, {"fsp": "qvar", "units": [
        {"reference": "inv1", "capacityKw": 300, "direction": "export", "capacityKvar": 120}]},
        content_type="application/json")
    assert response.status_code == 201, response.content
    assert response.json()["units"][0]["capacity_kvar"] == "120"
    assert DispatchUnit.objects.get(reference="inv1").capacity_kvar == 120


def test_onboarding_is_capped(client: Client, sandbox):
    sandbox.CONFORMANCE_MAX_FSPS = 1
    assert client.post(ONBOARD, {"fsp": "one", "units": UNITS[:1]},
                       content_type="application/json").status_code == 201

    response = client.post(ONBOARD, {"fsp": "two", "units": UNITS[:1]},
                           content_type="application/json")

    assert response.status_code == 429
    assert "maximum" in response.json()["detail"]


def test_onboarding_is_rate_limited_per_address(client: Client, sandbox):
    sandbox.CONFORMANCE_ONBOARD_RATE_PER_HOUR = 1
    assert client.post(ONBOARD, {"fsp": "one", "units": UNITS[:1]},
                       content_type="application/json").status_code == 201

    assert client.post(ONBOARD, {"fsp": "two", "units": UNITS[:1]},
                       content_type="application/json").status_code == 429


# --- runs --------------------------------------------------------------------------------------


def test_a_run_is_accepted_with_202_then_gives_its_report(client: Client, site, monkeypatch):
    started: list[ConformanceRun] = []
    monkeypatch.setattr(runner, "start_in_background", started.append)

    response = client.post(RUNS, {"scenario": "emergency-stop", "deadlineSeconds": 1,
                                  "heartbeatIntervalSeconds": 3600},
                           content_type="application/json", **bearer(site["token"]))

    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "pending" and body["scenarios"] == ["emergency-stop"]
    assert response["Location"] == f"{RUNS}/{body['id']}"
    pending = client.get(f"/conformance/runs/{body['id']}.html")
    assert pending.status_code == 202

    runner.execute(started[0], sample=False)  # what the background thread does

    detail = client.get(f"{RUNS}/{body['id']}", **bearer(site["token"])).json()
    assert detail["status"] == "failed"  # nobody acknowledges in this test
    report = detail["report"]
    assert report["fsp"] == "solo" and report["site"] == "main"
    assert report["options"]["deadlineSeconds"] == 1
    assert report["options"]["ackDeadlineSeconds"] == 1
    checks = {c["name"]: c for c in report["scenarios"][0]["checks"]}
    assert checks["received-r1"]["passed"] is False
    assert checks["received-r1"]["observed"] == "no acknowledgement recorded"
    assert checks["heartbeat-regular"]["passed"] is True
    html = client.get(f"/conformance/runs/{body['id']}.html")
    assert html.status_code == 200
    assert b"FAILED" in html.content and b"received-r1" in html.content
    assert b'<html lang="en">' in html.content and b"<caption>" in html.content
    assert b"<script" not in html.content and b"http://" not in html.content
    listed = client.get(RUNS, **bearer(site["token"])).json()
    assert [r["id"] for r in listed] == [body["id"]]


def test_runs_are_started_by_a_site_vens_client_only(client: Client, site, version="3.1.0"):
    operator = new_actor("dno", "bl", "3.1.0")

    response = client.post(RUNS, {"scenario": "all"}, content_type="application/json",
                           **bearer(operator.token))

    assert response.status_code == 403


def test_an_unknown_scenario_is_refused(client: Client, site):
    response = client.post(RUNS, {"scenario": "teleport"}, content_type="application/json",
                           **bearer(site["token"]))

    assert response.status_code == 400
    assert "lifecycle" in response.json()["detail"]


def test_a_second_run_while_one_is_in_progress_is_refused(client: Client, site, monkeypatch):
    monkeypatch.setattr(runner, "start_in_background", lambda run: None)
    assert client.post(RUNS, {"scenario": "metering"}, content_type="application/json",
                       **bearer(site["token"])).status_code == 202

    response = client.post(RUNS, {"scenario": "metering"}, content_type="application/json",
                           **bearer(site["token"]))

    assert response.status_code == 400 and "in progress" in response.json()["detail"]


def test_another_sites_run_is_not_found(client: Client, site, monkeypatch):
    monkeypatch.setattr(runner, "start_in_background", lambda run: None)
    run_id = client.post(RUNS, {"scenario": "metering"}, content_type="application/json",
                         **bearer(site["token"])).json()["id"]
    other = dispatch_onboarding.onboard_fsp(operator="ENWL", fsp="other", units=[
        registry.UnitSpec(reference="o1", capacity_kw=10, direction="import")])

    response = client.get(f"{RUNS}/{run_id}", **bearer(token_for(other)))

    assert response.status_code == 404


def test_run_options_are_bounded(client: Client, site):
    response = client.post(RUNS, {"scenario": "all", "pollIntervalSeconds": 0},
                           content_type="application/json", **bearer(site["token"]))

    assert response.status_code == 400


# --- fault injection ---------------------------------------------------------------------------


def ok(request) -> HttpResponse:
    return HttpResponse("ok")


def test_the_middleware_is_not_used_unless_enabled(settings):
    settings.CONFORMANCE_FAULTS_ENABLED = False

    with pytest.raises(MiddlewareNotUsed):
        FaultInjectionMiddleware(ok)


def test_a_faulted_client_gets_503_with_retry_after_and_the_hit_is_recorded(settings, site):
    settings.CONFORMANCE_FAULTS_ENABLED = True
    now = timezone.now()
    fault = InjectedFault.objects.create(client_id=site["client_id"], starts_at=now,
                                         ends_at=now + timedelta(minutes=1), retry_after_s=7)
    middleware = FaultInjectionMiddleware(ok)
    factory = RequestFactory()

    refused = middleware(factory.get("/openadr3/3.1.0/events", **bearer(site["token"])))
    token = middleware(factory.post("/openadr3/3.1.0/auth/token",
                                    {"client_id": site["client_id"]}))
    sandbox_api = middleware(factory.get("/conformance/api/v1/runs", **bearer(site["token"])))
    stranger = middleware(factory.get("/openadr3/3.1.0/events", **bearer("unknown-token")))

    assert refused.status_code == 503 and refused["Retry-After"] == "7"
    assert token.status_code == 503
    assert sandbox_api.status_code == 200 and stranger.status_code == 200
    assert list(FaultHit.objects.filter(fault=fault).values_list("method", flat=True)) == [
        "GET", "POST"]


def test_a_writes_fault_lets_polls_through(settings, site):
    settings.CONFORMANCE_FAULTS_ENABLED = True
    now = timezone.now()
    InjectedFault.objects.create(client_id=site["client_id"], starts_at=now,
                                 ends_at=now + timedelta(minutes=1),
                                 scope=InjectedFault.Scope.WRITES)
    middleware = FaultInjectionMiddleware(ok)
    factory = RequestFactory()

    assert middleware(factory.get("/openadr3/3.1.0/events",
                                  **bearer(site["token"]))).status_code == 200
    assert middleware(factory.post("/openadr3/3.1.0/reports", {},
                                   **bearer(site["token"]))).status_code == 503


def test_an_ended_fault_no_longer_applies(settings, site):
    settings.CONFORMANCE_FAULTS_ENABLED = True
    now = timezone.now()
    InjectedFault.objects.create(client_id=site["client_id"], starts_at=now - timedelta(
        minutes=2), ends_at=now - timedelta(minutes=1))

    response = FaultInjectionMiddleware(ok)(RequestFactory().get(
        "/openadr3/3.1.0/events", **bearer(site["token"])))

    assert response.status_code == 200


def test_self_service_fsps_expire_with_their_clients_and_certificates(client: Client,
                                                                     sandbox):
    """After CONFORMANCE_FSP_TTL_HOURS the beat task revokes the FSP's certificate (in the
    CRL), revokes and deletes its client, and the FSP no longer counts towards the cap."""
    from datetime import timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from django.utils import timezone

    from conformance.models import SandboxFsp
    from conformance.tasks import expire_sandbox_fsps
    from vtn.auth.services import ClientError, find_client
    from vtn.models import ClientCertificate, IssuedCertificate

    sandbox.CONFORMANCE_MAX_FSPS = 1
    sandbox.CONFORMANCE_FSP_TTL_HOURS = 24
    body = client.post(ONBOARD, {"fsp": "old", "units": UNITS[:1]},
                       content_type="application/json").json()
    pem = body["certificate"]["cert_pem"].encode()
    sha256 = x509.load_pem_x509_certificate(pem).fingerprint(hashes.SHA256()).hex()
    certificate = IssuedCertificate.objects.get(sha256=sha256)
    assert client.post(ONBOARD, {"fsp": "new", "units": UNITS[:1]},
                       content_type="application/json").status_code == 429

    assert expire_sandbox_fsps.apply().get() == []  # not due yet: nothing changes
    assert not find_client(body["client_id"]).revoked
    SandboxFsp.objects.filter(fsp__identifier="old").update(
        created=timezone.now() - timedelta(hours=25))
    assert expire_sandbox_fsps.apply().get() == ["old"]

    with pytest.raises(ClientError):  # revoked, then deleted with its bindings
        find_client(body["client_id"])
    assert not ClientCertificate.objects.filter(sha256=sha256).exists()
    status, _ = OpenADRClient("3.1.0").request_token(body["client_id"], body["client_secret"])
    assert status in (400, 401)
    certificate.refresh_from_db()
    assert certificate.revoked_at is not None
    crl = x509.load_pem_x509_crl((sandbox.VTN_PKI_DIR / "crl.pem").read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(int(certificate.serial, 16))
    assert client.post(ONBOARD, {"fsp": "new", "units": UNITS[:1]},
                       content_type="application/json").status_code == 201
    assert expire_sandbox_fsps.apply().get() == []  # expired once only


def test_sandbox_key_rotation_never_touches_a_production_operators_key(client: Client,
                                                                      sandbox):
    """The key-rotation scenario on a self-service site rotates briefly (bounded JWKS), and
    refuses once the operator also serves an FSP outside the sandbox; a run on that FSP,
    which only the operator can start, rotates as `dispatch rotate-key` does."""
    from types import SimpleNamespace

    from conformance.scenarios import ScenarioError, _rotate
    from dispatch.models import FspSite, NetworkOperator, SigningKey

    sandbox.DISPATCH_SIGNING_KEY_VERIFY_DAYS = 90
    assert client.post(ONBOARD, {"fsp": "sbx", "units": UNITS[:1]},
                       content_type="application/json").status_code == 201
    operator = NetworkOperator.objects.get(code="ENWL")
    sandbox_site = FspSite.objects.get(fsp__identifier="sbx")
    first = signing_keys.active_signing_key(operator)
    _rotate(SimpleNamespace(site=sandbox_site), operator)
    first.refresh_from_db()
    assert first.verify_until - first.retired_at == timedelta(minutes=60)

    specs = [registry.UnitSpec(reference="p1", capacity_kw=100, direction="export")]
    dispatch_onboarding.onboard_fsp(operator="ENWL", fsp="production-fsp", units=specs)
    active = signing_keys.active_signing_key(operator)
    with pytest.raises(ScenarioError, match="outside the sandbox"):
        _rotate(SimpleNamespace(site=sandbox_site), operator)
    assert signing_keys.active_signing_key(operator) == active  # not rotated

    own_site = FspSite.objects.get(fsp__identifier="production-fsp")
    _rotate(SimpleNamespace(site=own_site), operator)
    retired = SigningKey.objects.get(pk=active.pk)
    assert retired.verify_until - retired.retired_at == timedelta(days=90)
