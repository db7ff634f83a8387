"""Top-level URLs: both OpenADR versions side by side, the GB dispatch and settlement
APIs, the JWKS, the admin and the docs."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from dispatch.api.views import Jwks
from vtn.api import errors
from vtn.api.serializers.v31 import Wire31
from vtn.api.serializers.v301 import Wire301
from vtn.api.urls import version_patterns

urlpatterns = [
    path("openadr3/3.1.0/", include(version_patterns(Wire31()))),
    path("openadr3/3.0.1/", include(version_patterns(Wire301()))),
    path("dispatch/api/v1/", include("dispatch.api.urls")),
    path("settlement/api/v1/", include("settlement.api.urls")),
    path("conformance/", include("conformance.urls")),
    path(".well-known/jwks.json", Jwks.as_view()),
    path("console/", include("console.urls")),
]

if settings.VTN_ADMIN_ENABLED:
    # Two-factor and throttled (console/admin_site.py); VTN_ADMIN_ENABLED=false removes it.
    urlpatterns.append(path("admin/", admin.site.urls))

handler400 = errors.bad_request
handler403 = errors.forbidden
handler404 = errors.not_found
handler500 = errors.server_error
