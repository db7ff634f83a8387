"""Django's error handlers (``handler400`` ... in ``config/urls.py``, ``CSRF_FAILURE_VIEW``):
the operator console's paths get its styled error page, everything else an RFC 7807
problem (``vtn/api/errors.py``). An oversized body is a 413 problem and a database that
is down or locked a 503 problem with Retry-After, on any path."""

from __future__ import annotations

import sys

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse

from console.views.errors import error_page
from vtn.api import errors

CONSOLE_PREFIX = "/console/"


def _for_console(request: HttpRequest) -> bool:
    return request.path.startswith(CONSOLE_PREFIX)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _for_console(request) and not isinstance(exception, RequestDataTooBig):
        return error_page(400, request)
    return errors.bad_request(request, exception)


def forbidden(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _for_console(request):
        return error_page(403, request)
    return errors.forbidden(request, exception)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _for_console(request):
        return error_page(404, request)
    return errors.not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if _for_console(request) and not errors.database_unavailable(sys.exc_info()[1]):
        return error_page(500, request)
    return errors.server_error(request)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    if _for_console(request):
        return error_page(403, request)
    return errors.csrf_failure(request, reason)
