"""Content-Security-Policy on every HTML page, and the request body size limit.

The console, the admin and the API documentation (Swagger UI from
drf-spectacular-sidecar, served by this VTN) load scripts, styles, fonts and images from
this origin only, and no inline script runs (``VTN_CSP``; the docs pages, whose Swagger UI
adds a ``<style>`` element, get ``VTN_CSP_DOCS`` with inline styles allowed). A view that
needs another policy sets the header itself and is left alone (the conformance report, a standalone
page with inline styles and no scripts, does).

Request bodies above ``VTN_MAX_BODY_BYTES`` are refused with 413 and a problem body
before any view reads them (by their Content-Length; Django reads no body without one,
and ``DATA_UPLOAD_MAX_MEMORY_SIZE`` is the same limit for form bodies, also answered 413 by
``webserver.handlers.bad_request``).
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from vtn.api.errors import too_large

CSP = "Content-Security-Policy"


DRAIN_MAX_BYTES = 16 * 1024 * 1024


def _drain(request: HttpRequest, length: int) -> None:
    """Read and drop an oversized body (up to 16 MiB) so that the client, which usually
    sends all of it before reading, gets the 413 and keeps its connection. A larger one
    is left unread: the connection then ends after the answer."""
    if length > DRAIN_MAX_BYTES:
        return
    stream = request.META.get("wsgi.input")
    remaining = length
    while stream is not None and remaining > 0:
        chunk = stream.read(min(remaining, 65536))
        if not chunk:
            break
        remaining -= len(chunk)


class SecurityHeadersMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = int(getattr(settings, "VTN_MAX_BODY_BYTES", 1_048_576))
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > limit:
            _drain(request, length)
            return too_large(limit)
        response = self.get_response(request)
        if response.get("Content-Type", "").startswith("text/html") and CSP not in response:
            docs = request.path.endswith("/docs")
            response[CSP] = settings.VTN_CSP_DOCS if docs else settings.VTN_CSP
        return response
