"""Refuse revoked TLS client certificates before any view runs (docs/security.md)."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from vtn.api.problems import too_many_requests, unauthorized
from vtn.auth import mtls, ratelimit, security_log
from vtn.auth.mtls import PeerCertificate


class ClientCertificateMiddleware:
    """Attach the verified client certificate (or None) to every request
    (:func:`vtn.auth.mtls.attach_peer`); refuse revoked certificates with 401. Place it
    right after SecurityMiddleware."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        peer = mtls.attach_peer(request)
        if peer is None:
            return self.get_response(request)
        if mtls.is_revoked(request, peer):
            return self._refuse_revoked(request, peer)
        mtls.warn_if_expiring(peer)
        return self.get_response(request)

    @staticmethod
    def _refuse_revoked(request: HttpRequest, peer: PeerCertificate) -> HttpResponse:
        address = mtls.client_address(request)
        # Counted per (address, certificate): only whoever keeps presenting it is slowed.
        verdict = ratelimit.register_failure(address, f"cert:{peer.sha256}")
        if verdict.wait is not None:
            if verdict.first:
                security_log.record(security_log.Kind.RATE_LIMITED, remote_addr=address,
                                    cert_sha256=peer.sha256,
                                    detail=f"auth failures over budget (revoked certificate)"
                                           f" at {request.method} {request.path}")
            return too_many_requests("Too many failed authentications with this "
                                     "certificate.", verdict.wait)
        security_log.record(security_log.Kind.CERT_REVOKED, remote_addr=address,
                            cert_sha256=peer.sha256,
                            detail=f"serial {peer.serial} {peer.subject} {request.path}")
        return unauthorized("The TLS client certificate has been revoked.")
