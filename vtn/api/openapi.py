"""drf-spectacular hook: the operator APIs' OpenAPI documents state their error answers.

The dispatch and settlement APIs answer every error with an RFC 7807 problem document,
served as ``application/json`` unless the request's ``Accept`` prefers
``application/problem+json`` (see ``vtn.api.errors.ProblemMediaTypeMiddleware``). This
hook adds a ``Problem`` schema and, to every operation, the error responses it can give
in both media types, so generated clients and schema checkers accept them.
"""

from __future__ import annotations

from vtn.api.problems import JSON_CONTENT_TYPE, PROBLEM_CONTENT_TYPE, TITLES

PROBLEM_SCHEMA = {
    "type": "object",
    "description": "An RFC 7807 problem document.",
    "properties": {
        "type": {"type": "string", "description": "A URI naming the problem type; "
                                                  "about:blank when the status says it all."},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string", "description": "What exactly was wrong."},
        "instance": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "string"},
                   "description": "Each violation, when a body broke several rules."},
    },
    "required": ["type", "title", "status", "detail"],
}

# Every operation can meet these; 404 and 409 where they apply (below).
COMMON: tuple[int, ...] = (400, 401, 403, 429, 500)
WRITES = ("post", "put", "patch", "delete")


def error_responses(statuses: tuple[int, ...]) -> dict:
    reference = {"$ref": "#/components/schemas/Problem"}
    return {str(status): {
        "description": TITLES.get(status, "Error") + (
            "; carries Retry-After" if status == 429 else ""),
        "content": {JSON_CONTENT_TYPE: {"schema": reference},
                    PROBLEM_CONTENT_TYPE: {"schema": reference}},
    } for status in statuses}


def problem_responses(result: dict, generator, request, public) -> dict:
    """POSTPROCESSING_HOOKS entry: add the Problem schema and the error responses."""
    result.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    for path, item in result.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            statuses = COMMON + (404,) if "{" in path or method in WRITES else COMMON
            if method in WRITES:
                statuses += (409,)
            for status, response in error_responses(tuple(sorted(statuses))).items():
                operation["responses"].setdefault(status, response)
    return result
