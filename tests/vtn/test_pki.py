"""The certificate registry and its commands: issue, onboard, bind, revoke, list, CRL;
the append-only security log; rate parsing. In-process, against the test database.

End-to-end behaviour over real TLS (handshakes, bound tokens, revocation on the wire,
the proxy) is in test_transport_security.py.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.core.management import CommandError, call_command

from vtn import generations, pki
from vtn.append_only import AppendOnlyError
from vtn.auth import certificates, ratelimit
from vtn.auth.services import ClientError, bind_certificate, create_client
from vtn.models import (
    Client,
    ClientCertificate,
    Generation,
    IssuedCertificate,
    SecurityEvent,
    Ven,
)

pytestmark = pytest.mark.django_db


def manage(*args: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue() + err.getvalue()


def manage_json(*args: str) -> dict | list:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return json.loads(out.getvalue())


@pytest.fixture
def pki_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "pki"
    manage("pki", "init", "--dir", str(directory))
    return directory


def auth_generation() -> int:
    row = Generation.objects.filter(name=generations.AUTH).first()
    return row.value if row else 0


# --- issuing ---------------------------------------------------------------------------------


def test_issue_client_writes_a_site_certificate_with_its_identity(pki_dir: Path) -> None:
    issued = manage_json("pki", "issue-client", "--fsp", "acme", "--site", "site-a",
                         "--dir", str(pki_dir))
    cert_path, key_path = pki_dir / "site-a.pem", pki_dir / "site-a.key"
    assert issued["cert_path"] == str(cert_path) and issued["key_path"] == str(key_path)
    certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    assert certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "acme"
    assert certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "site-a"
    san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        "urn:gbflex:fsp:acme:site:site-a"]
    eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    der = certificate.public_bytes(Encoding.DER)
    assert issued["thumbprint"] == hashlib.sha256(der).hexdigest()
    assert issued["serial"] == format(certificate.serial_number, "x")
    assert pki.issued_by(certificate, pki.load_certificate(pki_dir / "ca.pem"))
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    row = IssuedCertificate.objects.get(serial=issued["serial"])
    assert (row.sha256, row.kind, row.fsp, row.site) == (issued["thumbprint"], "client",
                                                         "acme", "site-a")
    assert SecurityEvent.objects.filter(kind="certificate_issued",
                                        cert_sha256=row.sha256).exists()


def test_issue_client_refuses_unsafe_names_and_overwriting(pki_dir: Path) -> None:
    for fsp, site in (("acme", "../etc"), ("ac me", "s1"), ("acme", "ca"), ("acme", "server")):
        with pytest.raises(CommandError):
            manage("pki", "issue-client", "--fsp", fsp, "--site", site, "--dir", str(pki_dir))
    manage("pki", "issue-client", "--fsp", "acme", "--site", "s1", "--dir", str(pki_dir))
    with pytest.raises(CommandError, match="refusing to overwrite"):
        manage("pki", "issue-client", "--fsp", "acme", "--site", "s1", "--dir", str(pki_dir))
    assert IssuedCertificate.objects.count() == 1


def test_issue_server_writes_a_chain_for_the_names(pki_dir: Path, tmp_path: Path) -> None:
    issued = manage_json("pki", "issue-server", "--name", "proxy", "--dns", "vtn.example",
                         "--ip", "10.0.0.5", "--dir", str(pki_dir), "--out",
                         str(tmp_path / "out"))
    chain = x509.load_pem_x509_certificates(Path(issued["cert_path"]).read_bytes())
    assert len(chain) == 2 and chain[1] == pki.load_certificate(pki_dir / "ca.pem")
    dns, ips = pki.subject_alt_names(chain[0])
    assert dns == ["vtn.example"] and ips == ["10.0.0.5"]
    eku = chain[0].extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert IssuedCertificate.objects.get(serial=issued["serial"]).kind == "server"


# --- onboarding and binding -----------------------------------------------------------------


def test_onboard_creates_a_bound_mtls_client_its_ven_and_the_bundle(pki_dir: Path,
                                                                    tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    result = manage_json("pki", "onboard", "--fsp", "acme", "--site", "north",
                         "--dir", str(pki_dir), "--out", str(out))
    for key in ("client_id", "client_secret", "ven_name", "ven_id", "cert_path", "key_path",
                "ca_path", "serial", "thumbprint"):
        assert result[key], key
    assert {Path(result[k]).parent for k in ("cert_path", "key_path", "ca_path")} == {out}
    assert (out / "ca.pem").read_bytes() == (pki_dir / "ca.pem").read_bytes()
    client = Client.objects.get(application__client_id=result["client_id"])
    assert client.require_mtls and client.role == "ven"
    assert list(client.certificates.values_list("sha256", flat=True)) == [result["thumbprint"]]
    assert Ven.objects.get(id=result["ven_id"]).client_id == result["client_id"]
    assert result["ven_name"] == "acme-north"


def test_onboard_leaves_no_files_when_the_client_cannot_be_created(pki_dir: Path,
                                                                   tmp_path: Path) -> None:
    create_client(name="acme-taken", role="ven")
    out = tmp_path / "bundle"
    with pytest.raises(CommandError, match="already exists"):
        manage("pki", "onboard", "--fsp", "acme", "--site", "taken", "--dir", str(pki_dir),
               "--out", str(out))
    assert not (out / "taken.pem").exists() and not (out / "taken.key").exists()
    assert not IssuedCertificate.objects.exists()


def test_oadr_client_create_binds_an_existing_certificate(pki_dir: Path) -> None:
    issued = manage_json("pki", "issue-client", "--fsp", "acme", "--site", "east",
                         "--dir", str(pki_dir))
    created = manage_json("oadr_client", "create", "--role", "ven", "--name", "acme-east",
                          "--ven", "acme-east-ven", "--require-mtls", "--cert",
                          issued["cert_path"])
    assert created["require_mtls"] is True
    assert created["certificate_sha256"] == [issued["thumbprint"]]
    assert created["ven_id"] == Ven.objects.get(ven_name="acme-east-ven").id
    # A certificate binds to one client only.
    with pytest.raises(CommandError, match="already bound"):
        manage("oadr_client", "create", "--role", "ven", "--name", "other", "--cert",
               issued["cert_path"])


def test_binding_refuses_revoked_and_expired_certificates(pki_dir: Path) -> None:
    client = create_client(name="binder", role="ven", require_mtls=True).client
    ca = pki.load_ca(pki_dir)
    expired, _ = pki.issue_site_certificate(
        ca, fsp="acme", site="old", days=1,
        not_before=dt.datetime.now(dt.UTC) - dt.timedelta(days=3))
    with pytest.raises(ClientError, match="not valid now"):
        bind_certificate(client=client, certificate=expired)
    certificate, _ = certificates.issue_client_certificate(fsp="acme", site="gone",
                                                           pki_dir=pki_dir)
    certificates.revoke_certificate(serial=format(certificate.serial_number, "x"),
                                    pki_dir=pki_dir)
    with pytest.raises(ClientError, match="revoked"):
        bind_certificate(client=client, certificate=certificate)
    server, _ = pki.issue_certificate(ca, common_name="srv", usage="server",
                                      dns_names=["srv"])
    with pytest.raises(ClientError, match="client authentication"):
        bind_certificate(client=client, certificate=server)
    assert not ClientCertificate.objects.exists()


def test_require_mtls_default_applies_to_ven_clients_only(settings) -> None:
    assert create_client(name="plain-ven", role="ven").client.require_mtls is False
    settings.VTN_REQUIRE_MTLS_DEFAULT = True
    assert create_client(name="strict-ven", role="ven").client.require_mtls is True
    assert create_client(name="strict-bl", role="bl").client.require_mtls is False
    assert create_client(name="opt-out", role="ven", require_mtls=False).client.require_mtls \
        is False


# --- revocation, CRL and listing -------------------------------------------------------------


def test_revoke_marks_the_registry_moves_auth_and_writes_the_crl(pki_dir: Path) -> None:
    issued = manage_json("pki", "issue-client", "--fsp", "acme", "--site", "west",
                         "--dir", str(pki_dir))
    before = auth_generation()
    revoked = manage_json("pki", "revoke", "--serial", issued["serial"].upper(),
                          "--reason", "key lost", "--dir", str(pki_dir))
    assert revoked["revoked"] is True and revoked["crl_path"] == str(pki_dir / "crl.pem")
    assert auth_generation() != before
    crl = x509.load_pem_x509_crl((pki_dir / "crl.pem").read_bytes())
    ca = pki.load_certificate(pki_dir / "ca.pem")
    assert crl.is_signature_valid(ca.public_key())
    assert crl.get_revoked_certificate_by_serial_number(int(issued["serial"], 16)) is not None
    assert crl.next_update_utc > dt.datetime.now(dt.UTC)
    event = SecurityEvent.objects.get(kind="certificate_revoked")
    assert event.cert_sha256 == issued["thumbprint"] and "key lost" in event.detail
    with pytest.raises(CommandError, match="no issued certificate"):
        manage("pki", "revoke", "--serial", "abcdef", "--dir", str(pki_dir))


def test_list_shows_every_certificate_and_warns_about_expiry(pki_dir: Path, settings) -> None:
    settings.VTN_CERT_EXPIRY_WARNING_DAYS = 30
    soon = manage_json("pki", "issue-client", "--fsp", "acme", "--site", "soon", "--days",
                       "10", "--dir", str(pki_dir))
    later = manage_json("pki", "issue-client", "--fsp", "acme", "--site", "later",
                        "--dir", str(pki_dir))
    rows = {row["serial"]: row for row in manage_json("pki", "list", "--json")}
    assert rows[soon["serial"]]["expiring"] is True
    assert rows[soon["serial"]]["days_left"] in {9, 10}
    assert rows[later["serial"]]["expiring"] is False
    for row in rows.values():
        assert {"subject", "serial", "thumbprint", "not_after", "days_left",
                "revoked"} <= set(row)
    table = manage("pki", "list")
    warn_lines = [line for line in table.splitlines() if line.lstrip("\x1b[0123456789;m")
                  .startswith("WARN")]
    assert any(soon["serial"] in line for line in warn_lines), table
    assert "WARN: 1 certificate(s) expire within 30 days" in table


# --- the security log ------------------------------------------------------------------------


def test_security_events_cannot_be_changed_or_deleted() -> None:
    event = SecurityEvent.objects.create(kind="auth_failed", client_id="x", detail="first")
    event.detail = "rewritten"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        SecurityEvent.objects.filter(pk=event.pk).update(detail="rewritten")
    with pytest.raises(AppendOnlyError):
        SecurityEvent.objects.all().delete()
    assert SecurityEvent.objects.get(pk=event.pk).detail == "first"


def test_security_log_command_filters_and_prints_json_lines() -> None:
    SecurityEvent.objects.create(kind="token_issued", client_id="a", remote_addr="10.0.0.1")
    SecurityEvent.objects.create(kind="auth_failed", client_id="a")
    SecurityEvent.objects.create(kind="auth_failed", client_id="b")
    SecurityEvent.objects.create(kind="token_refused", client_id="b",
                                 time=dt.datetime.now(dt.UTC) - dt.timedelta(days=2))

    def lines(*args: str) -> list[dict]:
        return [json.loads(line) for line in manage("security_log", *args).splitlines()]

    assert [e["kind"] for e in lines("--client", "a")] == ["token_issued", "auth_failed"]
    assert {e["client_id"] for e in lines("--kind", "auth_failed")} == {"a", "b"}
    assert "token_refused" not in {e["kind"] for e in lines("--since", "1d")}
    newest = lines("--limit", "1")
    assert len(newest) == 1 and newest[0]["client_id"] == "b"
    assert set(newest[0]) == {"id", "time", "kind", "client_id", "remote_addr",
                              "cert_sha256", "detail"}


def test_rates_parse_as_count_per_period() -> None:
    assert ratelimit.parse_rate("30/min") == ratelimit.Rate(30, 60)
    assert ratelimit.parse_rate("5/10s") == ratelimit.Rate(5, 10)
    assert ratelimit.parse_rate("100/h") == ratelimit.Rate(100, 3600)
    assert ratelimit.parse_rate("1000/day") == ratelimit.Rate(1000, 86400)
    for bad in ("30", "x/min", "3/fortnight"):
        with pytest.raises(ValueError):
            ratelimit.parse_rate(bad)
