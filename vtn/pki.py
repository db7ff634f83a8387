"""Development PKI: the operator's FSP certificate authority and the VTN's TLS certificate.

Everything here is plain Python on top of the ``cryptography`` package, so the
``manage.py pki`` command, tests and other tooling share one implementation.

A PKI directory holds, once :func:`init_pki` has run::

    ca.pem      the CA certificate (give this to VENs as their trust anchor)
    ca.key      the CA private key, mode 0600
    server.pem  the VTN's certificate followed by the CA certificate (the chain)
    server.key  the VTN's private key, mode 0600

:func:`issue_certificate` is the one place that signs certificates; client certificates
for FSP sites (:func:`issue_site_certificate`) are issued through it. :func:`build_crl`
signs the certificate revocation list that ``manage.py pki revoke`` writes as ``crl.pem``.
The registry of issued certificates (database) lives in ``vtn.auth.certificates``.

Site identity: a site certificate has subject ``O=<fsp>, CN=<site>`` and the
subjectAltName URI ``urn:gbflex:fsp:<fsp>:site:<site>`` (see :func:`site_urn`).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KeyType = Literal["ec", "rsa"]
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
Usage = Literal["server", "client"]

CA_CERT = "ca.pem"
CA_KEY = "ca.key"
SERVER_CERT = "server.pem"
SERVER_KEY = "server.key"
CRL = "crl.pem"
CLIENT_DAYS = 397
CRL_DAYS = 7
SITE_URN_PREFIX = "urn:gbflex:fsp:"
# FSP and site names: what is safe in a file name, a URN and a distinguished name.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
RESERVED_NAMES = frozenset({"ca", "server", "crl"})

CA_DAYS = 3650
SERVER_DAYS = 825
DEFAULT_CA_NAME = "GB Flex VTN development FSP CA"
DEFAULT_SERVER_NAME = "localhost"
DEFAULT_DNS_NAMES: tuple[str, ...] = ("localhost",)
DEFAULT_IP_ADDRESSES: tuple[str, ...] = ("127.0.0.1", "::1")
# A certificate with less than this much validity left is re-issued by init_pki.
RENEW_BEFORE = dt.timedelta(days=30)
# Backdate notBefore a little so that peers with a slow clock accept a fresh certificate.
CLOCK_SKEW = dt.timedelta(minutes=5)


class PkiError(Exception):
    """The PKI directory is not in a state the requested operation can work with."""


@dataclass(frozen=True)
class CertificateAuthority:
    """A CA certificate together with its private key."""

    certificate: x509.Certificate
    key: PrivateKey


# --- keys, files and descriptions ------------------------------------------------------------


def generate_key(key_type: KeyType = "ec") -> PrivateKey:
    """A new private key: EC P-256 (``"ec"``) or RSA 3072 (``"rsa"``)."""
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    raise PkiError(f"unknown key type {key_type!r}: use 'ec' or 'rsa'")


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    path.chmod(mode)


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically with mode 0600; the file is never group-readable."""
    _write_atomic(path, data, 0o600)


def write_public(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically with mode 0644."""
    _write_atomic(path, data, 0o644)


def key_pem(key: PrivateKey) -> bytes:
    """The key as unencrypted PKCS#8 PEM."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def cert_pem(*certificates: x509.Certificate) -> bytes:
    """The certificates as concatenated PEM, in the order given."""
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)


def load_certificate(path: Path) -> x509.Certificate:
    """The first certificate in a PEM file."""
    return x509.load_pem_x509_certificates(path.read_bytes())[0]


def load_key(path: Path) -> PrivateKey:
    """An unencrypted PEM private key."""
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise PkiError(f"{path}: unsupported key type {type(key).__name__}")
    return key


def thumbprint(certificate: x509.Certificate) -> str:
    """SHA-256 of the DER certificate as lower-case hex (the RFC 8705 binding key)."""
    return certificate.fingerprint(hashes.SHA256()).hex()


def fingerprint(certificate: x509.Certificate) -> str:
    """SHA-256 fingerprint as colon-separated upper-case hex (as ``openssl x509`` prints it)."""
    return certificate.fingerprint(hashes.SHA256()).hex(":").upper()


def describe(certificate: x509.Certificate, path: Path | None = None) -> dict:
    """A JSON-ready summary of a certificate: subject, serial (hex), fingerprint, validity,
    and its subjectAltName entries if it has any."""
    info: dict = {
        "subject": certificate.subject.rfc4514_string(),
        "issuer": certificate.issuer.rfc4514_string(),
        "serial": format(certificate.serial_number, "x"),
        "sha256": fingerprint(certificate),
        "not_before": certificate.not_valid_before_utc.isoformat(),
        "not_after": certificate.not_valid_after_utc.isoformat(),
    }
    if path is not None:
        info = {"path": str(path)} | info
    dns, ips = subject_alt_names(certificate)
    if dns or ips:
        info["dns_names"] = dns
        info["ip_addresses"] = ips
    return info


def subject_alt_names(certificate: x509.Certificate) -> tuple[list[str], list[str]]:
    """The certificate's DNS names and IP addresses from subjectAltName (empty if none)."""
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    return (san.get_values_for_type(x509.DNSName),
            [str(ip) for ip in san.get_values_for_type(x509.IPAddress)])


def _same_key(certificate: x509.Certificate, key: PrivateKey) -> bool:
    return certificate.public_key() == key.public_key()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# --- issuing -----------------------------------------------------------------------------------


def create_ca(*, common_name: str = DEFAULT_CA_NAME, key_type: KeyType = "ec",
              days: int = CA_DAYS) -> CertificateAuthority:
    """A new self-signed CA (basicConstraints CA:true, pathlen 0; keyCertSign and cRLSign)."""
    key = generate_key(key_type)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "GB Flex VTN (development)")])
    now = _now()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertificateAuthority(certificate=certificate, key=key)


def issue_certificate(ca: CertificateAuthority, *, common_name: str, usage: Usage,
                      dns_names: Iterable[str] = (), ip_addresses: Iterable[str] = (),
                      key_type: KeyType = "ec", days: int = SERVER_DAYS,
                      organization: str | None = None, uris: Iterable[str] = (),
                      not_before: dt.datetime | None = None,
                      ) -> tuple[x509.Certificate, PrivateKey]:
    """Issue an end-entity certificate signed by ``ca`` and return it with its new key.

    ``usage`` selects the extendedKeyUsage: ``"server"`` (serverAuth) or ``"client"``
    (clientAuth). DNS names, IP addresses and URIs go into subjectAltName; a server
    certificate needs at least one DNS name or IP address. ``organization`` adds an O
    attribute to the subject. The validity (from ``not_before``, default now) never
    outlasts the CA.
    """
    dns = list(dict.fromkeys(dns_names))
    ips = [ipaddress.ip_address(ip) for ip in dict.fromkeys(ip_addresses)]
    uri_names = list(dict.fromkeys(uris))
    if usage == "server" and not (dns or ips):
        raise PkiError("a server certificate needs at least one DNS name or IP address")
    key = generate_key(key_type)
    now = not_before or _now()
    not_after = min(now + dt.timedelta(days=days), ca.certificate.not_valid_after_utc)
    eku = ExtendedKeyUsageOID.SERVER_AUTH if usage == "server" else ExtendedKeyUsageOID.CLIENT_AUTH
    is_rsa = isinstance(key, rsa.RSAPrivateKey)
    subject = ([x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization)] if organization
               else []) + [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(subject))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=is_rsa,
            data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            ca.key.public_key()), critical=False)
    )
    if dns or ips or uri_names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]
                                        + [x509.IPAddress(ip) for ip in ips]
                                        + [x509.UniformResourceIdentifier(u)
                                           for u in uri_names]),
            critical=False)
    return builder.sign(ca.key, hashes.SHA256()), key


def check_name(value: str, what: str) -> str:
    """``value`` if it is a usable FSP or site name, else :class:`PkiError`."""
    if not NAME_PATTERN.match(value or "") or value.lower() in RESERVED_NAMES:
        raise PkiError(f"{what} {value!r} must be 1-63 letters, digits, '.', '_' or '-', "
                       f"start with a letter or digit, and not be one of "
                       f"{', '.join(sorted(RESERVED_NAMES))}")
    return value


def site_urn(fsp: str, site: str) -> str:
    """The identity URI of an FSP site: ``urn:gbflex:fsp:<fsp>:site:<site>`` (lower case)."""
    fsp, site = check_name(fsp, "FSP").lower(), check_name(site, "site").lower()
    return f"{SITE_URN_PREFIX}{fsp}:site:{site}"


def issue_site_certificate(ca: CertificateAuthority, *, fsp: str, site: str,
                           key_type: KeyType = "ec", days: int = CLIENT_DAYS,
                           not_before: dt.datetime | None = None,
                           ) -> tuple[x509.Certificate, PrivateKey]:
    """A clientAuth certificate for one FSP site: ``O=<fsp>, CN=<site>``, SAN URI
    :func:`site_urn`."""
    return issue_certificate(ca, common_name=check_name(site, "site"), usage="client",
                             organization=check_name(fsp, "FSP"), uris=[site_urn(fsp, site)],
                             key_type=key_type, days=days, not_before=not_before)


def site_identity(certificate: x509.Certificate) -> tuple[str, str] | None:
    """(fsp, site) from a certificate's ``urn:gbflex`` SAN URI, or None."""
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    for uri in san.get_values_for_type(x509.UniformResourceIdentifier):
        if uri.startswith(SITE_URN_PREFIX):
            fsp, _, site = uri[len(SITE_URN_PREFIX):].partition(":site:")
            if fsp and site:
                return fsp, site
    return None


def build_crl(ca: CertificateAuthority, revoked: Iterable[tuple[int, dt.datetime]], *,
              days: int = CRL_DAYS) -> x509.CertificateRevocationList:
    """A CRL signed by ``ca`` listing ``revoked`` (serial number, revocation time), valid
    for ``days``: re-issue it (``manage.py pki crl``) before then, or proxies that load it
    will refuse every client certificate."""
    now = _now()
    builder = (x509.CertificateRevocationListBuilder()
               .issuer_name(ca.certificate.subject)
               .last_update(now - CLOCK_SKEW)
               .next_update(now + dt.timedelta(days=days)))
    for serial, when in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build())
    return builder.sign(ca.key, hashes.SHA256())


def issued_by(certificate: x509.Certificate, ca: x509.Certificate) -> bool:
    """True if ``certificate`` names ``ca`` as issuer and carries a valid signature by it."""
    try:
        certificate.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


# --- the PKI directory --------------------------------------------------------------------------


@dataclass(frozen=True)
class PkiPaths:
    """Where the files of a PKI directory live."""

    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / CA_CERT

    @property
    def ca_key(self) -> Path:
        return self.directory / CA_KEY

    @property
    def server_cert(self) -> Path:
        return self.directory / SERVER_CERT

    @property
    def server_key(self) -> Path:
        return self.directory / SERVER_KEY


def load_ca(directory: Path) -> CertificateAuthority:
    """The CA kept in ``directory``. Raises :class:`PkiError` if it is missing or broken."""
    paths = PkiPaths(Path(directory))
    missing = [p.name for p in (paths.ca_cert, paths.ca_key) if not p.exists()]
    if missing:
        raise PkiError(f"{paths.directory}: no CA ({', '.join(missing)} missing); "
                       "run `manage.py pki init` first")
    ca = CertificateAuthority(load_certificate(paths.ca_cert), load_key(paths.ca_key))
    if not _same_key(ca.certificate, ca.key):
        raise PkiError(f"{paths.ca_key} does not belong to {paths.ca_cert}")
    return ca


def _ensure_directory(directory: Path) -> None:
    if not directory.exists():
        directory.mkdir(parents=True, mode=0o700)


def _server_cert_usable(paths: PkiPaths, ca: CertificateAuthority, dns: Sequence[str],
                        ips: Sequence[str]) -> bool:
    if not (paths.server_cert.exists() and paths.server_key.exists()):
        return False
    try:
        certificate = load_certificate(paths.server_cert)
        key = load_key(paths.server_key)
    except (ValueError, PkiError):
        return False
    have_dns, have_ips = subject_alt_names(certificate)
    wanted_ips = {str(ipaddress.ip_address(ip)) for ip in ips}
    return (_same_key(certificate, key)
            and issued_by(certificate, ca.certificate)
            and certificate.not_valid_after_utc - _now() > RENEW_BEFORE
            and set(dns) <= set(have_dns) and wanted_ips <= set(have_ips))


def init_pki(directory: Path | str, *, force: bool = False, key_type: KeyType = "ec",
             ca_name: str = DEFAULT_CA_NAME, server_name: str = DEFAULT_SERVER_NAME,
             dns_names: Sequence[str] = DEFAULT_DNS_NAMES,
             ip_addresses: Sequence[str] = DEFAULT_IP_ADDRESSES) -> dict:
    """Create (or complete) a development PKI in ``directory`` and describe it.

    Idempotent: an existing CA is reused, and so is an existing server certificate that
    this CA signed, that matches its key, covers the requested names and is valid for
    more than 30 more days; anything else is (re)issued. ``force=True`` replaces the CA
    and the server certificate. An expired CA, or half a CA (certificate without key or
    the reverse), is an error unless ``force`` is given.

    Returns a JSON-ready dict: ``directory``, and for ``ca`` and ``server`` the file
    paths, ``created`` (whether this call wrote them), subject, serial, SHA-256
    fingerprint and validity.
    """
    paths = PkiPaths(Path(directory).resolve())
    _ensure_directory(paths.directory)
    dns = list(dict.fromkeys(dns_names))
    ips = list(dict.fromkeys(ip_addresses))

    ca_created = force or not (paths.ca_cert.exists() or paths.ca_key.exists())
    if ca_created:
        ca = create_ca(common_name=ca_name, key_type=key_type)
        write_private(paths.ca_key, key_pem(ca.key))
        write_public(paths.ca_cert, cert_pem(ca.certificate))
    else:
        ca = load_ca(paths.directory)
        if ca.certificate.not_valid_after_utc <= _now():
            raise PkiError(f"the CA in {paths.ca_cert} has expired; use --force to replace it "
                           "(every certificate it issued must then be re-issued)")
        paths.ca_key.chmod(0o600)

    server_created = ca_created or not _server_cert_usable(paths, ca, dns, ips)
    if server_created:
        certificate, key = issue_certificate(ca, common_name=server_name, usage="server",
                                             dns_names=dns, ip_addresses=ips,
                                             key_type=key_type)
        write_private(paths.server_key, key_pem(key))
        write_public(paths.server_cert, cert_pem(certificate, ca.certificate))
    else:
        certificate = load_certificate(paths.server_cert)
        paths.server_key.chmod(0o600)

    return {
        "directory": str(paths.directory),
        "ca": {"path": str(paths.ca_cert), "key_path": str(paths.ca_key),
               "created": ca_created} | describe(ca.certificate),
        "server": {"path": str(paths.server_cert), "key_path": str(paths.server_key),
                   "created": server_created} | describe(certificate),
    }
