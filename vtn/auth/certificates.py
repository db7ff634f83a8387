"""Writes and reads for the certificate registry: issue, revoke, list, onboard a site.

``vtn.pki`` does the cryptography; this module keeps the database registry
(:class:`~vtn.models.IssuedCertificate`) in step with it, writes the files, and ties a
site's certificate to its OAuth2 client and VEN. Management commands stay thin wrappers.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from django.conf import settings
from django.db import transaction
from oauth2_provider.models import get_access_token_model

from vtn import generations, mqtt_acl, pki
from vtn.auth import security_log
from vtn.auth.services import ClientError, create_client
from vtn.models import Client, IssuedCertificate, Ven

AccessToken = get_access_token_model()


class CertificateError(ValueError):
    """A certificate cannot be issued, found or revoked as asked."""


def normalise_serial(serial: str) -> str:
    """Serial as lower-case hex without leading zeros, from ``0xAB``, ``AB:CD`` or ``abcd``."""
    text = serial.strip().lower().removeprefix("0x").replace(":", "")
    try:
        return format(int(text, 16), "x")
    except ValueError as exc:
        raise CertificateError(f"serial {serial!r} is not hexadecimal") from exc


def _out_paths(out_dir: Path, base: str) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    cert_path, key_path = out_dir / f"{base}.pem", out_dir / f"{base}.key"
    existing = [str(p) for p in (cert_path, key_path) if p.exists()]
    if existing:
        raise CertificateError(f"refusing to overwrite {', '.join(existing)}")
    return cert_path, key_path


def register(certificate: x509.Certificate, *, kind: str, fsp: str = "",
             site: str = "") -> IssuedCertificate:
    """Record a certificate the CA issued."""
    dns, ips = pki.subject_alt_names(certificate)
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound:
        uris = []
    issued = IssuedCertificate.objects.create(
        serial=format(certificate.serial_number, "x"), sha256=pki.thumbprint(certificate),
        kind=kind, subject=certificate.subject.rfc4514_string(), fsp=fsp, site=site,
        subject_alt_names=[*dns, *ips, *uris],
        not_before=certificate.not_valid_before_utc, not_after=certificate.not_valid_after_utc)
    security_log.record(security_log.Kind.CERTIFICATE_ISSUED, cert_sha256=issued.sha256,
                        detail=f"{kind} serial {issued.serial} {issued.subject}")
    return issued


def _summary(certificate: x509.Certificate, cert_path: Path, key_path: Path,
             ca_path: Path) -> dict:
    return {"serial": format(certificate.serial_number, "x"),
            "thumbprint": pki.thumbprint(certificate),
            "sha256": pki.fingerprint(certificate),
            "subject": certificate.subject.rfc4514_string(),
            "not_after": certificate.not_valid_after_utc.isoformat(),
            "cert_path": str(cert_path), "key_path": str(key_path), "ca_path": str(ca_path)}


@dataclass
class _SiteCertificate:
    certificate: x509.Certificate
    key: pki.PrivateKey
    summary: dict


def _prepare_site_certificate(*, fsp: str, site: str, pki_dir: Path, out_dir: Path | None,
                              key_type: pki.KeyType, days: int,
                              not_before: dt.datetime | None) -> _SiteCertificate:
    pki_dir = Path(pki_dir)
    out = Path(out_dir) if out_dir else pki_dir
    ca = pki.load_ca(pki_dir)
    pki.check_name(fsp, "FSP")
    cert_path, key_path = _out_paths(out, pki.check_name(site, "site"))
    certificate, key = pki.issue_site_certificate(ca, fsp=fsp, site=site, key_type=key_type,
                                                  days=days, not_before=not_before)
    register(certificate, kind=IssuedCertificate.Kind.CLIENT, fsp=fsp, site=site)
    ca_path = pki_dir / pki.CA_CERT if out.resolve() == pki_dir.resolve() else out / pki.CA_CERT
    summary = _summary(certificate, cert_path, key_path, ca_path) | {
        "fsp": fsp, "site": site, "urn": pki.site_urn(fsp, site)}
    return _SiteCertificate(certificate, key, summary)


def _write_site_files(prepared: _SiteCertificate, pki_dir: Path) -> None:
    summary = prepared.summary
    pki.write_private(Path(summary["key_path"]), pki.key_pem(prepared.key))
    pki.write_public(Path(summary["cert_path"]), pki.cert_pem(prepared.certificate))
    ca_path = Path(summary["ca_path"])
    if ca_path.resolve() != (Path(pki_dir) / pki.CA_CERT).resolve():
        pki.write_public(ca_path, (Path(pki_dir) / pki.CA_CERT).read_bytes())


@transaction.atomic
def issue_client_certificate(*, fsp: str, site: str, pki_dir: Path,
                             out_dir: Path | None = None, key_type: pki.KeyType = "ec",
                             days: int = pki.CLIENT_DAYS,
                             not_before: dt.datetime | None = None,
                             ) -> tuple[x509.Certificate, dict]:
    """Issue and register a site certificate; write ``SITE.pem`` and ``SITE.key`` (0600) to
    ``out_dir`` (default: the PKI directory), with a copy of ``ca.pem`` if that is another
    directory. Files are written last, so a database failure leaves none behind."""
    prepared = _prepare_site_certificate(fsp=fsp, site=site, pki_dir=pki_dir, out_dir=out_dir,
                                         key_type=key_type, days=days, not_before=not_before)
    _write_site_files(prepared, pki_dir)
    return prepared.certificate, prepared.summary


@transaction.atomic
def issue_server_certificate(*, pki_dir: Path, name: str, dns_names: list[str],
                             ip_addresses: list[str], out_dir: Path | None = None,
                             key_type: pki.KeyType = "ec", days: int = pki.SERVER_DAYS) -> dict:
    """Issue and register a server certificate; write ``NAME.pem`` (leaf then CA: the chain
    to configure in a TLS server) and ``NAME.key``."""
    pki_dir = Path(pki_dir)
    out = Path(out_dir) if out_dir else pki_dir
    ca = pki.load_ca(pki_dir)
    cert_path, key_path = _out_paths(out, pki.check_name(name, "name"))
    certificate, key = pki.issue_certificate(ca, common_name=name, usage="server",
                                             dns_names=dns_names, ip_addresses=ip_addresses,
                                             key_type=key_type, days=days)
    register(certificate, kind=IssuedCertificate.Kind.SERVER)
    pki.write_private(key_path, pki.key_pem(key))
    pki.write_public(cert_path, pki.cert_pem(certificate, ca.certificate))
    return _summary(certificate, cert_path, key_path, pki.PkiPaths(pki_dir).ca_cert) | {
        "dns_names": dns_names, "ip_addresses": ip_addresses}


def write_crl(pki_dir: Path) -> Path:
    """(Re)write ``crl.pem`` in ``pki_dir`` listing every revoked certificate of the registry,
    signed by the CA and valid for ``pki.CRL_DAYS`` days."""
    pki_dir = Path(pki_dir)
    ca = pki.load_ca(pki_dir)
    revoked = [(int(serial, 16), when) for serial, when in IssuedCertificate.objects.filter(
        revoked_at__isnull=False).values_list("serial", "revoked_at") if when is not None]
    crl = pki.build_crl(ca, revoked)
    path = pki_dir / pki.CRL
    pki.write_public(path, crl.public_bytes(Encoding.PEM))
    return path


@transaction.atomic
def revoke_certificate(*, serial: str, pki_dir: Path, reason: str = "") -> dict:
    """Revoke a registered certificate: refused on the next request in every process (the
    auth generation moves), tokens bound to it are deleted, and ``crl.pem`` is rewritten.
    Revoking an already revoked certificate only rewrites the CRL."""
    wanted = normalise_serial(serial)
    issued = IssuedCertificate.objects.select_for_update().filter(serial=wanted).first()
    if issued is None:
        raise CertificateError(f"no issued certificate with serial {wanted}")
    if issued.revoked_at is None:
        issued.revoked_at = dt.datetime.now(dt.UTC)
        issued.revocation_reason = reason[:128]
        issued.save(update_fields=["revoked_at", "revocation_reason"])
        AccessToken.objects.filter(vtn_binding__certificate_sha256=issued.sha256).delete()
        generations.bump(generations.AUTH)
        mqtt_acl.certificate_revoked(issued.subject)
        security_log.record(security_log.Kind.CERTIFICATE_REVOKED, cert_sha256=issued.sha256,
                            detail=f"serial {issued.serial} {issued.subject}"
                                   + (f" reason: {reason}" if reason else ""))
    crl_path = write_crl(pki_dir)
    return describe(issued) | {"crl_path": str(crl_path)}


def describe(issued: IssuedCertificate, now: dt.datetime | None = None) -> dict:
    """A JSON-ready row of the registry, with days left and an expiry warning flag."""
    now = now or dt.datetime.now(dt.UTC)
    days_left = (issued.not_after - now).days
    warning_days = settings.VTN_CERT_EXPIRY_WARNING_DAYS
    return {"serial": issued.serial, "thumbprint": issued.sha256, "kind": issued.kind,
            "subject": issued.subject, "fsp": issued.fsp, "site": issued.site,
            "not_after": issued.not_after.isoformat(), "days_left": days_left,
            "revoked": issued.revoked,
            "revoked_at": issued.revoked_at.isoformat() if issued.revoked_at else None,
            "expiring": not issued.revoked and 0 <= (issued.not_after - now).total_seconds()
            <= warning_days * 86400,
            "expired": issued.not_after <= now}


def list_certificates() -> list[dict]:
    """Every registered certificate, oldest first (see :func:`describe`)."""
    now = dt.datetime.now(dt.UTC)
    return [describe(issued, now) for issued in IssuedCertificate.objects.all()]


@transaction.atomic
def onboard_site(*, fsp: str, site: str, pki_dir: Path, out_dir: Path | None = None,
                 ven_name: str | None = None, client_name: str | None = None,
                 key_type: pki.KeyType = "ec") -> dict:
    """One step for a new FSP site: a VEN client that must use mTLS, bound to the site's
    VEN (created if needed), and a site certificate bound to that client.

    Names default to ``<fsp>-<site>`` for both the client and the VEN. Returns everything
    the site needs: client_id, client_secret (shown once), VEN name and id, and the
    certificate bundle (cert, key, CA) paths with serial and thumbprint.
    """
    ven_name = ven_name or f"{fsp}-{site}"
    client_name = client_name or f"{fsp}-{site}"
    if Client.objects.filter(name=client_name).exists():
        raise ClientError(f"a client named {client_name!r} already exists")
    prepared = _prepare_site_certificate(fsp=fsp, site=site, pki_dir=pki_dir, out_dir=out_dir,
                                         key_type=key_type, days=pki.CLIENT_DAYS,
                                         not_before=None)
    issued = create_client(name=client_name, role=Client.Role.VEN, ven_name=ven_name,
                           require_mtls=True, certificate=prepared.certificate)
    ven = Ven.objects.get(ven_name=ven_name)
    _write_site_files(prepared, pki_dir)  # last: a failure above leaves no files behind
    bundle = prepared.summary
    return {"client_id": issued.client.client_id, "client_secret": issued.client_secret,
            "name": issued.client.name, "role": issued.client.role,
            "scopes": sorted(issued.client.scope_set), "require_mtls": True,
            "ven_name": ven.ven_name, "ven_id": ven.id} | bundle


def load_certificate_file(path: Path) -> x509.Certificate:
    """The first certificate of a PEM file, with a readable error."""
    try:
        return pki.load_certificate(Path(path))
    except (OSError, ValueError, IndexError) as exc:
        raise CertificateError(f"cannot read a PEM certificate from {path}: {exc}") from exc
