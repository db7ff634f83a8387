"""RFC 7807 problem documents for every error the API returns."""

from __future__ import annotations

import logging

from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

logger = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"


class Problem(exceptions.APIException):
    """An API error with its HTTP status, a short title and a specific detail."""

    status_code = status.HTTP_400_BAD_REQUEST
    title = "Bad Request"

    def __init__(self, detail: str, *, errors: list[str] | None = None):
        super().__init__(detail)
        self.errors = errors or []


class BadRequest(Problem):
    pass


class NotFound(Problem):
    status_code = status.HTTP_404_NOT_FOUND
    title = "Not Found"


class Conflict(Problem):
    status_code = status.HTTP_409_CONFLICT
    title = "Conflict"


class Forbidden(Problem):
    status_code = status.HTTP_403_FORBIDDEN
    title = "Forbidden"


TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    409: "Conflict",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def problem_body(status_code: int, detail: str, *, errors: list[str] | None = None,
                 instance: str | None = None) -> dict:
    body: dict = {"type": "about:blank", "title": TITLES.get(status_code, "Error"),
                  "status": status_code, "detail": detail}
    if instance:
        body["instance"] = instance
    if errors:
        body["errors"] = errors
    return body


def problem_response(status_code: int, detail: str, *, errors: list[str] | None = None,
                     headers: dict | None = None) -> Response:
    response = Response(problem_body(status_code, detail, errors=errors), status=status_code,
                        headers=headers, content_type=PROBLEM_CONTENT_TYPE)
    return response


def problem_exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF exception handler rendering every error as application/problem+json."""
    headers: dict = {}
    if isinstance(exc, Http404):
        exc = NotFound("The requested object does not exist or is not visible to this client.")
    if isinstance(exc, exceptions.APIException):
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))
        detail = exc.detail
        errors = getattr(exc, "errors", None)
        if isinstance(detail, (list, dict)):
            errors = errors or _flatten(detail)
            detail = "The request is invalid."
        set_rollback()
        return problem_response(exc.status_code, str(detail), errors=errors, headers=headers)
    return None


def _flatten(detail: object, prefix: str = "") -> list[str]:
    if isinstance(detail, dict):
        return [e for k, v in detail.items() for e in _flatten(v, f"{prefix}{k}: ")]
    if isinstance(detail, list):
        return [e for v in detail for e in _flatten(v, prefix)]
    return [f"{prefix}{detail}"]
