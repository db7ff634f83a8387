"""The dashboard and its self-refreshing fragment."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from console import selectors
from console.permissions import console_view
from console.views.common import operator_scope, page


@console_view()
def dashboard(request: HttpRequest) -> HttpResponse:
    return page(request, "console/dashboard.html", selectors.dashboard(
        scope=operator_scope(request)))


@console_view()
def dashboard_fragment(request: HttpRequest) -> HttpResponse:
    return page(request, "console/fragments/dashboard.html", selectors.dashboard(
        scope=operator_scope(request)))
