"""The compiled validator accepts exactly what the precise validator accepts.

``vtn.schemas.validate_body`` lets the compiled validator (``jsonschema-rs``) accept a
body and runs the precise one (``openapi-schema-validator``'s OpenAPI 3.0 validator) only
to word a refusal. Strictness is kept only if the compiled validator never accepts a
body the precise one refuses; these tests compare the two on bodies Schemathesis
generates from both official documents (valid ones, and invalid ones of every kind it
knows), on random damage done to the agent's metering report, and on the faults the
documents' own keywords single out (nullable, formats, patterns, integer types).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import os
import pickle
import sys
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib import metadata

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.core import NotSet
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.schemas import OpenApiSchema

from tests.fixtures.cache import CACHE_DIR
from vtn.errors import BadRequest
from vtn.schemas import (
    SERVER_FIELDS,
    VERSION_31,
    VERSION_301,
    BodyError,
    document,
    document_path,
    fast_validator,
    validate_body,
    validator,
    without_nulls,
)
from vtn.wire.base import _check_storable

pytestmark = pytest.mark.slow

# Each POST and PUT body the VTN validates, by version: (path, method, component).
REQUESTS = {
    VERSION_31: [("/programs", "POST", "programRequest"), ("/events", "POST", "eventRequest"),
                 ("/reports", "POST", "reportRequest"),
                 ("/subscriptions", "POST", "subscriptionRequest"),
                 ("/vens", "POST", "venRequest"),
                 ("/resources", "POST", "resourceRequest")],
    VERSION_301: [("/programs", "POST", "program"), ("/events", "POST", "event"),
                  ("/reports", "POST", "report"), ("/subscriptions", "POST", "subscription"),
                  ("/vens", "POST", "ven"), ("/vens/{venID}/resources", "POST", "resource")],
}
CASES = [(version, *request) for version, requests in REQUESTS.items()
         for request in requests]
EXAMPLES = 25
# The libraries whose versions decide which bodies are generated.
GENERATORS = ("schemathesis", "hypothesis", "jsonschema-rs")


def decisions(version: str, component: str, body: object) -> tuple[bool, bool] | None:
    """(compiled accepts, precise accepts) for ``body`` as ``validate_body`` hands it to
    them; None when the wire format refuses the body before validation."""
    try:
        _check_storable(body)
    except BadRequest:
        return None
    if not isinstance(body, dict):
        return None
    keep = {"objectType"} if component in ("venRequest", "resourceRequest") else set()
    cleaned = {k: v for k, v in without_nulls(body).items()  # type: ignore[union-attr]
               if k not in SERVER_FIELDS or k in keep}
    fast = fast_validator(version, component)
    assert fast is not None
    precise = not any(True for _ in validator(version, component).iter_errors(cleaned))
    return fast.is_valid(cleaned), precise


def agree(version: str, component: str, body: object) -> bool | None:
    """Assert both validators decide ``body`` alike; returns the decision (accepted),
    None when the body is refused before validation."""
    found = decisions(version, component, body)
    if found is None:
        return None
    fast, precise = found
    shown = json.dumps(body, default=repr)[:600]
    assert fast == precise, (f"{version} {component}: compiled "
                             f"{'accepts' if fast else 'refuses'}, precise "
                             f"{'accepts' if precise else 'refuses'}: {shown}")
    return precise


def _document(version: str) -> dict:
    # YAML timestamps in examples become strings, as schemathesis' own loader keeps them.
    return json.loads(json.dumps(document(version), default=lambda value: value.isoformat()))


@cache
def _schema(version: str) -> OpenApiSchema:
    return schemathesis.openapi.from_dict(_document(version))


def _generate(version: str, path: str, method: str, mode: GenerationMode) -> list[object]:
    """The bodies of the ``EXAMPLES`` cases Schemathesis generates for the operation, in
    order (derandomized: the same documents and libraries give the same bodies)."""
    operation = _schema(version)[path][method]
    bodies: list[object] = []

    @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def collect(case) -> None:
        bodies.append(None if isinstance(case.body, NotSet) else case.body)

    collect()
    return bodies


def _generation_key(version: str, path: str, method: str, mode: GenerationMode) -> str:
    """What the generated bodies depend on: the document, the generating code and the
    versions of the libraries that generate."""
    parts = [document_path(version).read_bytes(), inspect.getsource(_generate).encode(),
             inspect.getsource(_document).encode(),
             repr((version, path, method, mode.value, EXAMPLES, sys.version_info[:2],
                   *(metadata.version(name) for name in GENERATORS))).encode()]
    return hashlib.sha256(b"\0".join(parts)).hexdigest()[:32]


def generated_bodies(version: str, path: str, method: str, mode: GenerationMode) -> list[object]:
    """The generated bodies, kept in the tests' cache (generating them is nearly all of
    this module's time; comparing the validators on them takes milliseconds). Pickled, as
    negative cases hold values JSON has not (bytes); kept only where reading them back
    gives the very same bodies."""
    stored = CACHE_DIR / "schema-parity" / f"{_generation_key(version, path, method, mode)}.pickle"
    try:
        return pickle.loads(stored.read_bytes())
    except (OSError, EOFError, ValueError, pickle.UnpicklingError):
        pass  # not there yet, or unreadable: generate
    bodies = _generate(version, path, method, mode)
    data = pickle.dumps(bodies)
    if repr(pickle.loads(data)) == repr(bodies):
        partial = stored.with_name(f"{stored.name}.{os.getpid()}")
        try:
            stored.parent.mkdir(parents=True, exist_ok=True)
            partial.write_bytes(data)
            partial.replace(stored)
        except OSError:
            pass  # a cache that cannot be written only means generating next time
    return bodies


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                         ids=lambda mode: mode.value)
@pytest.mark.parametrize(("version", "path", "method", "component"), CASES,
                         ids=[f"{v}-{c}" for v, _, _, c in CASES])
def test_both_validators_decide_alike_on_generated_bodies(version, path, method, component,
                                                          mode):
    bodies = generated_bodies(version, path, method, mode)
    assert len(bodies) == EXAMPLES
    seen = {found for body in bodies if (found := agree(version, component, body)) is not None}
    # Bodies were compared (negative cases may break a part of the request other than
    # the body, or be refused before validation; the damage test below refuses plenty).
    assert seen and (mode == GenerationMode.NEGATIVE or True in seen)


# --- random damage to the agent's metering report ---------------------------------------------

def agent_report(version: str) -> dict:
    day = datetime(2026, 11, 1, tzinfo=UTC)
    intervals = [{"id": p, "intervalPeriod": {
        "start": (day + timedelta(minutes=30 * p)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "duration": "PT30M"},
        "payloads": [{"type": "USAGE", "values": [0.25 + p / 100]},
                     {"type": "GB_REACTIVE", "values": [-0.125]}]} for p in range(4)]
    return {"programID": "p-1", "eventID": "e-1", "clientName": "agent",
            "reportName": "metering", "payloadDescriptors": [
                {"objectType": "REPORT_PAYLOAD_DESCRIPTOR", "payloadType": "USAGE",
                 "readingType": "DIRECT_READ", "units": "KWH"}],
            "resources": [{"resourceName": "u1", "intervals": intervals},
                          {"resourceName": "u2", "intervals": intervals[:1]}]}


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["", "PT30M", "PT30M\n", "P", "2026-11-01T00:00:00Z",
                       "2026-11-01T00:00:00", "2026-13-01T00:00:00Z", "USAGE", "KWH",
                       "REPORT_PAYLOAD_DESCRIPTOR", "a b", "x" * 129, "https://example.com",
                       "not a uri", "id with space", "-1", "1.5"]),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.sampled_from(["id", "start", "duration", "type", "values",
                                       "intervalPeriod", "payloads", "resourceName",
                                       "intervals", "x"]), children, max_size=3),
    max_leaves=6)


def _paths(node: object, path: tuple = ()) -> list[tuple]:
    found = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*path, index))
    return found


def _damaged(body: dict, path: tuple, value: object, remove: bool) -> object:
    if not path:
        return value
    copy = json.loads(json.dumps(body))
    parent = copy
    for step in path[:-1]:
        parent = parent[step]
    if remove:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return copy


@pytest.mark.parametrize(("version", "component"), [(VERSION_31, "reportRequest"),
                                                     (VERSION_301, "report")])
@settings(max_examples=200, derandomize=True, database=None, deadline=None,
          suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_both_validators_decide_alike_on_damaged_reports(version, component, data):
    body = agent_report(version)
    path = data.draw(st.sampled_from(_paths(body)))
    remove = bool(path) and data.draw(st.booleans())
    agree(version, component, _damaged(body, path, data.draw(JSON_VALUES), remove))


# --- the faults where OpenAPI 3.0 and plain JSON Schema part ----------------------------------

def _with_interval(interval: dict) -> dict:
    body = agent_report(VERSION_31)
    body["resources"][0]["intervals"] = [interval]
    return body


@pytest.mark.parametrize("interval", [
    {"id": 1.0, "payloads": [{"type": "USAGE", "values": [1]}]},  # integer type
    {"id": True, "payloads": [{"type": "USAGE", "values": [1]}]},
    {"id": 1, "payloads": [{"type": "USAGE", "values": [None]}]},  # null, not nullable
    {"id": 1, "payloads": [{"type": "USAGE", "values": [math.pi, "x", True]}]},
    {"id": 1, "intervalPeriod": {"start": "2026-13-01T00:00:00Z"},  # format date-time
     "payloads": [{"type": "USAGE", "values": [1]}]},
    {"id": 1, "intervalPeriod": {"start": "2026-11-01 00:00:00Z"},
     "payloads": [{"type": "USAGE", "values": [1]}]},
    {"id": 1, "intervalPeriod": {"start": "2026-11-01T00:00:00Z", "duration": "30M"},
     "payloads": [{"type": "USAGE", "values": [1]}]},  # pattern
    {"id": 1, "payloads": [{"type": "", "values": [1]}]},  # minLength
    {"id": 1, "payloads": []},
])
def test_both_validators_decide_alike_where_openapi_differs(interval):
    agree(VERSION_31, "reportRequest", _with_interval(interval))


def test_nullable_properties_take_null_in_both():
    body = agent_report(VERSION_31)
    body["resources"][0]["intervals"][0]["intervalPeriod"]["randomizeStart"] = None
    body["targets"] = [None]  # an item of a nullable list is not itself nullable
    agree(VERSION_31, "reportRequest", body)
    agree(VERSION_301, "report", {**agent_report(VERSION_301), "programID": None})


def test_a_body_the_compiled_validator_alone_refuses_is_judged_by_the_precise_one():
    # Python's `$` matches before a final newline, the compiled validator's does not: the
    # precise validator has the last word, so the body is decided as before.
    body = _with_interval({"id": 1, "intervalPeriod": {"start": "2026-11-01T00:00:00Z",
                                                       "duration": "PT30M\n"},
                           "payloads": [{"type": "USAGE", "values": [1]}]})
    assert decisions(VERSION_31, "reportRequest", body) == (False, True)
    assert validate_body(VERSION_31, "reportRequest", body)["resources"]


def test_a_refused_body_is_worded_by_the_precise_validator():
    body = _with_interval({"id": "one", "payloads": [{"type": "USAGE", "values": [1]}]})
    with pytest.raises(BodyError) as refused:
        validate_body(VERSION_31, "reportRequest", body)
    assert refused.value.errors == ["resources[0].intervals[0].id: 'one' is not of type "
                                    "'integer'"]


def test_every_request_body_has_a_compiled_validator():
    for version, requests in REQUESTS.items():
        for _, _, component in requests:
            assert fast_validator(version, component) is not None, (version, component)


def test_a_value_that_is_not_json_is_left_to_the_precise_validator():
    body = _with_interval({"id": 1, "payloads": [{"type": "USAGE", "values": [b"1"]}]})
    with pytest.raises(BodyError) as refused:
        validate_body(VERSION_31, "reportRequest", body)
    assert refused.value.errors
