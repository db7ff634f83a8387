"""The operator console in a real browser (Playwright driving Debian's headless
chromium) against the real VTN over HTTPS (the ``vtn_server`` fixture).

One scenario, as staff would use it: log in with the second factor; onboard an FSP site
and download its certificate bundle (once); record a contract; issue a dispatch through
the form and its confirmation; watch the RECEIVED and ACTIONED acknowledgements appear
while a small agent (mTLS with the downloaded bundle, signed acknowledgements) answers;
compute the month's statement and look at its chart; stop the dispatch; and, as a
viewer, fail to dispatch. Screenshots go to ``test-artifacts/console/``.

Settlement periods of one minute (a contract term) let the statement settle a dispatch
that starts a minute or two from now, as in ``test_settlement_e2e.py``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from gbflex_profile import acks, jose, report_signing
from tests.fixtures.console import totp_code
from tests.fixtures.server import PinnedSession

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "console"
WAIT_MS = 60_000


def z(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


class SiteAgent(threading.Thread):
    """An FSP site's agent: mTLS with the site's certificate bundle, polls its events,
    verifies each dispatch revision against the JWKS and posts signed RECEIVED and
    ACTIONED acknowledgements for it."""

    def __init__(self, server, credentials: dict, bundle_dir: Path, site: str) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.session = PinnedSession()
        self.session.verify = server.ca_bundle
        self.session.cert = (str(bundle_dir / "client.crt"), str(bundle_dir / "client.key"))
        self.credentials = credentials
        self.key = jose.generate_private_key()
        self.kid = "site-agent-1"
        self.answered: set[tuple[str, int]] = set()
        self.errors: list[str] = []
        self.stopping = threading.Event()

    def token(self) -> str:
        response = self.session.post(self.server.url("3.1.0", "auth/token"), data={
            "grant_type": "client_credentials", "client_id": self.credentials["client_id"],
            "client_secret": self.credentials["client_secret"]}, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    def start_session(self) -> None:
        self.session.headers["Authorization"] = f"Bearer {self.token()}"
        public = jose.public_jwk(self.key, self.kid)
        registered = self.session.post(
            f"{self.server.base_url}/dispatch/api/v1/site-keys",
            json={"jwk": {k: public[k] for k in ("kty", "crv", "x", "kid")}}, timeout=30)
        assert registered.status_code == 201, registered.text
        self.jwks = {"keys": []}

    def verify(self, token: str) -> dict:
        """The signed document, checked against the operator's JWKS (fetched again when a
        new key id shows up: the operator's key is made with its first dispatch)."""
        if jose.header_kid(token) not in {key["kid"] for key in self.jwks["keys"]}:
            self.jwks = requests.get(f"{self.server.base_url}/.well-known/jwks.json",
                                     verify=self.server.ca_bundle, timeout=30).json()
        return jose.verify(token, self.jwks)

    def post_report(self, event: dict, name: str, resources: list[dict]) -> dict:
        response = self.session.post(self.server.url("3.1.0", "reports"), json={
            "programID": event["programID"], "eventID": event["id"],
            "clientName": "console-test-agent", "reportName": name, "resources": resources},
            timeout=30)
        assert response.status_code == 201, response.text
        return response.json()

    def acknowledge(self, event: dict, document: dict) -> None:
        read_back = acks.expected_read_back(document)
        for stage, outcome in (("RECEIVED", ""), ("ACTIONED", "ACCEPTED")):
            time.sleep(1.0)  # so the page shows them arrive one after the other
            claim = acks.claim_document(
                stage=stage, status=read_back["status"], dispatch_ref=read_back["dispatchRef"],
                fsp=read_back["fspId"], unit=read_back["dispatchUnit"],
                revision=read_back["revision"], setpoints=read_back["setpoints"],
                outcome=outcome)
            self.post_report(event, f"ack {stage}", [{
                "resourceName": document["dispatchUnit"], "intervals": [{
                    "id": 0, "payloads": acks.payloads_for(
                        claim, jose.sign(claim, self.key, self.kid))}]}])

    def poll_once(self) -> None:
        response = self.session.get(self.server.url("3.1.0", "events"), timeout=30)
        response.raise_for_status()
        for event in response.json():
            payloads = {p["type"]: p["values"] for p in
                        (event.get("intervals") or [{}])[0].get("payloads", [])}
            if "GB_SIGNATURE" not in payloads:
                continue  # a standing event (heartbeat, availability, metering)
            document = self.verify(payloads["GB_SIGNATURE"][0])
            seen = (document["dispatchRef"], document["revision"])
            if seen not in self.answered:
                self.answered.add(seen)
                self.acknowledge(event, document)

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.poll_once()
            except Exception as exc:  # reported by the test, not lost in the thread
                self.errors.append(repr(exc))
            self.stopping.wait(1.0)


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def make_staff(server, role: str) -> dict:
    """A console user working for every network operator."""
    from dispatch.registry import NETWORK_OPERATORS

    granted = [arg for code in NETWORK_OPERATORS for arg in ("--operator", code)]
    made = json.loads(server.manage("console_user", "create", "--username",
                                    server.unique(role.replace(" ", "-")), "--role",
                                    role, *granted).stdout)
    return made


def log_in(page, server, staff: dict, screenshot: str | None = None) -> None:
    page.goto(f"{server.base_url}/console/")
    assert page.url.startswith(f"{server.base_url}/console/login")
    page.get_by_label("Username").fill(staff["username"])
    page.get_by_label("Password").fill(staff["password"])
    page.get_by_label("Authenticator code").fill(totp_code(staff["otpauth_uri"]))
    if screenshot:
        shot(page, screenshot)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{server.base_url}/console/")
    assert page.get_by_role("heading", name="Dashboard").is_visible()


def ensure_pki_for_console(server) -> None:
    """The console issues site certificates from the PKI directory of its settings
    (``VTN_PKI_DIR``, default ``$VTN_VAR_DIR/pki``); give it the server's CA there."""
    target = Path(server.env.get("VTN_PKI_DIR") or Path(server.env["VTN_VAR_DIR"]) / "pki")
    if not (target / "ca.pem").exists():
        shutil.copytree(server.pki_dir, target, dirs_exist_ok=True)


def test_operator_console_end_to_end(vtn_server, browser, tmp_path):
    server = vtn_server
    ensure_pki_for_console(server)
    admin = make_staff(server, "administrator")
    viewer = make_staff(server, "viewer")
    fsp = server.unique("console-fsp")
    page = browser.new_page()

    # -- the landing page links everything; its console link leads to the login --
    page.goto(f"{server.base_url}/")
    for name in ("Operator console", "Conformance sandbox"):
        assert page.get_by_role("link", name=name).is_visible()
    for path in ("/openadr3/3.1.0/docs", "/openadr3/3.0.1/docs", "/dispatch/api/v1/docs",
                 "/.well-known/jwks.json"):
        assert page.locator(f"a[href='{path}']").count() >= 1, path
    shot(page, "00-landing")
    page.get_by_role("link", name="Operator console").click()
    page.wait_for_url(f"{server.base_url}/console/login**")

    # -- a password alone is not enough; both factors open the dashboard --
    page.get_by_label("Username").fill(admin["username"])
    page.get_by_label("Password").fill(admin["password"])
    page.get_by_label("Authenticator code").fill("000000" if totp_code(
        admin["otpauth_uri"]) != "000000" else "111111")
    page.get_by_role("button", name="Log in").click()
    assert page.get_by_role("alert").inner_text().startswith("The username, password")
    time.sleep(2)  # django-otp throttles a device for a second after a wrong code
    log_in(page, server, admin, screenshot="01-login")
    shot(page, "02-dashboard")

    # -- onboard a site; the secret is shown once and the bundle downloads once --
    page.get_by_role("link", name="Registry").click()
    page.get_by_role("link", name="Onboard an FSP site").click()
    page.get_by_label("Operator").select_option("ENWL")
    page.get_by_label("FSP identifier").fill(fsp)
    page.get_by_label("Site").fill("north")
    page.get_by_label("Dispatch units").fill("hp9:300")
    page.get_by_label("Location or congestion zone").fill("Z-9")
    page.get_by_role("button", name="Onboard").click()
    page.wait_for_selector("#client-secret")
    credentials = {"client_id": page.inner_text("#client-id"),
                   "client_secret": page.inner_text("#client-secret")}
    metering_event = page.inner_text("#metering-event-id")
    shot(page, "03-onboarded")
    bundle_url = page.get_attribute("form:has(#onboarding-download)", "action")
    with page.expect_download() as download_info:
        page.click("#onboarding-download")
    onboarding_file = tmp_path / "onboarding.json"
    download_info.value.save_as(onboarding_file)
    # The FSP's side: the agent's configuration and certificate files from that one file.
    config = tmp_path / "agent" / "config.toml"
    made = subprocess.run([sys.executable, "-m", "ven_client", "--config", str(config), "init",
                           "--from-onboarding", str(onboarding_file), "--state-dir",
                           str(tmp_path / "state")], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert made.returncode == 0, made.stdout + made.stderr
    bundle_dir = tmp_path / "agent" / "config.tls"
    assert sorted(p.name for p in bundle_dir.iterdir()) == ["ca.crt", "client.crt",
                                                            "client.key"]
    assert oct(bundle_dir.joinpath("client.key").stat().st_mode & 0o777) == "0o600"
    page.goto(server.base_url + bundle_url)
    assert "no longer on the server" in page.inner_text("main")

    # -- a contract, settled in one-minute periods for this test --
    contract = f"{fsp}-restore"
    page.goto(f"{server.base_url}/console/registry/contracts/new")
    page.get_by_label("Operator").select_option("ENWL")
    page.get_by_label("Contract id").fill(contract)
    page.get_by_label("FSP identifier").fill(fsp)
    page.get_by_label("Product").select_option("RESTORE")
    page.get_by_label("Unit references").fill("hp9")
    page.get_by_label("Utilisation price (GBP per MWh)").fill("300")
    page.locator("#id_baseline_method").fill("meter-before-2")
    page.get_by_role("button", name="Record the contract").click()
    page.wait_for_selector(f"text=Contract ENWL/{contract} recorded.")
    server.manage("shell", "-c", (
        "from dispatch.models import Contract; from settlement.models import SettlementTerms; "
        f"SettlementTerms.objects.create(contract=Contract.objects.get(identifier='{contract}'),"
        " period_minutes=1, meter_window_hours=0)"))

    agent = SiteAgent(server, credentials, bundle_dir, "north")
    agent.start_session()  # token over mTLS with the downloaded certificate
    agent.start()
    try:
        # -- issue a dispatch: check, confirm --
        start = (datetime.now(UTC) + timedelta(minutes=2)).replace(second=0, microsecond=0)
        end = start + timedelta(minutes=2)
        page.goto(f"{server.base_url}/console/dispatches/new")
        unit = page.locator("#id_unit option", has_text=f"/{fsp}/hp9").get_attribute("value")
        page.get_by_label("Dispatch unit").select_option(unit)
        page.get_by_label("Product").select_option("RESTORE")
        page.get_by_label("Service start (UTC)").fill(f"{start:%Y-%m-%d %H:%M}")
        page.get_by_label("Service end (UTC)").fill(f"{end:%Y-%m-%d %H:%M}")
        page.locator("#id_kw").fill("100")
        page.get_by_label("Setpoint").select_option("delta")
        page.get_by_label("Status").select_option("run")
        assert page.get_attribute("#id_start", "type") == "text"  # not the browser's locale
        shot(page, "04a-dispatch-form")
        page.get_by_role("button", name="Check").click()
        page.wait_for_selector("text=Confirm the dispatch")
        reference = page.locator("table.summary tr", has_text="Reference").locator(
            "td").inner_text()
        urgency = page.inner_text("#confirm-urgency")
        assert urgency.startswith("emergency") and "RESTORE product" in urgency
        shot(page, "04-dispatch-confirm")
        page.get_by_role("button", name="Confirm and issue").click()
        page.wait_for_url(f"{server.base_url}/console/dispatches/ENWL/{reference}")

        # -- the acknowledgements appear as the agent answers (the page refreshes) --
        page.wait_for_selector("ol.timeline tr.outcome-accepted >> text=RECEIVED")
        page.wait_for_selector("ol.timeline tr.outcome-accepted >> text=ACTIONED")
        assert page.locator("ol.timeline li.revision").count() == 1
        shot(page, "05-dispatch-acknowledged")
        page.get_by_role("link", name="Dashboard").click()
        page.wait_for_selector(f"#h-upcoming ~ table >> text=ENWL/{reference}")
        shot(page, "05b-dashboard-live")

        # -- meter readings, then the month's statement and its chart --
        readings = agent.session.post(server.url("3.1.0", "reports"), json=(
            report_signing.sign_report({
                "eventID": metering_event,
                "clientName": "console-test-agent", "reportName": "readings",
                "resources": [{"resourceName": "hp9", "intervals": [
                    {"id": i, "intervalPeriod": {"start": z(start + timedelta(minutes=i - 2)),
                                                 "duration": "PT1M"},
                     "payloads": [{"type": "USAGE", "values": [kwh]}]}
                    for i, kwh in enumerate([4, 4, 2.4, 2])]}]},
                kind="METERING", fsp=fsp, key=agent.key, kid=agent.kid)), timeout=30)
        assert readings.status_code == 201, readings.text
        page.get_by_role("link", name="Settlement").click()
        page.get_by_label("Contract id").fill(contract)
        page.locator("form[action='/console/statements/compute']").get_by_label(
            "Operator").select_option("ENWL")
        page.locator("form[action='/console/statements/compute']").get_by_label(
            "Month").fill(f"{start:%Y-%m}")
        page.get_by_role("button", name="Compute").click()
        page.wait_for_selector("svg.chart")
        assert page.locator("svg.chart title").first.text_content().startswith(
            f"Dispatch {reference}")
        assert page.locator("svg.chart polyline").count() == 3
        shot(page, "06-statement-chart")

        # -- stop it, with a confirmation; the agent acknowledges the stop too --
        page.goto(f"{server.base_url}/console/dispatches/ENWL/{reference}")
        page.get_by_role("link", name="Stop", exact=True).click()
        page.get_by_label("Reason").fill("constraint cleared")
        shot(page, "07-stop-confirm")
        page.get_by_role("button", name="Confirm stop").click()
        page.wait_for_selector("text=Revision 2: stop")
        page.wait_for_selector("ol.timeline li.revision:nth-child(2) tr.outcome-accepted "
                               ">> text=RECEIVED")
        shot(page, "08-dispatch-stopped")
        assert page.get_by_role("link", name="Emergency stop").count() == 0
    finally:
        agent.stopping.set()
        agent.join(timeout=10)
        print("agent answered", sorted(agent.answered), "errors", agent.errors)
    assert not agent.errors, agent.errors

    # -- a viewer sees everything and cannot dispatch --
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(f"{server.base_url}/console/login")
    # the viewer logs in with the keyboard alone
    assert page.evaluate("document.activeElement.id") == "id_username"  # autofocus
    page.keyboard.type(viewer["username"])
    page.keyboard.press("Tab")
    page.keyboard.type(viewer["password"])
    page.keyboard.press("Tab")
    page.keyboard.type(totp_code(viewer["otpauth_uri"]))
    page.keyboard.press("Enter")
    page.wait_for_url(f"{server.base_url}/console/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    page.goto(f"{server.base_url}/console/dispatches/ENWL/{reference}")
    assert page.get_by_role("link", name="Stop", exact=True).count() == 0
    assert page.locator("ol.timeline li.revision").count() == 2
    response = page.goto(f"{server.base_url}/console/dispatches/new")
    assert response.status == 403
    shot(page, "09-viewer-forbidden")
    csrf = next(c["value"] for c in browser.cookies() if c["name"] == "csrftoken")
    posted = page.request.post(f"{server.base_url}/console/dispatches/ENWL/{reference}/"
                               "emergency-stop", form={"csrfmiddlewaretoken": csrf,
                                                       "revision": "2"},
                               headers={"Referer": f"{server.base_url}/console/"})
    assert posted.status == 403 and "Not allowed" in posted.text()
    page.goto(f"{server.base_url}/console/dispatches/ENWL/{reference}")
    assert page.locator("ol.timeline li.revision").count() == 2  # nothing was issued
    page.goto(f"{server.base_url}/console/dispatches")
    assert page.locator(f"a:text-is('ENWL/{reference}')").count() == 1
    assert page.get_by_role("link", name="Issue a dispatch").count() == 0

    # -- the lists: filtered and paged; an unknown page is the console's own --
    page.goto(f"{server.base_url}/console/dispatches")
    page.get_by_label("Conformance sandbox dispatches").select_option("hide")
    page.get_by_label("FSP").fill(fsp)
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/console/dispatches?*conformance=hide*")
    assert page.locator(f"a:text-is('ENWL/{reference}')").count() == 1
    shot(page, "10-dispatches-filtered")
    page.goto(f"{server.base_url}/console/audit?dispatch_ref={reference}")
    assert page.locator("tr.audit-entry").count() >= 4  # two revisions, their acks
    assert "acknowledgement recorded" in page.inner_text("main")
    shot(page, "11-audit")
    page.goto(f"{server.base_url}/console/registry?fsp={fsp}")
    assert page.locator("#units ~ table").inner_text().count(f"/{fsp}/hp9") == 1
    shot(page, "12-registry-filtered")
    page.goto(f"{server.base_url}/console/statements")
    shot(page, "13-statements")
    missing = page.goto(f"{server.base_url}/console/no-such-page")
    assert missing.status == 404 and page.get_by_role("heading", name="Not found").is_visible()
    shot(page, "14-not-found")
    page.goto(f"{server.base_url}/conformance/")
    assert page.locator("#ca-fingerprint").inner_text().count(":") == 31
    shot(page, "15-conformance-ca")

    # -- every section of the console's navigation answers, reached by its link --
    page.goto(f"{server.base_url}/console/")
    sections = page.locator("nav[aria-label='Main'] a").all_inner_texts()
    assert sections[:6] == ["Dashboard", "Registry", "Dispatches", "Settlement", "Audit",
                            "Subscriptions"], sections
    for number, name in enumerate(sections, start=1):
        page.locator("nav[aria-label='Main']").get_by_role("link", name=name).click()
        page.wait_for_load_state()
        assert page.locator("nav [aria-current='page']").inner_text() == name
        assert "Server error" not in page.inner_text("main")
        shot(page, f"20-section-{number:02d}-{name.lower()}")
