"""Django-level error answers: problem documents even outside DRF views, and the
middlewares that refuse NUL characters and negotiate the problem media type.
(``webserver/handlers.py`` routes the console's paths to its own styled pages.)"""

from __future__ import annotations

import logging
import sys

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse

from vtn.api.problems import PROBLEM_CONTENT_TYPE, problem_body, problem_media_type

logger = logging.getLogger(__name__)


def _problem(status_code: int, detail: str) -> JsonResponse:
    return JsonResponse(problem_body(status_code, detail), status=status_code,
                        content_type=PROBLEM_CONTENT_TYPE)


def too_large(limit: int) -> JsonResponse:
    """413 for a request body over ``limit`` bytes (``VTN_MAX_BODY_BYTES``)."""
    return _problem(413, f"The request body is larger than this VTN accepts ({limit} bytes).")


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if isinstance(exception, RequestDataTooBig):
        return too_large(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
    return _problem(400, "The request could not be understood.")


def forbidden(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _problem(403, "This request is not allowed.")


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _problem(404, "No resource exists at this URL.")


def database_unavailable(exc: BaseException | None) -> bool:
    """Whether ``exc`` says the database cannot be reached or is locked (as opposed to a
    bug): connection refused or lost, server shutting down, SQLite's "database is locked"."""
    return isinstance(exc, (OperationalError, InterfaceError))


def retry_after_seconds() -> int:
    return int(getattr(settings, "VTN_RETRY_AFTER_SECONDS", 5))


def server_error(request: HttpRequest) -> HttpResponse:
    """The 500 handler. Django calls it while handling the exception, so the exception is
    at hand: a database that is down or locked is a 503 with Retry-After (the client
    should come back), not a server failure. The next request reconnects by itself."""
    exc = sys.exc_info()[1]
    if database_unavailable(exc):
        logger.warning("database unavailable: %s: %s", exc.__class__.__name__,
                       (str(exc).splitlines() or [""])[0][:200])
        response = _problem(503, "The service is temporarily unavailable; retry later.")
        response["Retry-After"] = str(retry_after_seconds())
        return response
    return _problem(500, "The server failed to handle the request; it has been logged.")


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """``CSRF_FAILURE_VIEW``: a 403 problem, or the console's styled page."""
    return _problem(403, "The request failed the cross-site request forgery check.")


class RefuseNulMiddleware:
    """400 for a URL whose path or query holds a NUL character: no database stores or
    compares one faithfully (PostgreSQL refuses it outright), so no view should see it.
    JSON bodies are checked by the serializers."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        if "\x00" in request.path or any(
                "\x00" in key or any("\x00" in value for value in values)
                for key, values in request.GET.lists()):
            return _problem(400, "NUL characters are not allowed in the URL.")
        return self.get_response(request)


class ProblemMediaTypeMiddleware:
    """Serve every problem document in the media type the client prefers.

    Producers (DRF's exception handler, the token endpoint, the middlewares, the Django
    error handlers) all mark problems ``application/problem+json``; this outermost
    middleware keeps that only when the request's ``Accept`` prefers it to
    ``application/json`` and otherwise serves ``application/json``, which is what both
    OpenADR documents declare for their error responses.
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        response = self.get_response(request)
        content_type = response.get("Content-Type", "")
        if content_type.startswith(PROBLEM_CONTENT_TYPE):
            chosen = problem_media_type(request.META.get("HTTP_ACCEPT", ""))
            if chosen != PROBLEM_CONTENT_TYPE:
                response["Content-Type"] = chosen + content_type[len(PROBLEM_CONTENT_TYPE):]
            vary = response.get("Vary")
            response["Vary"] = f"{vary}, Accept" if vary else "Accept"
        return response
