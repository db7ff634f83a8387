"""The URL configuration the settlement OpenAPI document is generated from."""

from django.urls import include, path

from settlement.api.urls import api_patterns

urlpatterns = [path("settlement/api/v1/", include(api_patterns))]
