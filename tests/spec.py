"""Response validation against the official OpenADR OpenAPI documents.

Given a version, a method, a path (template or concrete), a status code and a JSON
body, find the operation in the version's document, pick the response schema for the
status (falling back to ``default``) and validate the body with ``OAS30Validator``,
resolving ``$ref`` within the document. Every error response must also be an RFC 7807
problem document (the document's own ``problem`` schema), including statuses the
document does not list for the operation (e.g. 409 on 3.1 POST /vens, 401 on 3.0.1).
"""

from __future__ import annotations

import copy
import json
import os
import re
from datetime import datetime
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from jsonschema import FormatChecker
from openapi_schema_validator import OAS30Validator

VERSION_31 = "3.1.0"
VERSION_301 = "3.0.1"
VERSIONS = (VERSION_31, VERSION_301)
DOCUMENT_DIRS = {VERSION_31: "3.1.1", VERSION_301: "3.0.1"}
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# Responses are validated against the official documents next to the project when they are
# there (../shared/openadr3), else against the copies the VTN ships in vtn/openapi/.
REPO_DIR = Path(__file__).resolve().parents[1]
SHARED_SPEC_DIR = REPO_DIR.parent / "shared" / "openadr3"
BUNDLED_SPEC_DIR = REPO_DIR / "vtn" / "openapi"
SPEC_DIR = Path(os.environ.get("OPENADR_SPEC_DIR")
                or (SHARED_SPEC_DIR if SHARED_SPEC_DIR.is_dir() else BUNDLED_SPEC_DIR))


class SpecViolation(AssertionError):
    """A response that does not conform to the official document."""


# --- format checking ---------------------------------------------------------------------

RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$"
)
format_checker = FormatChecker(formats=())


@format_checker.checks("date-time", raises=(ValueError,))
def _is_date_time(value: object) -> bool:
    """RFC 3339 date-time (the OpenAPI ``date-time`` format), strictly."""
    if not isinstance(value, str):
        return True
    if not RFC3339.match(value):
        return False
    datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    return True


# --- the documents -----------------------------------------------------------------------

def _relax_bl_request_object_type(doc: dict) -> None:
    """Remove the one contradiction of the 3.1.1 document's ven/resource responses.

    ``ven`` is allOf(objectMetadata, BlVenRequest) and ``resource`` is
    allOf(objectMetadata, BlResourceRequest). objectMetadata requires objectType to be
    one of objectTypes (VEN, RESOURCE, ...) while BlVenRequest/BlResourceRequest require
    it to be BL_VEN_REQUEST/BL_RESOURCE_REQUEST: no value satisfies both, so no server
    response could ever validate. The server answers VEN/RESOURCE (objectMetadata). For
    response validation only, the response schemas refer to a deep copy of the request
    schema without its objectType property (and without objectType in its ``required``);
    everything else, including objectMetadata's own objectType check, is kept.
    """
    schemas = doc["components"]["schemas"]
    for response_name, request_name in (("ven", "BlVenRequest"),
                                        ("resource", "BlResourceRequest")):
        request_ref = f"#/components/schemas/{request_name}"
        parts = schemas.get(response_name, {}).get("allOf", [])
        request = schemas.get(request_name, {})
        enum = request.get("properties", {}).get("objectType", {}).get("enum")
        if not any(p.get("$ref") == request_ref for p in parts) or enum is None:
            continue  # the defect is not present in this document
        if set(enum) & set(schemas["objectTypes"]["enum"]):
            continue  # satisfiable: nothing to relax
        relaxed = copy.deepcopy(request)
        del relaxed["properties"]["objectType"]
        relaxed["required"] = [r for r in relaxed.get("required", []) if r != "objectType"]
        relaxed_name = f"{request_name}AsResponse"
        schemas[relaxed_name] = relaxed
        for part in parts:
            if part.get("$ref") == request_ref:
                part["$ref"] = f"#/components/schemas/{relaxed_name}"


@cache
def document(version: str) -> dict:
    """The official document of a version, as used for response validation."""
    with (SPEC_DIR / DOCUMENT_DIRS[version] / "openadr3.yaml").open() as handle:
        doc = yaml.safe_load(handle)
    _relax_bl_request_object_type(doc)
    return doc


def _deref(doc: dict, node: dict) -> dict:
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), ref
        node = doc
        for part in ref[2:].split("/"):
            node = node[part]
    return node


def strip_prefix(version: str, path: str) -> str:
    """The document-relative path of a request path (no query, no /openadr3/<v>)."""
    path = urlsplit(path).path
    prefix = f"/openadr3/{version}"
    if path.startswith(prefix):
        path = path[len(prefix):]
    return path or "/"


@cache
def _templates(version: str) -> list[tuple[str, re.Pattern]]:
    """Path templates, literal ones first so /x/literal beats /x/{param}."""
    result = []
    for template in document(version)["paths"]:
        pattern = "^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$"
        result.append((template, re.compile(pattern)))
    return sorted(result, key=lambda item: item[0].count("{"))


def match_path(version: str, path: str) -> str | None:
    """The path template of the document matching ``path`` (template or concrete)."""
    path = strip_prefix(version, path)
    if path in document(version)["paths"]:
        return path
    for template, pattern in _templates(version):
        if pattern.match(path):
            return template
    return None


def operations(version: str) -> list[tuple[str, str, dict]]:
    """Every (METHOD, template, operation) of a version's document."""
    return [(method.upper(), template, op)
            for template, item in document(version)["paths"].items()
            for method, op in item.items() if method in HTTP_METHODS]


def find_operation(version: str, method: str, path: str) -> tuple[str | None, dict | None]:
    template = match_path(version, path)
    if template is None:
        return None, None
    return template, document(version)["paths"][template].get(method.lower())


def _json_schema(doc: dict, response: dict) -> tuple[bool, dict | None]:
    """(has content, schema) of a response object."""
    response = _deref(doc, response)
    content = response.get("content")
    if not content:
        return False, None
    media = content.get("application/json") or next(iter(content.values()))
    return True, media.get("schema")


@cache
def _validator(version: str, key: str, schema_json: str) -> OAS30Validator:
    schema = json.loads(schema_json)
    root = dict(schema) if isinstance(schema, dict) else {}
    root["components"] = document(version)["components"]
    return OAS30Validator(root, format_checker=format_checker)


def _validate(version: str, schema: dict, body: object, where: str) -> None:
    validator = _validator(version, where, json.dumps(schema, sort_keys=True, default=str))
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for error in errors[:8]:
            location = "/".join(str(p) for p in error.absolute_path) or "<body>"
            lines.append(f"  at {location}: {error.message[:300]}")
        raise SpecViolation(f"{where}: response does not conform to OpenADR {version}:\n"
                            + "\n".join(lines))


PROBLEM_REF = {"$ref": "#/components/schemas/problem"}


def validate_problem(version: str, status: int, body: object, where: str = "") -> None:
    """An error body must be a problem document whose ``status`` is the HTTP status."""
    if not isinstance(body, dict):
        raise SpecViolation(f"{where}: error response {status} is not a JSON problem document: "
                            f"{body!r:.300}")
    _validate(version, PROBLEM_REF, body, f"{where} (problem)")
    if "status" in body and body["status"] != status:
        raise SpecViolation(f"{where}: problem status {body['status']} != HTTP status {status}")


def validate_response(version: str, method: str, path: str, status: int,
                      body: object, *, has_body: bool = True) -> None:
    """Validate one response; raise :class:`SpecViolation` when it breaks the document.

    ``path`` may be a template (``/programs/{programID}``) or a concrete request path,
    with or without the ``/openadr3/<version>`` prefix. ``has_body`` is False when the
    response carried no body at all.
    """
    method = method.upper()
    template, operation = find_operation(version, method, path)
    where = f"{method} {template or path} -> {status}"
    is_error = status >= 400
    if operation is None:
        if is_error:
            validate_problem(version, status, body, where)
            return
        raise SpecViolation(f"{where}: no such operation in the OpenADR {version} document")
    doc = document(version)
    responses = operation.get("responses", {})
    response = responses.get(str(status)) or responses.get(status) or responses.get("default")
    if response is None:
        if is_error:
            validate_problem(version, status, body, where)
            return
        raise SpecViolation(f"{where}: status not listed for this operation "
                            f"(documented: {sorted(map(str, responses))})")
    has_content, schema = _json_schema(doc, response)
    if is_error:
        # Listed or not, with a schema or without one: an error is a problem document.
        validate_problem(version, status, body, where)
    if schema is not None:
        if not has_body:
            raise SpecViolation(f"{where}: the document defines a body, the response has none")
        _validate(version, schema, body, where)
    elif not has_content and not is_error and has_body and body not in (None, ""):
        raise SpecViolation(f"{where}: the document defines no body, got {body!r:.200}")
