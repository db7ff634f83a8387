"""Serving over HTTPS: TLS policy, certificates, security headers, static files, PKI.

Everything here talks to the real server process (``vtn_server``), started once.
"""

from __future__ import annotations

import hashlib
import json
import socket
import ssl
import stat
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import requests

from tests.fixtures.server import (
    MANAGE,
    ROOT,
    VtnServer,
    free_port,
    spawn_server,
    stop_process,
    wait_until_serving,
)

SWAGGER_JS = "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js"


def _handshake(server: VtnServer, context: ssl.SSLContext, hostname: str | None) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    try:
        return context.wrap_socket(raw, server_hostname=hostname)
    except BaseException:
        raw.close()
        raise


def _legacy_client(maximum: ssl.TLSVersion) -> ssl.SSLContext:
    """A client willing to speak old TLS, so that a refusal can only be the server's."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # deliberately obsolete versions
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = maximum
    return context


def test_https_answers_json(vtn_server: VtnServer) -> None:
    response = requests.get(vtn_server.url("3.1.0", "auth/server"),
                            verify=vtn_server.ca_bundle, timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == {"tokenURL": vtn_server.url("3.1.0", "auth/token")}


@pytest.mark.parametrize("maximum", [ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1],
                         ids=["tls1.1", "tls1.0"])
def test_legacy_tls_is_refused_by_the_server(vtn_server: VtnServer,
                                             maximum: ssl.TLSVersion) -> None:
    with pytest.raises(ssl.SSLError) as refused:
        _handshake(vtn_server, _legacy_client(maximum), None).close()
    # The server's protocol_version alert, not a client-side inability to offer the version.
    assert "ALERT_PROTOCOL_VERSION" in str(refused.value), refused.value


def test_tls12_uses_forward_secret_aead_only(vtn_server: VtnServer) -> None:
    context = _legacy_client(ssl.TLSVersion.TLSv1_2)
    with _handshake(vtn_server, context, None) as tls:
        assert tls.version() == "TLSv1.2"
        name, _, _ = tls.cipher()
        assert name.startswith("ECDHE-") and ("GCM" in name or "CHACHA20" in name), name
    # A CBC suite without forward secrecy for TLS 1.2 is refused.
    weak = _legacy_client(ssl.TLSVersion.TLSv1_2)
    weak.set_ciphers("AES128-SHA:ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:@SECLEVEL=0")
    with pytest.raises(ssl.SSLError):
        _handshake(vtn_server, weak, None).close()


@pytest.mark.parametrize("hostname", ["localhost", "127.0.0.1"])
def test_certificate_verifies_against_the_ca(vtn_server: VtnServer, hostname: str) -> None:
    context = ssl.create_default_context(cafile=vtn_server.ca_bundle)
    with _handshake(vtn_server, context, hostname) as tls:
        assert tls.version() in {"TLSv1.2", "TLSv1.3"}
        assert tls.getpeercert()["subject"]
    response = requests.get(f"https://localhost:{vtn_server.port}/openadr3/3.1.0/auth/server",
                            verify=vtn_server.ca_bundle, timeout=10)
    assert response.status_code == 200


def test_certificate_is_not_trusted_without_the_ca(vtn_server: VtnServer) -> None:
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(vtn_server.url("3.1.0", "auth/server"), verify=True, timeout=10)


def test_hsts_header_over_https(vtn_server: VtnServer) -> None:
    response = requests.get(vtn_server.url("3.1.0", "auth/server"),
                            verify=vtn_server.ca_bundle, timeout=10)
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    # Forwarding headers are not trusted: the scheme is the socket's.
    spoofed = requests.get(vtn_server.url("3.1.0", "auth/server"),
                           headers={"X-Forwarded-Proto": "http"},
                           verify=vtn_server.ca_bundle, timeout=10)
    assert "Strict-Transport-Security" in spoofed.headers


def test_swagger_ui_and_its_assets_load(vtn_server: VtnServer) -> None:
    for version in ("3.1.0", "3.0.1"):
        page = requests.get(vtn_server.url(version, "docs"), verify=vtn_server.ca_bundle,
                            timeout=10)
        assert page.status_code == 200
        assert SWAGGER_JS in page.text
    asset = requests.get(vtn_server.base_url + SWAGGER_JS, verify=vtn_server.ca_bundle,
                         timeout=10)
    assert asset.status_code == 200
    assert "javascript" in asset.headers["Content-Type"]
    assert len(asset.content) > 100_000
    assert "Strict-Transport-Security" in asset.headers


def test_insecure_http_is_refused_off_loopback(vtn_server: VtnServer) -> None:
    result = subprocess.run(
        [sys.executable, str(MANAGE), "serve", "--insecure-http", "--bind",
         f"0.0.0.0:{free_port()}"],
        cwd=ROOT, env=vtn_server.env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "--insecure-http is only allowed on a loopback address" in result.stderr


def test_missing_tls_files_are_refused_with_a_hint(vtn_server: VtnServer,
                                                   tmp_path: Path) -> None:
    env = vtn_server.env | {"VTN_TLS_CERT": str(tmp_path / "none.pem"),
                            "VTN_TLS_KEY": str(tmp_path / "none.key")}
    result = subprocess.run(
        [sys.executable, str(MANAGE), "serve", "--bind", f"127.0.0.1:{free_port()}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "manage.py pki init" in result.stderr


def test_insecure_http_on_loopback_serves_http(vtn_server: VtnServer,
                                               tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "http.log"
    process = spawn_server(vtn_server.env, ["--insecure-http", "--bind", f"127.0.0.1:{port}",
                                            "--workers", "1"], log)
    try:
        url = f"http://127.0.0.1:{port}/openadr3/3.1.0/auth/server"
        wait_until_serving(process, url, False, log)
        response = requests.get(url, timeout=10)
        assert response.status_code == 200
        assert response.json()["tokenURL"].startswith("http://")
        assert "Strict-Transport-Security" not in response.headers
        # A client on loopback cannot talk the app into believing the request was TLS.
        spoofed = requests.get(url, headers={"X-Forwarded-Proto": "https"}, timeout=10)
        assert "Strict-Transport-Security" not in spoofed.headers
    finally:
        assert stop_process(process) == 0, log.read_text()
    assert "Handling signal: term" in log.read_text()


def test_pki_init_reuses_the_ca_and_protects_keys(vtn_server: VtnServer) -> None:
    first = json.loads(vtn_server.manage("pki", "init", "--dir", str(vtn_server.pki_dir)).stdout)
    again = json.loads(vtn_server.manage("pki", "init", "--dir", str(vtn_server.pki_dir)).stdout)
    assert first["ca"]["created"] is False and again["ca"]["created"] is False
    assert first["ca"]["sha256"] == again["ca"]["sha256"]
    assert first["server"]["sha256"] == again["server"]["sha256"]
    served = ssl.get_server_certificate(("127.0.0.1", vtn_server.port))
    served_fp = hashlib.sha256(ssl.PEM_cert_to_DER_cert(served)).digest().hex(":").upper()
    assert served_fp == again["server"]["sha256"]
    for name in ("ca.key", "server.key"):
        mode = stat.S_IMODE((vtn_server.pki_dir / name).stat().st_mode)
        assert mode == 0o600, f"{name} has mode {oct(mode)}"
    assert again["server"]["dns_names"] == ["localhost"]
    assert set(again["server"]["ip_addresses"]) == {"127.0.0.1", "::1"}


def test_pki_init_force_replaces_the_ca(vtn_server: VtnServer, tmp_path: Path) -> None:
    directory = str(tmp_path / "pki")
    first = json.loads(vtn_server.manage("pki", "init", "--dir", directory).stdout)
    forced = json.loads(vtn_server.manage("pki", "init", "--dir", directory, "--force",
                                          "--key-type", "rsa").stdout)
    assert first["ca"]["created"] and forced["ca"]["created"] and forced["server"]["created"]
    assert first["ca"]["sha256"] != forced["ca"]["sha256"]
    assert forced["server"]["issuer"] == forced["ca"]["subject"]


@pytest.mark.parametrize("version", ["3.1.0", "3.0.1"])
def test_business_logic_token_over_https(vtn_server: VtnServer, version: str) -> None:
    credentials = vtn_server.create_client("bl", "serving-bl")
    assert credentials["role"] == "bl" and credentials["client_secret"]
    token = vtn_server.token(credentials, version=version)
    with vtn_server.session(token) as session:
        response = session.get(vtn_server.url(version, "programs"), timeout=10)
        assert response.status_code == 200, response.text
        assert isinstance(response.json(), list)
        assert "Strict-Transport-Security" in response.headers
    anonymous = requests.get(vtn_server.url(version, "programs"),
                             verify=vtn_server.ca_bundle, timeout=10)
    assert anonymous.status_code in {401, 403}


def test_stop_and_start_keep_port_and_database(vtn_server: VtnServer) -> None:
    credentials = vtn_server.create_client("bl", "serving-restart")
    token = vtn_server.token(credentials)
    assert vtn_server.stop() == 0
    assert not vtn_server.running
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(vtn_server.url("3.1.0", "auth/server"), verify=vtn_server.ca_bundle,
                     timeout=5)
    vtn_server.start()
    assert vtn_server.running
    with vtn_server.session(token) as session:
        assert session.get(vtn_server.url("3.1.0", "programs"), timeout=10).status_code == 200


# --- granian (`manage.py serve --server granian`) ---------------------------------------------


def test_auto_serves_with_granian_unless_the_vtn_verifies_client_certificates() -> None:
    from webserver.server import ServerOptions, resolve_server

    assert resolve_server(ServerOptions()) == "granian"
    assert resolve_server(ServerOptions(insecure_http=True)) == "granian"
    assert resolve_server(ServerOptions(tls_client_ca="/ca.pem")) == "gthread"
    assert resolve_server(ServerOptions(server="gthread")) == "gthread"
    assert resolve_server(ServerOptions(server="granian")) == "granian"


def test_granian_is_refused_with_a_client_ca(vtn_server: VtnServer) -> None:
    assert vtn_server.env.get("VTN_TLS_CLIENT_CA")
    result = subprocess.run(
        [sys.executable, str(MANAGE), "serve", "--server", "granian",
         "--bind", f"127.0.0.1:{free_port()}"],
        cwd=ROOT, env=vtn_server.env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "client certificates" in result.stderr and "--server gthread" in result.stderr


def test_granian_serves_polls_over_tls12_or_later_and_stops_gracefully(
        vtn_server: VtnServer, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "granian.log"
    env = {key: value for key, value in vtn_server.env.items() if key != "VTN_TLS_CLIENT_CA"}
    base = f"https://127.0.0.1:{port}"
    process = spawn_server(env | {"VTN_PUBLIC_URL": base},
                           ["--server", "granian", "--bind", f"127.0.0.1:{port}",
                            "--workers", "1", "--threads", "2"], log)
    try:
        wait_until_serving(process, f"{base}/openadr3/3.1.0/auth/server",
                           vtn_server.ca_bundle, log)
        token = vtn_server.token(vtn_server.create_client("ven", "granian-ven", ven="granian-ven"))
        session = requests.Session()
        for _ in range(2):  # the second is a replayed warm poll
            answer = session.get(f"{base}/openadr3/3.1.0/events", verify=vtn_server.ca_bundle,
                                 headers={"Authorization": f"Bearer {token}"}, timeout=10)
            assert answer.status_code == 200, answer.text
            assert answer.headers["Strict-Transport-Security"].startswith("max-age=")
        refused = session.get(f"{base}/openadr3/3.1.0/events", verify=vtn_server.ca_bundle,
                              headers={"Authorization": "Bearer not-a-token"}, timeout=10)
        assert refused.status_code == 401 and refused.json()["status"] == 401  # a problem
        assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
        legacy = _legacy_client(ssl.TLSVersion.TLSv1_1)
        with pytest.raises((ssl.SSLError, OSError)):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                legacy.wrap_socket(raw, server_hostname="127.0.0.1")
    finally:
        assert stop_process(process) == 0, log.read_text()
    assert "Granian shutdown completed" in log.read_text()
