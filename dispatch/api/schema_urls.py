"""The URL configuration the dispatch OpenAPI document is generated from (API paths only)."""

from django.urls import include, path

from dispatch.api.urls import api_patterns

urlpatterns = [path("dispatch/api/v1/", include(api_patterns))]
