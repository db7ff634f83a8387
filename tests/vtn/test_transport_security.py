"""Transport security end to end, over real TLS on 127.0.0.1 (docs/security.md).

Mutual TLS on the VTN's own listener, certificate-bound tokens (RFC 8705) including
``tls_client_auth``, revocation without restart, credentials scoped to one FSP site,
rate limits, the security log, and a real nginx terminating mTLS in front of the VTN.

The shared ``vtn_server`` trusts the development CA for client certificates (optional,
so plain clients work as before). Tests that need other settings start their own
server on the same database and PKI.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.fixtures.api import resource_body, ven_body
from tests.fixtures.requirements import need_nginx
from tests.fixtures.server import (
    ROOT,
    VtnServer,
    free_port,
    spawn_server,
    stop_process,
    wait_until_serving,
)
from vtn import pki

V31 = "3.1.0"
NGINX_CONF = ROOT / "docs" / "nginx-vtn.conf"


# --- helpers ---------------------------------------------------------------------------------


class Site(dict):
    """What ``manage.py pki onboard`` printed for one FSP site."""

    @property
    def cert(self) -> tuple[str, str]:
        return self["cert_path"], self["key_path"]


def onboard(server: VtnServer, fsp: str = "acme", site: str = "site") -> Site:
    name = server.unique(site)
    out = server.workdir / "sites" / name
    return Site(json.loads(server.manage("pki", "onboard", "--fsp", fsp, "--site", name,
                                         "--dir", str(server.pki_dir),
                                         "--out", str(out)).stdout))


def request_token(base_url: str, ca: str | bool, client_id: str, *, secret: str | None = None,
                  cert: tuple[str, str] | None = None) -> requests.Response:
    data = {"grant_type": "client_credentials", "client_id": client_id}
    if secret is not None:
        data["client_secret"] = secret
    return requests.post(f"{base_url}/openadr3/{V31}/auth/token", data=data, cert=cert,
                         verify=ca, timeout=30)


def bound_token(server: VtnServer, site: Site) -> str:
    response = request_token(server.base_url, server.ca_bundle, site["client_id"],
                             cert=site.cert)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def api_get(base_url: str, ca: str | bool, token: str, path: str,
            cert: tuple[str, str] | None = None) -> requests.Response:
    return requests.get(f"{base_url}/openadr3/{V31}/{path}", cert=cert, verify=ca, timeout=30,
                        headers={"Authorization": f"Bearer {token}"})


def cert_session(server: VtnServer, token: str, site: Site) -> requests.Session:
    session = server.session(token)
    session.cert = site.cert
    return session


def assert_invalid_token(response: requests.Response) -> None:
    assert response.status_code == 401, response.text
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["status"] == 401


def x5t_s256(cert_path: str) -> str:
    der = pki.load_certificate(Path(cert_path)).public_bytes(Encoding.DER)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


def tls_exchange(port: int, ca: str, cert: tuple[str, str] | None = None) -> bytes:
    """Handshake (optionally with a client certificate), send one request, read the answer.
    With TLS 1.3 a refused client certificate surfaces at the first read."""
    context = ssl.create_default_context(cafile=ca)
    if cert:
        context.load_cert_chain(*cert)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(b"GET /openadr3/3.1.0/auth/server HTTP/1.1\r\nHost: localhost\r\n"
                    b"Connection: close\r\n\r\n")
        return tls.recv(65536)


def write_site_cert(ca: pki.CertificateAuthority, directory: Path, name: str, **kwargs
                    ) -> tuple[str, str]:
    """A site certificate signed by ``ca`` outside the registry (for foreign/expired)."""
    certificate, key = pki.issue_site_certificate(ca, fsp="acme", site=name, **kwargs)
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    pki.write_public(cert_path, pki.cert_pem(certificate))
    pki.write_private(key_path, pki.key_pem(key))
    return str(cert_path), str(key_path)


def security_log(server: VtnServer, *args: str) -> list[dict]:
    return [json.loads(line) for line in
            server.manage("security_log", *args).stdout.splitlines()]


class ExtraServer:
    """Another VTN process on the shared database and PKI, with its own settings."""

    def __init__(self, base: VtnServer, name: str, env: dict[str, str], *,
                 insecure_http: bool = False, workers: int = 1,
                 server: str = "gthread") -> None:
        self.base = base
        self.port = free_port()
        self.scheme = "http" if insecure_http else "https"
        self.base_url = f"{self.scheme}://127.0.0.1:{self.port}"
        self.env = base.env | {"VTN_PUBLIC_URL": self.base_url} | env
        self.log_path = base.workdir / f"{name}.log"
        args = ["--bind", f"127.0.0.1:{self.port}", "--workers", str(workers),
                "--server", server]
        if insecure_http:
            args.append("--insecure-http")
        self.process = spawn_server(self.env, args, self.log_path)
        wait_until_serving(self.process, f"{self.base_url}/openadr3/{V31}/auth/server",
                           False if insecure_http else base.ca_bundle, self.log_path)

    def stop(self, *, graceful: bool = True) -> None:
        stop_process(self.process, graceful=graceful)


def wait_for_fresh_window(period: float) -> None:
    """Sleep until just after a fixed-window boundary, so a burst fits in one window."""
    time.sleep(period - time.time() % period + 0.05)


# --- the TLS listener ------------------------------------------------------------------------


def test_plain_clients_without_certificates_work_as_before(vtn_server: VtnServer) -> None:
    credentials = vtn_server.create_client("ven", "plain-ven", ven="plain-ven")
    assert credentials["require_mtls"] is False
    token = vtn_server.token(credentials)
    with vtn_server.session(token) as session:
        vens = session.get(vtn_server.url(V31, "vens"), timeout=10)
        assert vens.status_code == 200, vens.text
        assert [v["venName"] for v in vens.json()] == [credentials["ven_name"]]
    assert "cnf" not in requests.post(
        vtn_server.url(V31, "auth/token"), verify=vtn_server.ca_bundle, timeout=10,
        data={"grant_type": "client_credentials", "client_id": credentials["client_id"],
              "client_secret": credentials["client_secret"]}).json()


def test_certificate_from_another_ca_fails_the_handshake(vtn_server: VtnServer,
                                                          tmp_path: Path) -> None:
    foreign = write_site_cert(pki.create_ca(common_name="Someone else's CA"), tmp_path,
                              "foreign")
    with pytest.raises((ssl.SSLError, ConnectionResetError)) as refused:
        tls_exchange(vtn_server.port, vtn_server.ca_bundle, foreign)
    assert "UNKNOWN_CA" in str(refused.value).upper() or isinstance(refused.value,
                                                                    ConnectionResetError)
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(vtn_server.url(V31, "auth/server"), cert=foreign,
                     verify=vtn_server.ca_bundle, timeout=10)


def test_expired_certificate_fails_the_handshake(vtn_server: VtnServer, tmp_path: Path) -> None:
    ca = pki.load_ca(vtn_server.pki_dir)
    expired = write_site_cert(ca, tmp_path, "expired", days=1,
                              not_before=dt.datetime.now(dt.UTC) - dt.timedelta(days=5))
    with pytest.raises((ssl.SSLError, ConnectionResetError)) as refused:
        tls_exchange(vtn_server.port, vtn_server.ca_bundle, expired)
    assert "EXPIRED" in str(refused.value).upper() or isinstance(refused.value,
                                                                 ConnectionResetError)


def test_a_valid_client_certificate_completes_the_handshake(vtn_server: VtnServer) -> None:
    site = onboard(vtn_server)
    answer = tls_exchange(vtn_server.port, vtn_server.ca_bundle, site.cert)
    assert answer.startswith(b"HTTP/1.1 200")


# --- certificate-bound tokens ----------------------------------------------------------------


def test_tls_client_auth_issues_a_token_bound_to_the_certificate(vtn_server: VtnServer) -> None:
    site = onboard(vtn_server)
    response = request_token(vtn_server.base_url, vtn_server.ca_bundle, site["client_id"],
                             cert=site.cert)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["cnf"] == {"x5t#S256": x5t_s256(site["cert_path"])}
    with cert_session(vtn_server, body["access_token"], site) as session:
        vens = session.get(vtn_server.url(V31, "vens"), timeout=10)
        assert vens.status_code == 200, vens.text
        assert [v["id"] for v in vens.json()] == [site["ven_id"]]


def test_secret_with_certificate_also_issues_a_bound_token(vtn_server: VtnServer) -> None:
    site = onboard(vtn_server)
    response = request_token(vtn_server.base_url, vtn_server.ca_bundle, site["client_id"],
                             secret=site["client_secret"], cert=site.cert)
    assert response.status_code == 200, response.text
    assert response.json()["cnf"]["x5t#S256"] == x5t_s256(site["cert_path"])
    wrong = request_token(vtn_server.base_url, vtn_server.ca_bundle, site["client_id"],
                          secret="not-the-secret", cert=site.cert)
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"


def test_mtls_client_gets_no_token_without_its_certificate(vtn_server: VtnServer) -> None:
    site = onboard(vtn_server)
    other = onboard(vtn_server)
    for cert in (None, other.cert):
        for secret in (None, site["client_secret"]):
            response = request_token(vtn_server.base_url, vtn_server.ca_bundle,
                                     site["client_id"], secret=secret, cert=cert)
            assert response.status_code == 401, response.text
            assert response.json()["error"] == "invalid_client"
            assert response.headers["Content-Type"].startswith("application/json")


def test_bound_token_without_a_certificate_is_invalid_token(vtn_server: VtnServer) -> None:
    site = onboard(vtn_server)
    token = bound_token(vtn_server, site)
    # Use it with its certificate first, several times, so both workers cache it: the
    # binding must hold on cache hits too.
    with cert_session(vtn_server, token, site) as session:
        for _ in range(6):
            assert session.get(vtn_server.url(V31, "programs"), timeout=10).status_code == 200
    with vtn_server.session(token) as session:
        for _ in range(4):
            assert_invalid_token(session.get(vtn_server.url(V31, "programs"), timeout=10))


def test_token_replayed_with_another_sites_certificate_is_invalid_token(
        vtn_server: VtnServer) -> None:
    site_a, site_b = onboard(vtn_server, site="replay-a"), onboard(vtn_server, site="replay-b")
    token_a = bound_token(vtn_server, site_a)
    for _ in range(4):
        assert_invalid_token(api_get(vtn_server.base_url, vtn_server.ca_bundle, token_a,
                                     "vens", cert=site_b.cert))
    events = security_log(vtn_server, "--client", site_a["client_id"], "--kind",
                          "cert_mismatch")
    assert events and events[-1]["cert_sha256"] == site_b["thumbprint"]


def test_turning_require_mtls_on_invalidates_unbound_tokens(vtn_server: VtnServer,
                                                            tmp_path: Path) -> None:
    credentials = vtn_server.create_client("ven", "late-mtls", ven="late-mtls")
    token = vtn_server.token(credentials)
    assert api_get(vtn_server.base_url, vtn_server.ca_bundle, token, "vens").status_code == 200
    issued = json.loads(vtn_server.manage(
        "pki", "issue-client", "--fsp", "acme", "--site", credentials["name"], "--dir",
        str(vtn_server.pki_dir), "--out", str(tmp_path)).stdout)
    cert = (issued["cert_path"], issued["key_path"])
    vtn_server.manage("oadr_client", "bind-cert", credentials["client_id"], "--cert",
                      issued["cert_path"], "--require-mtls")
    assert_invalid_token(api_get(vtn_server.base_url, vtn_server.ca_bundle, token, "vens",
                                 cert=cert))
    fresh = request_token(vtn_server.base_url, vtn_server.ca_bundle,
                          credentials["client_id"], cert=cert)
    assert fresh.status_code == 200, fresh.text
    assert api_get(vtn_server.base_url, vtn_server.ca_bundle, fresh.json()["access_token"],
                   "vens", cert=cert).status_code == 200


# --- credentials scoped to one site ----------------------------------------------------------


def test_site_credentials_cannot_read_or_write_another_sites_objects(
        vtn_server: VtnServer) -> None:
    site_a, site_b = onboard(vtn_server, site="north"), onboard(vtn_server, site="south")
    token_a, token_b = bound_token(vtn_server, site_a), bound_token(vtn_server, site_b)
    with cert_session(vtn_server, token_b, site_b) as b:
        created = b.post(vtn_server.url(V31, "resources"), timeout=10,
                         json=resource_body(V31, "ven", site_b["ven_id"], "b-battery"))
        assert created.status_code == 201, created.text
    resource_b = created.json()["id"]
    with cert_session(vtn_server, token_a, site_a) as a:
        url = vtn_server.url
        assert [v["id"] for v in a.get(url(V31, "vens"), timeout=10).json()] == [
            site_a["ven_id"]]
        assert a.get(url(V31, "resources"), timeout=10).json() == []
        for path in (f"vens/{site_b['ven_id']}", f"resources/{resource_b}"):
            assert a.get(url(V31, path), timeout=10).status_code == 404
        writes = [
            a.put(url(V31, f"vens/{site_b['ven_id']}"), timeout=10,
                  json=ven_body(V31, "ven", site_b["ven_name"])),
            a.delete(url(V31, f"vens/{site_b['ven_id']}"), timeout=10),
            a.put(url(V31, f"resources/{resource_b}"), timeout=10,
                  json=resource_body(V31, "ven", site_b["ven_id"], "b-battery")),
            a.delete(url(V31, f"resources/{resource_b}"), timeout=10),
            a.post(url(V31, "resources"), timeout=10,
                   json=resource_body(V31, "ven", site_b["ven_id"], "planted")),
        ]
        assert [w.status_code in {403, 404} for w in writes] == [True] * len(writes), [
            (w.status_code, w.text) for w in writes]
    with cert_session(vtn_server, token_b, site_b) as b:
        still = b.get(vtn_server.url(V31, f"resources/{resource_b}"), timeout=10)
        assert still.status_code == 200 and still.json()["resourceName"] == "b-battery"
        assert [r["resourceName"] for r in b.get(vtn_server.url(V31, "resources"),
                                                 timeout=10).json()] == ["b-battery"]


# --- revocation ------------------------------------------------------------------------------


def test_revoked_certificate_is_refused_at_once_without_restart(vtn_server: VtnServer) -> None:
    site = onboard(vtn_server)
    token = bound_token(vtn_server, site)
    with cert_session(vtn_server, token, site) as session:
        for _ in range(4):  # cached in both workers
            assert session.get(vtn_server.url(V31, "vens"), timeout=10).status_code == 200
        vtn_server.manage("pki", "revoke", "--serial", site["serial"], "--dir",
                          str(vtn_server.pki_dir))
        for path in ("vens", "auth/server"):
            refused = session.get(vtn_server.url(V31, path), timeout=10)
            assert_invalid_token(refused)
            assert "revoked" in refused.json()["detail"]
    again = request_token(vtn_server.base_url, vtn_server.ca_bundle, site["client_id"],
                          cert=site.cert)
    assert again.status_code == 401
    # The handshake itself still succeeds: the VTN refuses the request, not the socket.
    assert tls_exchange(vtn_server.port, vtn_server.ca_bundle, site.cert).startswith(
        b"HTTP/1.1 401")
    crl = x509.load_pem_x509_crl((vtn_server.pki_dir / "crl.pem").read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(int(site["serial"], 16)) is not None
    kinds = {e["kind"] for e in security_log(vtn_server, "--since", "10m")
             if e["cert_sha256"] == site["thumbprint"]}
    assert {"certificate_revoked", "cert_revoked"} <= kinds


def test_expiring_certificate_is_logged_once_per_process(vtn_server: VtnServer,
                                                         tmp_path: Path) -> None:
    credentials = vtn_server.create_client("ven", "expiring", ven="expiring")
    issued = json.loads(vtn_server.manage(
        "pki", "issue-client", "--fsp", "acme", "--site", credentials["name"], "--days", "5",
        "--dir", str(vtn_server.pki_dir), "--out", str(tmp_path)).stdout)
    cert = (issued["cert_path"], issued["key_path"])
    vtn_server.manage("oadr_client", "bind-cert", credentials["client_id"], "--cert",
                      issued["cert_path"], "--require-mtls")
    token = request_token(vtn_server.base_url, vtn_server.ca_bundle,
                          credentials["client_id"], cert=cert).json()["access_token"]
    for _ in range(6):
        assert api_get(vtn_server.base_url, vtn_server.ca_bundle, token, "vens",
                       cert=cert).status_code == 200
    time.sleep(0.3)  # let the log lines reach the file
    warnings = [line for line in vtn_server.output().splitlines()
                if issued["thumbprint"] in line and "WARNING" in line and "expires" in line]
    assert 1 <= len(warnings) <= 2, warnings  # once per worker process at most


# --- the security log ------------------------------------------------------------------------


def test_security_log_records_issuance_failures_and_mismatches(vtn_server: VtnServer) -> None:
    site = onboard(vtn_server)
    token = bound_token(vtn_server, site)
    request_token(vtn_server.base_url, vtn_server.ca_bundle, site["client_id"])  # no cert
    api_get(vtn_server.base_url, vtn_server.ca_bundle, token, "vens")  # bound, no cert
    api_get(vtn_server.base_url, vtn_server.ca_bundle, "not-a-token", "vens")
    events = security_log(vtn_server, "--client", site["client_id"])
    kinds = [e["kind"] for e in events]
    assert kinds[:2] == ["certificate_bound", "client_created"] or {
        "certificate_bound", "client_created"} <= set(kinds)
    assert "token_issued" in kinds and kinds.count("cert_mismatch") >= 2
    issued = next(e for e in events if e["kind"] == "token_issued")
    assert issued["cert_sha256"] == site["thumbprint"]
    assert issued["remote_addr"] == "127.0.0.1" and issued["detail"] == "certificate-bound"
    failed = security_log(vtn_server, "--kind", "auth_failed", "--limit", "5")
    assert failed and failed[-1]["detail"].startswith("GET /openadr3/3.1.0/vens")


# --- rate limits -----------------------------------------------------------------------------

RATE_WINDOW = 5  # seconds: a burst of three requests fits well inside one


@pytest.fixture(scope="module")
def limited_server(vtn_server: VtnServer) -> Iterator[ExtraServer]:
    """A VTN with tiny limits, one worker (locmem counters are per process)."""
    server = ExtraServer(vtn_server, "limited", {
        "VTN_TOKEN_RATE": f"3/{RATE_WINDOW}s", "VTN_AUTH_FAILURE_RATE": f"2/{RATE_WINDOW}s",
        "VTN_AUTH_FAILURE_ADDRESS_RATE": f"2/{RATE_WINDOW}s"})
    try:
        yield server
    finally:
        server.stop(graceful=False)


def assert_rate_limited(response: requests.Response) -> int:
    assert response.status_code == 429, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["status"] == 429
    wait = int(response.headers["Retry-After"])
    assert 1 <= wait <= RATE_WINDOW
    return wait


def test_token_requests_over_the_rate_get_429_then_recover(vtn_server: VtnServer,
                                                           limited_server: ExtraServer) -> None:
    credentials = vtn_server.create_client("bl", "rate-bl")
    ca = vtn_server.ca_bundle

    def ask() -> requests.Response:
        return request_token(limited_server.base_url, ca, credentials["client_id"],
                             secret=credentials["client_secret"])

    wait_for_fresh_window(RATE_WINDOW)
    assert [ask().status_code for _ in range(3)] == [200] * 3
    wait = assert_rate_limited(ask())
    time.sleep(wait + 0.1)
    assert ask().status_code == 200


def test_failed_authentications_over_the_rate_get_429_then_recover(
        vtn_server: VtnServer, limited_server: ExtraServer) -> None:
    credentials = vtn_server.create_client("bl", "rate-fail")
    ca = vtn_server.ca_bundle
    wait_for_fresh_window(RATE_WINDOW)
    for _ in range(2):
        wrong = request_token(limited_server.base_url, ca, credentials["client_id"],
                              secret="wrong")
        assert wrong.status_code == 401
    # The next failure is throttled, for the rest of the window...
    wait = assert_rate_limited(request_token(limited_server.base_url, ca,
                                             credentials["client_id"], secret="wrong"))
    # ...while the right secret still gets its token, from the same address.
    right = request_token(limited_server.base_url, ca, credentials["client_id"],
                          secret=credentials["client_secret"])
    assert right.status_code == 200, right.text
    token = right.json()["access_token"]
    time.sleep(wait + 0.1)
    assert request_token(limited_server.base_url, ca, credentials["client_id"],
                         secret="wrong").status_code == 401

    wait_for_fresh_window(RATE_WINDOW)
    for attempt in range(2):
        assert_invalid_token(api_get(limited_server.base_url, ca, f"forged-{attempt}",
                                     "programs"))
    wait = assert_rate_limited(api_get(limited_server.base_url, ca, "forged-3", "programs"))
    assert api_get(limited_server.base_url, ca, token, "programs").status_code == 200
    time.sleep(wait + 0.1)
    assert_invalid_token(api_get(limited_server.base_url, ca, "forged-4", "programs"))
    assert security_log(vtn_server, "--kind", "rate_limited", "--since", "1m")


# --- behind a reverse proxy (nginx) ----------------------------------------------------------


def _nginx_binary() -> str:
    return need_nginx()


def nginx_site_config(*, listen_port: int, upstream_port: int, pki_dir: Path) -> str:
    """docs/nginx-vtn.conf with its placeholders replaced for this test."""
    text = NGINX_CONF.read_text()
    replacements = {
        "listen 443 ssl;": f"listen 127.0.0.1:{listen_port} ssl;",
        "server 127.0.0.1:8000;": f"server 127.0.0.1:{upstream_port};",
        "/etc/vtn/pki/": f"{pki_dir}/",
        "server_name vtn.example.org;": "server_name localhost;",
    }
    for old, new in replacements.items():
        assert old in text, f"docs/nginx-vtn.conf no longer contains {old!r}"
        text = text.replace(old, new)
    return text


class Nginx:
    def __init__(self, binary: str, workdir: Path, site_config: str, port: int) -> None:
        self.workdir = workdir
        self.port = port
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "vtn.conf").write_text(site_config)
        user = "user root;\n" if os.geteuid() == 0 else ""
        temp = "\n".join(f"  {kind}_temp_path {workdir / kind};"
                         for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        (workdir / "nginx.conf").write_text(
            f"daemon off;\n{user}worker_processes 1;\npid {workdir / 'nginx.pid'};\n"
            f"error_log {workdir / 'error.log'} info;\nevents {{ worker_connections 64; }}\n"
            f"http {{\n  access_log {workdir / 'access.log'};\n{temp}\n"
            f"  include {workdir / 'vtn.conf'};\n}}\n")
        self.log = (workdir / "stdout.log").open("ab")
        self.process = subprocess.Popen(
            [binary, "-p", str(workdir), "-c", str(workdir / "nginx.conf"),
             "-e", str(workdir / "error.log")], stdout=self.log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"nginx exited at start:\n{self.errors()}", pytrace=False)
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        pytest.fail(f"nginx did not listen on {port}:\n{self.errors()}", pytrace=False)

    def errors(self) -> str:
        path = self.workdir / "error.log"
        return path.read_text(errors="replace")[-5000:] if path.exists() else ""

    def reload(self) -> None:
        self.process.send_signal(signal.SIGHUP)
        time.sleep(1.0)  # new workers take over

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


@pytest.fixture(scope="module")
def proxied(vtn_server: VtnServer) -> Iterator[tuple[ExtraServer, Nginx]]:
    """nginx (mTLS, from docs/nginx-vtn.conf) in front of a plain-HTTP VTN on loopback that
    trusts 127.0.0.1 as its proxy."""
    binary = _nginx_binary()
    vtn_server.manage("pki", "crl", "--dir", str(vtn_server.pki_dir))  # nginx needs a CRL
    backend = ExtraServer(vtn_server, "behind-proxy", {"VTN_TRUSTED_PROXIES": "127.0.0.1"},
                          insecure_http=True)
    port = free_port()
    try:
        nginx = Nginx(binary, vtn_server.workdir / "nginx",
                      nginx_site_config(listen_port=port, upstream_port=backend.port,
                                        pki_dir=vtn_server.pki_dir), port)
    except BaseException:
        backend.stop()
        raise
    try:
        yield backend, nginx
    finally:
        nginx.stop()
        backend.stop(graceful=False)


def proxy_url(nginx: Nginx) -> str:
    return f"https://localhost:{nginx.port}"


def test_proxy_forwards_the_verified_certificate(vtn_server: VtnServer, proxied) -> None:
    _, nginx = proxied
    base, ca = proxy_url(nginx), vtn_server.ca_bundle
    discovery = requests.get(f"{base}/openadr3/{V31}/auth/server", verify=ca, timeout=10)
    assert discovery.json()["tokenURL"] == f"{base}/openadr3/{V31}/auth/token"
    assert "Strict-Transport-Security" in discovery.headers
    site = onboard(vtn_server)
    response = request_token(base, ca, site["client_id"], cert=site.cert)
    assert response.status_code == 200, response.text + nginx.errors()
    assert response.json()["cnf"]["x5t#S256"] == x5t_s256(site["cert_path"])
    token = response.json()["access_token"]
    vens = api_get(base, ca, token, "vens", cert=site.cert)
    assert vens.status_code == 200 and [v["id"] for v in vens.json()] == [site["ven_id"]]
    assert_invalid_token(api_get(base, ca, token, "vens"))
    other = onboard(vtn_server)
    assert_invalid_token(api_get(base, ca, token, "vens", cert=other.cert))
    events = security_log(vtn_server, "--client", site["client_id"], "--kind", "token_issued")
    assert events[-1]["remote_addr"] == "127.0.0.1"


def test_proxy_refuses_certificates_it_cannot_verify(vtn_server: VtnServer, proxied,
                                                     tmp_path: Path) -> None:
    _, nginx = proxied
    foreign = write_site_cert(pki.create_ca(common_name="Elsewhere"), tmp_path, "foreign")
    response = requests.get(f"{proxy_url(nginx)}/openadr3/{V31}/auth/server", cert=foreign,
                            verify=vtn_server.ca_bundle, timeout=10)
    assert response.status_code == 400  # nginx: "The SSL certificate error"
    assert_nginx_problem(response, 400)


def assert_nginx_problem(response: requests.Response, status: int) -> None:
    """nginx's own refusals read like the VTN's: a problem document as application/json."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json"), response.headers
    problem = response.json()
    assert problem["status"] == status and problem["title"] and problem["detail"]


def test_what_nginx_refuses_itself_is_a_problem_document(vtn_server: VtnServer,
                                                        proxied) -> None:
    _, nginx = proxied
    base, ca = proxy_url(nginx), vtn_server.ca_bundle
    long_query = requests.get(f"{base}/openadr3/{V31}/programs?x={'a' * 9000}", verify=ca,
                              timeout=10)
    assert_nginx_problem(long_query, 400)  # nginx would say 414, no operation lists it
    huge_header = requests.get(f"{base}/openadr3/{V31}/programs", verify=ca, timeout=10,
                               headers={"X-Padding": "b" * 9000})
    assert_nginx_problem(huge_header, 400)
    too_large = requests.post(f"{base}/openadr3/{V31}/programs", data=b"{" * 1_100_000,
                              headers={"Content-Type": "application/json"}, verify=ca,
                              timeout=30)
    assert_nginx_problem(too_large, 413)


def test_a_client_cannot_forge_the_certificate_header(vtn_server: VtnServer, proxied) -> None:
    backend, nginx = proxied
    site = onboard(vtn_server)
    forged = quote(Path(site["cert_path"]).read_text(), safe="")
    headers = {"X-SSL-Client-Cert": forged, "X-SSL-Client-Verify": "SUCCESS"}
    # Through nginx without a certificate: nginx replaces the header with nothing.
    through = requests.post(f"{proxy_url(nginx)}/openadr3/{V31}/auth/token",
                            data={"grant_type": "client_credentials",
                                  "client_id": site["client_id"]},
                            headers=headers, verify=vtn_server.ca_bundle, timeout=10)
    assert through.status_code == 401 and through.json()["error"] == "invalid_client"
    # Straight to the backend from an address that is not a trusted proxy: ignored.
    connection = http.client.HTTPConnection("127.0.0.1", backend.port, timeout=10,
                                            source_address=("127.0.0.2", 0))
    try:
        connection.request("POST", f"/openadr3/{V31}/auth/token",
                           body=f"grant_type=client_credentials&client_id={site['client_id']}",
                           headers=headers | {"Content-Type":
                                              "application/x-www-form-urlencoded"})
        direct = connection.getresponse()
        body = json.loads(direct.read())
    finally:
        connection.close()
    assert direct.status == 401 and body["error"] == "invalid_client"
    refused = security_log(vtn_server, "--client", site["client_id"], "--kind",
                           "cert_mismatch")
    assert {e["remote_addr"] for e in refused} >= {"127.0.0.1", "127.0.0.2"}
    assert all(e["cert_sha256"] == "" for e in refused)


def test_revocation_applies_behind_the_proxy_before_and_after_crl_reload(
        vtn_server: VtnServer, proxied) -> None:
    _, nginx = proxied
    base, ca = proxy_url(nginx), vtn_server.ca_bundle
    site = onboard(vtn_server)
    token = request_token(base, ca, site["client_id"], cert=site.cert).json()["access_token"]
    assert api_get(base, ca, token, "vens", cert=site.cert).status_code == 200
    vtn_server.manage("pki", "revoke", "--serial", site["serial"], "--dir",
                      str(vtn_server.pki_dir))
    # nginx still has the old CRL: the VTN refuses the forwarded certificate itself.
    assert_invalid_token(api_get(base, ca, token, "vens", cert=site.cert))
    nginx.reload()
    # With the new CRL loaded nginx refuses it before the VTN sees anything.
    assert api_get(base, ca, token, "vens", cert=site.cert).status_code == 400
