"""The TLS client certificate of a request, wherever TLS ends (docs/security.md).

* The VTN terminates TLS itself (``manage.py serve`` with ``VTN_TLS_CLIENT_CA``): the
  handshake has already verified the certificate against that CA; gunicorn's worker
  puts the socket in the WSGI environ as ``gunicorn.socket`` and we read the peer
  certificate from it.
* A reverse proxy terminates TLS: it verifies the certificate and forwards it, URL-encoded
  PEM (nginx ``$ssl_client_escaped_cert``), in ``VTN_CLIENT_CERT_HEADER``. The header is
  believed only when the connection comes from an address in ``VTN_TRUSTED_PROXIES``;
  from anyone else it is dropped. The same goes for ``X-Forwarded-For`` (the client's
  address) and ``X-Forwarded-Proto`` (the scheme).

:func:`attach_peer` puts the result on the request as
``request.client_cert`` (a :class:`PeerCertificate` or None); the API's
``ClientCertificateMiddleware`` (``vtn/api/middleware.py``) calls it on every request and
refuses, with 401, any request presenting a certificate the operator revoked.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import ipaddress
import logging
import ssl
import threading
from dataclasses import dataclass
from urllib.parse import unquote

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from django.conf import settings
from django.http import HttpRequest

from vtn import generations
from vtn.models import IssuedCertificate

logger = logging.getLogger("vtn.security")

# Where the validator of the token endpoint (which only sees META) finds the thumbprint.
META_THUMBPRINT = "VTN_CLIENT_CERT_SHA256"
META_CLIENT_ADDR = "VTN_CLIENT_ADDR"
VERIFY_HEADER = "HTTP_X_SSL_CLIENT_VERIFY"

_revoked: generations.ProcessCache[int, frozenset[str]] = generations.ProcessCache(
    max_entries=16)
_parsed: dict[str, PeerCertificate] = {}
_warned: dict[str, dt.date] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class PeerCertificate:
    """A verified client certificate: DER bytes, SHA-256 thumbprint (lower-case hex),
    serial (hex), subject (RFC 4514) and expiry."""

    der: bytes
    sha256: str
    serial: str
    subject: str
    not_after: dt.datetime


def thumbprint(der: bytes) -> str:
    """SHA-256 of a DER certificate as lower-case hex: the binding key everywhere."""
    return hashlib.sha256(der).hexdigest()


def peer_certificate(der: bytes) -> PeerCertificate:
    """Parse (and remember, per process) the certificate ``der``."""
    sha256 = thumbprint(der)
    known = _parsed.get(sha256)
    if known is None:
        certificate = x509.load_der_x509_certificate(der)
        known = PeerCertificate(der=der, sha256=sha256,
                                serial=format(certificate.serial_number, "x"),
                                subject=certificate.subject.rfc4514_string(),
                                not_after=certificate.not_valid_after_utc)
        with _lock:
            if len(_parsed) > 10_000:
                _parsed.clear()
            _parsed[sha256] = known
    return known


@functools.lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def is_trusted_proxy(address: str) -> bool:
    """True if ``address`` is in ``VTN_TRUSTED_PROXIES`` (IPs or CIDRs; empty: nobody)."""
    entries = settings.VTN_TRUSTED_PROXIES
    if not entries or not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in _networks(tuple(entries)))


@functools.lru_cache(maxsize=8)
def _header_meta_key(name: str) -> str:
    return "HTTP_" + name.upper().replace("-", "_")


def _from_proxy(meta: dict) -> PeerCertificate | None:
    value = meta.get(_header_meta_key(settings.VTN_CLIENT_CERT_HEADER), "")
    verify = meta.get(VERIFY_HEADER)
    if not value or (verify is not None and verify != "SUCCESS"):
        return None
    try:
        certificate = x509.load_pem_x509_certificate(unquote(value).encode())
    except ValueError:
        logger.warning("the trusted proxy sent an unreadable client certificate header")
        return None
    return peer_certificate(certificate.public_bytes(Encoding.DER))


def _from_socket(meta: dict) -> PeerCertificate | None:
    sock = meta.get("gunicorn.socket")
    if not isinstance(sock, ssl.SSLSocket):
        return None
    try:
        der = sock.getpeercert(binary_form=True)
    except (ValueError, OSError):
        return None
    return peer_certificate(der) if der else None


def client_address(request: HttpRequest) -> str:
    """The caller's address: REMOTE_ADDR, or what a trusted proxy says it saw."""
    return request.META.get(META_CLIENT_ADDR) or request.META.get("REMOTE_ADDR", "")


def revoked_certificates(auth_generation: int) -> frozenset[str]:
    """Thumbprints and serials of every revoked certificate, cached per auth generation
    (revoking a certificate bumps it, so every process sees the change at once)."""
    revoked = _revoked.get(auth_generation)
    if revoked is None:
        rows = IssuedCertificate.objects.filter(revoked_at__isnull=False).values_list(
            "sha256", "serial")
        revoked = frozenset(f"sha256:{s}" for s, _ in rows) | frozenset(
            f"serial:{n}" for _, n in rows)
        _revoked.put(auth_generation, revoked)
    return revoked


def current_generations(request: HttpRequest) -> tuple[int, int]:
    """The (targeting, auth) generations for this request, read at most once per request."""
    cached = getattr(request, "vtn_generations", None)
    if cached is None:
        cached = generations.current()
        request.vtn_generations = cached  # type: ignore[attr-defined]  # per-request memo
    return cached


def is_revoked(request: HttpRequest, peer: PeerCertificate) -> bool:
    _, auth = current_generations(request)
    revoked = revoked_certificates(auth)
    return f"sha256:{peer.sha256}" in revoked or f"serial:{peer.serial}" in revoked


def warn_if_expiring(peer: PeerCertificate) -> None:
    """Log a warning when ``peer`` expires within VTN_CERT_EXPIRY_WARNING_DAYS: at most once
    per certificate per process per day."""
    now = dt.datetime.now(dt.UTC)
    left = peer.not_after - now
    if left > dt.timedelta(days=settings.VTN_CERT_EXPIRY_WARNING_DAYS):
        return
    today = now.date()
    with _lock:
        if _warned.get(peer.sha256) == today:
            return
        _warned[peer.sha256] = today
    logger.warning("client certificate %s (serial %s, sha256 %s) expires %s, in %d days: "
                   "issue a replacement", peer.subject, peer.serial, peer.sha256,
                   peer.not_after.isoformat(), left.days)


def attach_peer(request: HttpRequest) -> PeerCertificate | None:
    """Read the request's verified client certificate (own TLS socket, or a trusted
    proxy's header), put it on the request as ``request.client_cert`` and return it.

    Only a trusted proxy may speak for the client: from anyone else the proxy headers are
    dropped. The thumbprint goes into META for the token endpoint's validator."""
    meta = request.META
    cert_key = _header_meta_key(settings.VTN_CLIENT_CERT_HEADER)
    meta.pop(META_THUMBPRINT, None)
    meta.pop(META_CLIENT_ADDR, None)
    if is_trusted_proxy(meta.get("REMOTE_ADDR", "")):
        peer = _from_proxy(meta)
        forwarded = meta.get("HTTP_X_FORWARDED_FOR", "").split(",")[-1].strip()
        if forwarded:
            meta[META_CLIENT_ADDR] = forwarded
        if meta.get("HTTP_X_FORWARDED_PROTO", "").lower() == "https":
            meta["wsgi.url_scheme"] = "https"
    else:
        # Never let a client speak for a proxy: drop what only a proxy may say.
        for key in (cert_key, VERIFY_HEADER):
            meta.pop(key, None)
        peer = _from_socket(meta)
    request.client_cert = peer  # type: ignore[attr-defined]  # read by authentication
    if peer is not None:
        meta[META_THUMBPRINT] = peer.sha256
    return peer
