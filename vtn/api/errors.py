"""Django-level error handlers: problem documents even outside DRF views."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse

from vtn.api.problems import PROBLEM_CONTENT_TYPE, problem_body


def _problem(status_code: int, detail: str) -> JsonResponse:
    return JsonResponse(problem_body(status_code, detail), status=status_code,
                        content_type=PROBLEM_CONTENT_TYPE)


def too_large(limit: int) -> JsonResponse:
    """413 for a request body over ``limit`` bytes (``VTN_MAX_BODY_BYTES``)."""
    return _problem(413, f"The request body is larger than this VTN accepts ({limit} bytes).")


def bad_request(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    if isinstance(exception, RequestDataTooBig):
        return too_large(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
    return _problem(400, "The request could not be understood.")


def forbidden(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return _problem(403, "This request is not allowed.")


def not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return _problem(404, "No resource exists at this URL.")


def server_error(request: HttpRequest) -> JsonResponse:
    return _problem(500, "The server failed to handle the request; it has been logged.")


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
