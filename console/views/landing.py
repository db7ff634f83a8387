"""The landing page at ``/``: where everything is, for someone who just started the VTN."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

# (title, path, what it is); the paths are this server's own.
APIS = (
    ("OpenADR 3.1 API docs", "/openadr3/3.1.0/docs",
     "The VTN's OpenADR 3.1 API (per the 3.1.1 document), interactive."),
    ("OpenADR 3.0.1 API docs", "/openadr3/3.0.1/docs",
     "The same VTN through the 3.0.1 API."),
    ("Dispatch API docs", "/dispatch/api/v1/docs",
     "The operator's GB dispatch API: registry, dispatches, acknowledgements, readings."),
    ("Settlement API docs", "/settlement/api/v1/docs",
     "Statements, disputes and exports."),
    ("Dispatch signing keys (JWKS)", "/.well-known/jwks.json",
     "The public keys FSPs verify dispatch signatures with."),
)


@require_safe
def landing(request: HttpRequest) -> HttpResponse:
    return render(request, "console/landing.html", {
        "apis": APIS, "public_url": settings.VTN_PUBLIC_URL,
        "sandbox": bool(getattr(settings, "CONFORMANCE_SELF_SERVICE", False)),
    })
