"""Fault injection for the conformance sandbox: while a fault is active for a client, the
VTN answers that client's requests (all, or only its writes) with ``503`` and
``Retry-After``, as if it were unreachable or overloaded.

Installed only when ``CONFORMANCE_FAULTS_ENABLED`` is true (the sandbox and the tests):
**never on a production VTN**. Faults live in the database (:class:`InjectedFault`), so
every web process sees them; each process re-reads the active ones at most every
``REFRESH_SECONDS`` and costs nothing more while there are none. Requests answered with
503 are recorded (:class:`FaultHit`) as evidence of how the client backed off. The
sandbox's own API (``/conformance/``) is never faulted, so a run's status stays readable.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import time
from datetime import timedelta
from urllib.parse import unquote

from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.http import JsonResponse
from django.utils import timezone
from oauth2_provider.models import get_access_token_model

from conformance.models import FaultHit, InjectedFault

logger = logging.getLogger(__name__)
REFRESH_SECONDS = 0.5
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
EXEMPT_PREFIX = "/conformance/"  # the sandbox's own API stays reachable (run status)


class FaultInjectionMiddleware:
    def __init__(self, get_response):
        if not getattr(settings, "CONFORMANCE_FAULTS_ENABLED", False):
            raise MiddlewareNotUsed("conformance fault injection is disabled")
        self.get_response = get_response
        self._faults: list[tuple] = []
        self._loaded_at = 0.0
        self._clients: dict[str, str] = {}  # token checksum -> client id

    def __call__(self, request):
        faults = self._active()
        if faults and not request.path.startswith(EXEMPT_PREFIX):
            client_id = self._client_id(request)
            now = timezone.now()
            for fault_id, fault_client, scope, starts_at, ends_at, retry_after in faults:
                if client_id != fault_client or not starts_at <= now < ends_at:
                    continue
                if scope == InjectedFault.Scope.WRITES and request.method not in WRITE_METHODS:
                    continue
                return self._refuse(request, fault_id, retry_after, now)
        return self.get_response(request)

    def _active(self) -> list[tuple]:
        if time.monotonic() - self._loaded_at >= REFRESH_SECONDS:
            now = timezone.now()
            self._faults = list(InjectedFault.objects.filter(
                ends_at__gt=now, starts_at__lte=now + timedelta(seconds=1))
                .values_list("id", "client_id", "scope", "starts_at", "ends_at",
                             "retry_after_s"))
            self._loaded_at = time.monotonic()
        return self._faults

    def _client_id(self, request) -> str:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        kind, _, credentials = header.partition(" ")
        if kind.lower() == "bearer" and credentials:
            checksum = hashlib.sha256(credentials.strip().encode()).hexdigest()
            if checksum not in self._clients:
                token = get_access_token_model().objects.filter(
                    token_checksum=checksum).select_related("application").first()
                if token is None:
                    return ""
                if len(self._clients) > 10_000:
                    self._clients.clear()
                self._clients[checksum] = token.application.client_id
            return self._clients[checksum]
        if kind.lower() == "basic" and credentials:
            try:
                decoded = base64.b64decode(credentials.strip()).decode()
            except (ValueError, UnicodeDecodeError):
                return ""
            return unquote(decoded.partition(":")[0])
        if request.method == "POST" and request.path.endswith("/auth/token"):
            return request.POST.get("client_id", "")
        return ""

    @staticmethod
    def _refuse(request, fault_id: int, retry_after: int, now):
        try:
            FaultHit.objects.create(fault_id=fault_id, at=now, method=request.method,
                                    path=request.path[:255])
        except Exception:  # evidence only; the 503 is what matters
            logger.exception("could not record a fault hit")
        response = JsonResponse(
            {"type": "about:blank", "title": "Service Unavailable", "status": 503,
             "detail": "conformance sandbox: the VTN is unreachable for this client"},
            status=503, content_type="application/problem+json")
        response["Retry-After"] = str(retry_after)
        return response
