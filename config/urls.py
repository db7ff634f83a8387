"""Top-level URLs: a landing page, both OpenADR versions side by side, the GB dispatch
and settlement APIs, the JWKS, the admin, the docs and the health probes."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from console.views.landing import landing
from dispatch.api.views import Jwks
from vtn.api.urls import version_patterns
from vtn.wire.v31 import Wire31
from vtn.wire.v301 import Wire301
from webserver import handlers, health

urlpatterns = [
    path("", landing, name="landing"),
    path("openadr3/3.1.0/", include(version_patterns(Wire31()))),
    path("openadr3/3.0.1/", include(version_patterns(Wire301()))),
    path("dispatch/api/v1/", include("dispatch.api.urls")),
    path("settlement/api/v1/", include("settlement.api.urls")),
    path("conformance/", include("conformance.urls")),
    path(".well-known/jwks.json", Jwks.as_view()),
    path("console/", include("console.urls")),
    # Load-balancer probes (unauthenticated; docs/operations.md).
    path("healthz", health.healthz),
    path("readyz", health.readyz),
]

if settings.VTN_ADMIN_ENABLED:
    # Two-factor and throttled (console/admin_site.py); VTN_ADMIN_ENABLED=false removes it.
    urlpatterns.append(path("admin/", admin.site.urls))

handler400 = handlers.bad_request
handler403 = handlers.forbidden
handler404 = handlers.not_found
handler500 = handlers.server_error
