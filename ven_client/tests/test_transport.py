"""The agent's HTTPS transport against a real TLS server on loopback that asks for client
certificates: the site certificate is presented, a renewed one on disk is used from the
next request on, keep-alive connections are reused, query values left out when None,
redirects are not followed, TLS and connection failures are told apart, and TLS files
that cannot be read are a configuration error."""

from __future__ import annotations

import http.server
import ipaddress
import json
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ven_client import config as config_module
from ven_client.config import ConfigError
from ven_client.transport import Transport, Unavailable


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(subject: str, key: ec.EllipticCurvePrivateKey, issuer: str,
           issuer_key: ec.EllipticCurvePrivateKey, *, ca: bool = False,
           ip: str | None = None) -> x509.Certificate:
    now = datetime.now(UTC)
    builder = (x509.CertificateBuilder().subject_name(_name(subject))
               .issuer_name(_name(issuer)).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - timedelta(minutes=5))
               .not_valid_after(now + timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ip:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
            critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    path.with_suffix(".crt").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))


@dataclass
class Pki:
    folder: Path
    ca: x509.Certificate
    ca_key: ec.EllipticCurvePrivateKey

    def client(self, name: str) -> tuple[str, str]:
        """A client certificate issued by the CA: (certificate path, key path)."""
        key = ec.generate_private_key(ec.SECP256R1())
        _write(self.folder / name, _issue(name, key, "test CA", self.ca_key), key)
        return str(self.folder / f"{name}.crt"), str(self.folder / f"{name}.key")


@dataclass
class Server:
    """What the loopback server saw: per request the path, the client certificate's
    common name and the client's port (one port per TCP connection)."""

    url: str
    seen: list[dict] = field(default_factory=list)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _issue("test CA", ca_key, "test CA", ca_key, ca=True)
    _write(tmp_path / "ca", ca, ca_key)
    server_key = ec.generate_private_key(ec.SECP256R1())
    _write(tmp_path / "server", _issue("vtn", server_key, "test CA", ca_key, ip="127.0.0.1"),
           server_key)
    return Pki(tmp_path, ca, ca_key)


@pytest.fixture
def server(pki: Pki) -> Iterator[Server]:
    seen: list[dict] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive

        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            peer = self.connection.getpeercert()  # type: ignore[attr-defined]
            subject = dict(item[0] for item in peer["subject"]) if peer else {}
            seen.append({"path": self.path, "cn": subject.get("commonName"),
                         "port": self.client_address[1],
                         "authorization": self.headers.get("Authorization")})
            if self.path.endswith("/moved"):
                self.send_response(302)
                self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = json.dumps({"path": self.path}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = json.dumps({"access_token": "t" * 24, "expires_in": 3600}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.folder / "server.crt", pki.folder / "server.key")
    context.load_verify_locations(pki.folder / "ca.crt")
    context.verify_mode = ssl.CERT_OPTIONAL
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield Server(url=f"https://127.0.0.1:{httpd.server_address[1]}", seen=seen)
    finally:
        httpd.shutdown()
        httpd.server_close()


def _transport(server: Server, pki: Pki, **settings: object) -> Transport:
    config = config_module.Config(vtn_url=server.url, client_id="c", client_secret="s" * 20,
                                  ca_bundle=str(pki.folder / "ca.crt"), request_timeout_s=10,
                                  **settings)  # type: ignore[arg-type]
    return Transport(config)


def test_the_site_certificate_is_presented_and_the_connection_kept(server, pki):
    cert, key = pki.client("site-1")
    transport = _transport(server, pki, client_cert=cert, client_key=key)
    try:
        assert transport.request("GET", "events").json()["path"] == \
            "/openadr3/3.1.0/events"
        transport.request("GET", "events")
    finally:
        transport.close()
    first, second = server.seen
    assert first["cn"] == second["cn"] == "site-1"
    assert first["authorization"] == "Bearer " + "t" * 24
    assert first["port"] == second["port"]  # one TCP connection for both


def test_a_renewed_certificate_on_disk_is_used_from_the_next_request(server, pki):
    cert, key = pki.client("site-old")
    transport = _transport(server, pki, client_cert=cert, client_key=key)
    try:
        transport.request("GET", "events")
        renewed_cert, renewed_key = pki.client("site-new")
        Path(cert).write_bytes(Path(renewed_cert).read_bytes())
        Path(key).write_bytes(Path(renewed_key).read_bytes())
        transport.request("GET", "events")
    finally:
        transport.close()
    assert [s["cn"] for s in server.seen if s["path"].endswith("events")] == \
        ["site-old", "site-new"]


def test_query_values_that_are_none_are_left_out(server, pki):
    transport = _transport(server, pki)
    try:
        answer = transport.request("GET", "reports", params={"eventID": "e 1",
                                                             "clientName": None, "skip": 0})
    finally:
        transport.close()
    assert answer.json()["path"] == "/openadr3/3.1.0/reports?eventID=e+1&skip=0"


def test_a_redirect_is_returned_not_followed(server, pki):
    transport = _transport(server, pki)
    try:
        answer = transport.request("GET", "moved")
    finally:
        transport.close()
    assert answer.status_code == 302 and answer.headers["location"] == "/elsewhere"
    assert not [s for s in server.seen if s["path"] == "/elsewhere"]


def test_a_server_the_ca_does_not_vouch_for_is_a_tls_error(server, pki, tmp_path):
    other_key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "other-ca.pem").write_bytes(_issue(
        "other CA", other_key, "other CA", other_key, ca=True).public_bytes(
            serialization.Encoding.PEM))
    transport = _transport(server, pki)
    transport.config.ca_bundle = str(tmp_path / "other-ca.pem")
    with pytest.raises(Unavailable, match="TLS error .*certificate verify failed"):
        transport.token()
    transport.close()


def test_a_closed_port_is_unreachable_and_counts_towards_fail_over(pki, tmp_path):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = config_module.Config(
        vtn_urls=[f"https://127.0.0.1:{port}", "https://127.0.0.1:9"], client_id="c",
        client_secret="s" * 20, ca_bundle=str(pki.folder / "ca.crt"),
        failover_after_failures=1, request_timeout_s=5)
    transport = Transport(config)
    with pytest.raises(Unavailable, match="VTN unreachable"):
        transport.token()
    assert config.vtn_url == "https://127.0.0.1:9"  # moved on after one failure
    transport.close()


def test_tls_files_that_cannot_be_read_are_a_configuration_error(server, pki, tmp_path):
    transport = _transport(server, pki, client_cert=str(tmp_path / "missing.crt"),
                           client_key=str(tmp_path / "missing.key"))
    with pytest.raises(ConfigError, match="cannot load the TLS files"):
        transport.token()
    transport.close()
