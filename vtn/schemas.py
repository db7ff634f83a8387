"""The official OpenADR OpenAPI documents, loaded once, and request validation against them.

Request bodies are checked against the exact component schemas of the document of
their version, so the VTN enforces the documents' own constraints (required fields,
lengths, patterns, formats, closed enumerations) instead of a hand-made copy.

Two validators hold the same schema. A compiled one (``jsonschema-rs``) decides whether
a body is accepted: it checks a report of hundreds of intervals in about a millisecond,
fifty times faster than the pure-Python one. Only when it refuses a body does the precise
one (``openapi-schema-validator``'s OpenAPI 3.0 validator) run, to name each violation;
it has the last word, so a body it finds no fault with is accepted as before.
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import cast

import jsonschema_rs
import yaml
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from jsonschema import FormatChecker
from jsonschema.exceptions import ValidationError
from openapi_schema_validator import OAS30Validator

from vtn.timing import parse_datetime

VERSION_31 = "3.1.0"
VERSION_301 = "3.0.1"
DOCUMENT_DIRS = {VERSION_31: "3.1.1", VERSION_301: "3.0.1"}
SERVER_FIELDS = ("id", "createdDateTime", "modificationDateTime", "objectType")
# 3.1 request schemas that use objectType as their discriminator keep it.
DISCRIMINATED = {"venRequest", "resourceRequest"}

format_checker = FormatChecker()


@format_checker.checks("date-time", raises=(ValueError, TypeError))
def _is_rfc3339(value: object) -> bool:
    if not isinstance(value, str) or "T" not in value.upper():
        return not isinstance(value, str)
    parse_datetime(value)
    return True


@format_checker.checks("uri", raises=(ValueError,))
def _is_uri(value: object) -> bool:
    if not isinstance(value, str):
        return True
    scheme, sep, rest = value.partition(":")
    return bool(sep and scheme and scheme[0].isalpha() and rest and " " not in value)


def _is_rfc3339_text(value: str) -> bool:
    """The ``date-time`` check of the compiled validator: the same rule, never raising."""
    try:
        return _is_rfc3339(value)
    except (ValueError, TypeError):
        return False


def _is_uri_text(value: str) -> bool:
    try:
        return _is_uri(value)
    except ValueError:
        return False


# The formats the documents use that the checker above knows; "int" and "float" are
# unknown to both validators and ignored by both.
FAST_FORMATS = {"date-time": _is_rfc3339_text, "uri": _is_uri_text}


# The official documents ship inside the package (Apache-2.0, LICENSE and NOTICE beside
# them); OPENADR_SPEC_DIR points elsewhere only to try other copies.
BUNDLED_SPEC_DIR = Path(__file__).resolve().parent / "openapi"


def document_path(version: str) -> Path:
    return Path(settings.OPENADR_SPEC_DIR) / DOCUMENT_DIRS[version] / "openadr3.yaml"


def missing_documents() -> str | None:
    """One sentence naming the official documents that cannot be read, or None."""
    missing = [str(document_path(version)) for version in DOCUMENT_DIRS
               if not document_path(version).is_file()]
    if not missing:
        return None
    if Path(settings.OPENADR_SPEC_DIR).resolve() == BUNDLED_SPEC_DIR:
        remedy = (f"the copy shipped in {BUNDLED_SPEC_DIR} is incomplete; restore it "
                  f"(git checkout -- vtn/openapi) or set OPENADR_SPEC_DIR to a directory "
                  f"holding 3.1.1/openadr3.yaml and 3.0.1/openadr3.yaml.")
    else:
        remedy = (f"set OPENADR_SPEC_DIR to a directory holding 3.1.1/openadr3.yaml and "
                  f"3.0.1/openadr3.yaml, or unset it to use the copies shipped in "
                  f"{BUNDLED_SPEC_DIR}.")
    return (f"The official OpenADR document{'s' if len(missing) > 1 else ''} "
            f"{' and '.join(missing)} {'are' if len(missing) > 1 else 'is'} missing: {remedy}")


@cache
def document(version: str) -> dict:
    """The parsed official document of a version (cached for the process)."""
    message = missing_documents()
    if message:
        raise ImproperlyConfigured(message)
    with document_path(version).open() as handle:
        return yaml.safe_load(handle)


@cache
def validator(version: str, component: str) -> OAS30Validator:
    """A validator for ``#/components/schemas/<component>`` of a version's document."""
    components = copy.deepcopy(document(version)["components"])
    schemas = components.get("schemas", {})
    _drop_discriminators(components, schemas)
    root = {"$ref": f"#/components/schemas/{component}", "components": components}
    root = {**cast(dict, _inline_references(root, schemas, ())), "components": components}
    return OAS30Validator(root, format_checker=format_checker)


@cache
def fast_validator(version: str, component: str) -> jsonschema_rs.Draft4Validator | None:
    """The compiled validator of the same schema as :func:`validator`, or None where the
    schema still has a discriminator (which only the precise validator implements) or a
    reference that could not be inlined (a recursive schema)."""
    schema = {key: value for key, value in cast(dict, validator(version, component).schema)
              .items() if key != "components"}
    if _has_keyword(schema, ("discriminator", "$ref")):
        return None
    return jsonschema_rs.Draft4Validator(cast(dict, _as_draft4(schema)), formats=FAST_FORMATS,
                                         validate_formats=True)


def _as_draft4(node: object) -> object:
    """An OpenAPI 3.0 schema as the JSON Schema draft 4 that means the same.

    OpenAPI 3.0's ``nullable: true`` lets null pass the ``type`` keyword of its own
    schema object and nothing else (``enum`` and the rest still apply), which is
    ``type: [T, "null"]``; ``example`` and ``default`` are annotations (the documents'
    YAML gives some of them dates, which are not JSON) and are left out."""
    if isinstance(node, list):
        return [_as_draft4(item) for item in node]
    if not isinstance(node, dict):
        return node
    result = {key: _as_draft4(value) for key, value in node.items()
              if key not in ("example", "default")}
    if result.get("nullable") is True and isinstance(result.get("type"), str):
        result["type"] = [result["type"], "null"]
    return result


def _has_keyword(node: object, keywords: tuple[str, ...]) -> bool:
    if isinstance(node, list):
        return any(_has_keyword(item, keywords) for item in node)
    if not isinstance(node, dict):
        return False
    return any(k in node for k in keywords) or any(_has_keyword(v, keywords)
                                                   for v in node.values())


def _inline_references(node: object, schemas: dict, seen: tuple[str, ...]) -> object:
    """``node`` with each ``$ref`` to a component schema replaced by (a copy of) that
    schema, once, when the validator is made: the validator then no longer resolves a
    reference for every object it checks (a third of the time on a report of hundreds
    of intervals). The keywords beside a ``$ref`` apply as well in OpenAPI 3.0's
    validator, so they are kept with the schema under ``allOf``; a reference back into
    a schema being inlined (a recursive schema) is left as it is."""
    if isinstance(node, list):
        return [_inline_references(item, schemas, seen) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    prefix = "#/components/schemas/"
    if isinstance(ref, str) and ref.startswith(prefix) and ref[len(prefix):] in schemas \
            and ref not in seen:
        target = _inline_references(schemas[ref[len(prefix):]], schemas, (*seen, ref))
        siblings = {key: _inline_references(value, schemas, seen)
                    for key, value in node.items() if key != "$ref"}
        if not siblings:
            return target
        earlier = siblings.get("allOf")
        return {**siblings, "allOf": [*(earlier if isinstance(earlier, list) else []), target]}
    return {key: _inline_references(value, schemas, seen) for key, value in node.items()}


def _drop_discriminators(node: object, schemas: dict) -> None:
    """Validate discriminated anyOf/oneOf as plain anyOf/oneOf where that is equivalent.

    A validator resolves a discriminator without ``mapping`` by using the value as a
    schema name. The 3.1 programRequest's payloadDescriptors discriminate on objectType
    values (EVENT_PAYLOAD_DESCRIPTOR, ...) that are no schema names, so every program
    with payload descriptors would be refused, and a non-string value would crash the
    validator. Where every alternative pins the property with an ``enum``, plain
    anyOf/oneOf picks the same alternative, so the discriminator is dropped.
    """
    if isinstance(node, list):
        for item in node:
            _drop_discriminators(item, schemas)
        return
    if not isinstance(node, dict):
        return
    discriminator = node.get("discriminator")
    if isinstance(discriminator, dict) and "mapping" not in discriminator:
        options = node.get("anyOf", []) + node.get("oneOf", [])
        name = discriminator.get("propertyName")

        def pins(option: object) -> bool:
            ref = option.get("$ref", "") if isinstance(option, dict) else ""
            target = schemas.get(ref.rsplit("/", 1)[-1], {}) if ref.startswith("#/") else {}
            return bool(target.get("properties", {}).get(name, {}).get("enum"))

        if options and all(pins(option) for option in options):
            del node["discriminator"]
    for value in node.values():
        _drop_discriminators(value, schemas)


class BodyError(ValueError):
    """A request body that breaks the document; ``errors`` lists each violation."""

    def __init__(self, errors: list[str]):
        super().__init__("; ".join(errors))
        self.errors = errors


def _describe(error: ValidationError) -> str:
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    location = path.lstrip(".") or "body"
    if error.validator in ("oneOf", "anyOf") and error.context:
        best = min(error.context, key=lambda e: len(list(e.absolute_path)) * -1)
        return _describe(best)
    return f"{location}: {error.message}"


def without_nulls(value: object) -> object:
    """Drop properties whose value is null: an explicit null means "not given".

    The documents make optional properties default to null, and common clients send
    null for every optional property, including some the schemas do not mark nullable.
    """
    if isinstance(value, dict):
        return {k: without_nulls(v) if isinstance(v, (dict, list)) else v
                for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) if isinstance(v, (dict, list)) else v for v in value]
    return value


def _fast_accepts(version: str, component: str, body: dict) -> bool:
    """Whether the compiled validator accepts ``body``; False where it has no say (no
    compiled validator, or a value that is not JSON, which only the precise one judges)."""
    fast = fast_validator(version, component)
    try:
        return fast is not None and fast.is_valid(body)
    except ValueError:
        return False


def validate_body(version: str, component: str, body: object) -> dict:
    """Check ``body`` against a component schema; returns it without server-owned fields.

    Server-owned metadata (id, createdDateTime, modificationDateTime, and objectType
    where it is not a discriminator) is ignored, as both documents require.
    """
    if not isinstance(body, dict):
        raise BodyError(["body: expected a JSON object"])
    keep = {"objectType"} if component in DISCRIMINATED else set()
    stripped = cast(dict, without_nulls(body))  # an object stays an object
    cleaned = {k: v for k, v in stripped.items() if k not in SERVER_FIELDS or k in keep}
    if _fast_accepts(version, component, cleaned):
        return cleaned
    errors = sorted(validator(version, component).iter_errors(cleaned), key=lambda e: list(e.path))
    if errors:
        raise BodyError([_describe(e) for e in errors[:10]])
    return cleaned
