"""RFC 7807 problem documents for every error the API returns: the domain errors of
:mod:`vtn.errors`, DRF's own exceptions and Django's 404, rendered alike."""

from __future__ import annotations

import logging

from django.http import Http404, JsonResponse
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import set_rollback

from vtn.api import statuses
from vtn.errors import NotFound, Problem

logger = logging.getLogger(__name__)

# Every producer of a problem marks it with this media type; ProblemMediaTypeMiddleware
# (vtn/api/errors.py) then serves it as the client's Accept prefers: application/json
# (what both OpenADR documents declare, the default) or application/problem+json.
PROBLEM_CONTENT_TYPE = "application/problem+json"
JSON_CONTENT_TYPE = "application/json"


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


def unauthorized(detail: str, *, error: str = "invalid_token") -> JsonResponse:
    """401 problem+json with an RFC 6750 challenge."""
    response = JsonResponse(problem_body(401, detail) | {"error": error}, status=401,
                            content_type=PROBLEM_CONTENT_TYPE)
    response["WWW-Authenticate"] = f'Bearer realm="openadr", error="{error}"'
    response["Cache-Control"] = "no-store"
    return response


def too_many_requests(detail: str, wait: int, **extra: object) -> JsonResponse:
    """429 problem+json with Retry-After (seconds)."""
    response = JsonResponse(problem_body(429, detail) | extra, status=429,
                            content_type=PROBLEM_CONTENT_TYPE)
    response["Retry-After"] = str(wait)
    response["Cache-Control"] = "no-store"
    return response


def problem_media_type(accept: str) -> str:
    """The media type to serve a problem document in, by RFC 9110 content negotiation.

    ``application/problem+json`` when ``accept`` gives it a higher quality than
    ``application/json`` (each rated by its most specific matching range, so
    ``application/problem+json, */*;q=0.1`` prefers it), otherwise ``application/json``.
    """
    accept = accept.lower()
    if "problem" not in accept:  # the common case: no range can rate problem+json higher
        return JSON_CONTENT_TYPE
    ranges = []
    for part in accept.split(","):
        media, *params = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        ranges.append((media, quality))
    if _quality(ranges, PROBLEM_CONTENT_TYPE) > _quality(ranges, JSON_CONTENT_TYPE):
        return PROBLEM_CONTENT_TYPE
    return JSON_CONTENT_TYPE


def _quality(ranges: list[tuple[str, float]], media_type: str) -> float:
    main = media_type.split("/")[0]
    best, specificity = 0.0, -1
    for media, quality in ranges:
        rank = {media_type: 2, f"{main}/*": 1, "*/*": 0}.get(media, -1)
        if rank > specificity:
            best, specificity = quality, rank
    return best


def _undocumented_status(status_code: int, context: dict) -> bool:
    """True when an OpenADR operation would answer a status its document does not list
    (nor vtn.api.statuses.DEVIATIONS)."""
    wire = getattr(context.get("view"), "wire", None)
    request = context.get("request")
    if wire is None or request is None:
        return False
    base = f"/openadr3/{wire.version}"
    path = request.path_info
    if not path.startswith(base):
        return False
    template = statuses.operation(wire.version, request.method, path[len(base):])
    return template is not None and status_code not in statuses.allowed(
        wire.version, request.method, template)


def problem_exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF exception handler rendering every error as an RFC 7807 problem document.

    On an OpenADR operation, a status its document does not list (for example 409 on
    3.1 ``POST /vens``, or 415) is answered as 400, the detail saying what clashed.
    """
    headers: dict = {}
    if isinstance(exc, Http404):
        exc = NotFound("The requested object does not exist or is not visible to this client.")
    if isinstance(exc, (Problem, exceptions.APIException)):
        auth_header, wait = getattr(exc, "auth_header", None), getattr(exc, "wait", None)
        if auth_header:
            headers["WWW-Authenticate"] = auth_header
        if wait:
            headers["Retry-After"] = str(int(wait))
        detail = exc.detail
        errors = getattr(exc, "errors", None)
        if isinstance(detail, (list, dict)):
            errors = errors or _flatten(detail)
            detail = "The request is invalid."
        set_rollback()
        after_rollback = getattr(exc, "after_rollback", None)
        if after_rollback is not None:  # the view's transactions have ended by now
            after_rollback()
        status_code, detail = exc.status_code, str(detail)
        if status_code != 400 and _undocumented_status(status_code, context):
            detail = f"{TITLES.get(status_code, 'Error')}: {detail}"
            status_code = 400
        return problem_response(status_code, detail, errors=errors, headers=headers)
    return None


def _flatten(detail: object, prefix: str = "") -> list[str]:
    if isinstance(detail, dict):
        return [e for k, v in detail.items() for e in _flatten(v, f"{prefix}{k}: ")]
    if isinstance(detail, list):
        return [e for v in detail for e in _flatten(v, prefix)]
    return [f"{prefix}{detail}"]
