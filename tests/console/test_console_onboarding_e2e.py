"""Onboarding in the console hands the FSP one file, and nothing is typed by hand:
console onboarding (over HTTPS, logged in with both factors) -> download the onboarding
file -> ``ven-client init --from-onboarding FILE`` -> ``ven-client keys generate`` ->
``ven-client once`` polls the VTN over mTLS with the certificate from that file.
Real server, real agent processes."""

from __future__ import annotations

import json
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.console.test_console_browser import ensure_pki_for_console, make_staff
from tests.fixtures.console import totp_code
from tests.fixtures.server import PinnedSession

ROOT = Path(__file__).resolve().parents[2]


def console_session(server, role: str = "administrator") -> PinnedSession:
    """A browser-like session logged in to the console with both factors."""
    staff = make_staff(server, role)
    session = PinnedSession()
    session.verify = server.ca_bundle
    session.headers["Referer"] = f"{server.base_url}/console/"
    login = session.get(f"{server.base_url}/console/login", timeout=30)
    response = session.post(f"{server.base_url}/console/login", data={
        "csrfmiddlewaretoken": csrf(login.text), "username": staff["username"],
        "password": staff["password"], "otp_token": totp_code(staff["otpauth_uri"])},
        timeout=30, allow_redirects=False)
    assert response.status_code == 302, response.text[:2000]
    return session


def csrf(page: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)


def onboard(server, session: PinnedSession, fsp: str) -> str:
    """Onboard ``fsp``/north through the console's form; the bundle's URL."""
    form = session.get(f"{server.base_url}/console/registry/onboard", timeout=30)
    answer = session.post(f"{server.base_url}/console/registry/onboard", data={
        "csrfmiddlewaretoken": csrf(form.text), "operator": "ENWL", "fsp": fsp,
        "fsp_name": "", "site": "north", "units": "hp7:200", "zone": ""}, timeout=60)
    assert answer.status_code == 200, answer.text[:2000]
    assert "ven-client init --from-onboarding" in answer.text
    return re.search(r'action="(/console/bundles/[0-9a-f-]+)"', answer.text).group(1)


def ven_client(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ven_client", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_console_onboarding_file_to_a_polling_agent(vtn_server, tmp_path):
    server = vtn_server
    ensure_pki_for_console(server)
    session = console_session(server)
    fsp = server.unique("onbfile")
    bundle = onboard(server, session, fsp)

    page = session.get(server.base_url + bundle, timeout=30)
    download = session.post(server.base_url + bundle, data={
        "csrfmiddlewaretoken": csrf(page.text), "format": "onboarding"}, timeout=30)
    assert download.status_code == 200, download.text[:2000]
    assert download.headers["Content-Type"] == "application/json"
    assert f'enwl-{fsp}-north-onboarding.json' in download.headers["Content-Disposition"]
    document = download.json()
    assert document["vtn_url"] == server.base_url
    assert "PRIVATE KEY" in document["certificate"]["key_pem"]
    again = session.post(server.base_url + bundle, data={
        "csrfmiddlewaretoken": csrf(page.text), "format": "onboarding"}, timeout=30)
    assert again.status_code == 410  # one download, then it is gone from the server

    onboarding_file = tmp_path / "onboarding.json"
    onboarding_file.write_bytes(download.content)
    config = tmp_path / "agent" / "config.toml"
    made = ven_client("--config", str(config), "init", "--from-onboarding",
                      str(onboarding_file), "--state-dir", str(tmp_path / "state"))
    assert made.returncode == 0, made.stdout + made.stderr
    tls = tmp_path / "agent" / "config.tls"
    assert stat.S_IMODE((tls / "client.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((tls / "client.crt").stat().st_mode) == 0o644
    text = config.read_text()
    for line in (f'vtn_url = "{server.base_url}"', f'client_key = "{tls / "client.key"}"',
                 f'ca_bundle = "{tls / "ca.crt"}"', f'ven_name = "enwl-{fsp}-north"'):
        assert line in text, line
    # The site signing key, registered over mTLS with the certificate from the file.
    keyed = ven_client("--config", str(config), "keys", "generate")
    assert keyed.returncode == 0, keyed.stdout + keyed.stderr
    polled = ven_client("--config", str(config), "once")
    assert polled.returncode == 0, polled.stdout + polled.stderr
    events = [json.loads(line)["event"] for line in polled.stdout.splitlines()]
    assert "discovered" in events and "cycle_failed" not in events, events
    seen = json.loads(server.manage("shell", "-c", (
        "import json; from dispatch.models import FspSite; "
        f"s = FspSite.objects.get(fsp__identifier='{fsp}', name='north'); "
        "print(json.dumps({'seen': s.last_seen is not None}))")).stdout.splitlines()[-1])
    assert seen == {"seen": True}

    # Running init again without --force refuses and leaves the key as it was.
    key = (tls / "client.key").read_text()
    refused = ven_client("--config", str(config), "init", "--from-onboarding",
                         str(onboarding_file))
    assert refused.returncode == 2 and "--force" in refused.stderr
    assert (tls / "client.key").read_text() == key


@pytest.mark.parametrize("content, message", [
    ("not json", "is not JSON"),
    ('{"format": "gb-flex-vtn-onboarding/1", "vtn_url": "https://x", "client_id": "c", '
     '"client_secret": "s", "certificate": {"cert_pem": "x"}}', "lacks key_pem, ca_pem"),
])
def test_a_broken_onboarding_file_is_refused_with_a_reason(tmp_path, content, message):
    onboarding_file = tmp_path / "onboarding.json"
    onboarding_file.write_text(content)
    config = tmp_path / "config.toml"
    result = ven_client("--config", str(config), "init", "--from-onboarding",
                        str(onboarding_file), "--state-dir", str(tmp_path / "state"))
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert not config.exists() and not (tmp_path / "config.tls" / "client.key").exists()


def test_a_sandbox_answer_with_inline_pems_is_written_beside_the_config(tmp_path):
    answer = {"client_id": "c1", "client_secret": "s1", "ven_name": "enwl-acme-sandbox",
              "certificate": {"cert_pem": "CERT\n", "key_pem": "KEY\n", "ca_pem": "CA\n"}}
    onboarding_file = tmp_path / "answer.json"
    onboarding_file.write_text(json.dumps(answer))
    config = tmp_path / "ven.toml"
    result = ven_client("--config", str(config), "init", "--from-onboarding",
                        str(onboarding_file), "--vtn-url", "https://127.0.0.1:8443",
                        "--state-dir", str(tmp_path / "state"))
    assert result.returncode == 0, result.stderr
    tls = tmp_path / "ven.tls"
    assert (tls / "client.key").read_text() == "KEY\n"
    assert stat.S_IMODE((tls / "client.key").stat().st_mode) == 0o600
    text = config.read_text()
    assert f'client_cert = "{tls / "client.crt"}"' in text
    assert 'vtn_url = "https://127.0.0.1:8443"' in text and 'client_id = "c1"' in text
