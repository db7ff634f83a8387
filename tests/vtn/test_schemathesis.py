"""Property-based conformance of both API versions against the official OpenADR documents.

Schemathesis generates requests from the OpenADR 3.1.1 document (served at
/openadr3/3.1.0) and the 3.0.1 document (served at /openadr3/3.0.1) and sends them to the
VTN twice over: in-process through its WSGI application (inside the test's database
transaction), and over real HTTPS to the VTN server (``vtn_server``), as a third-party
client would, with the same checks.
Each generated case is sent either by a business logic (BL) client or by a VEN client
(Hypothesis draws which), with real tokens from the token endpoint; path parameters are
either generated or the ids of seeded objects (a program, an event, the VEN's ven,
resource, report and subscription). Every response must:

* not be a server error (``not_a_server_error``);
* have a status the operation lists (``status_code_conformance``), or one of the
  deliberate deviations in ``vtn/api/statuses.py`` (the table in docs/openadr-api.md,
  e.g. 401 in 3.0.1, 429);
* conform to the schema the document gives for its status code
  (``response_schema_conformance``) and use a documented media type
  (``content_type_conformance``): errors are ``application/json``, as declared;
* if it is an error, be an RFC 7807 problem document that validates against the
  document's ``problem`` schema, whether or not the document lists that status code.

The documents are loaded from the official files; the few places where a document cannot
describe a correct server are patched in an in-memory copy (see ``patched_document``).
Everything is deterministic (derandomized Hypothesis, no example database), so a failure
in CI reproduces locally.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client as DjangoClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from jsonschema import Draft4Validator, FormatChecker
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.openapi.checks import UndefinedStatusCode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from config.wsgi import application
from dispatch import scope as operator_scope
from dispatch.registry import NETWORK_OPERATORS
from tests.fixtures.server import PinnedSession, VtnServer
from vtn.api import statuses
from vtn.auth.services import create_client
from vtn.schemas import VERSION_31, VERSION_301, document

pytestmark = [pytest.mark.slow]

# What the documents declare for errors, and what the VTN sends unless Accept prefers
# application/problem+json.
ERROR_MEDIA_TYPE = "application/json"
BASE = {VERSION_31: "/openadr3/3.1.0", VERSION_301: "/openadr3/3.0.1"}
# Bounded and reproducible: a fixed number of generated cases per operation, no example
# database (so earlier runs do not change later ones), derandomized generation.
MAX_EXAMPLES = 10


# --- the documents, with their known defects patched in memory ------------------------------

def patched_document(version: str) -> dict:
    """A deep copy of the official document with its known contradictions patched.

    Only places where no correct server could pass are changed; everything else is
    checked exactly as published.
    """
    # A JSON round trip copies the document; YAML timestamps in examples become strings,
    # as schemathesis' own loader would keep them.
    raw = json.loads(json.dumps(document(version), default=lambda value: value.isoformat()))
    schemas = raw["components"]["schemas"]
    if version == VERSION_31:
        # (1) 3.1.1 defines the `ven` and `resource` responses as
        #     allOf[objectMetadata, BlVenRequest] (resp. BlResourceRequest). objectMetadata
        #     requires objectType from the objectTypes enum (... "VEN", "RESOURCE"), while
        #     BlVenRequest pins objectType to "BL_VEN_REQUEST": no value satisfies both,
        #     so every ven/resource response would fail. The server answers VEN / RESOURCE
        #     (the objectTypes value); keep the request schema's other constraints and
        #     drop only its objectType pin.
        for name, request, object_type in (("ven", "BlVenRequest", "VEN"),
                                           ("resource", "BlResourceRequest", "RESOURCE")):
            body = copy.deepcopy(schemas[request])
            body["properties"]["objectType"] = {"type": "string", "enum": [object_type]}
            schemas[name]["allOf"] = [{"$ref": "#/components/schemas/objectMetadata"}, body]
    return raw


# Phases: the documents' examples, then MAX_EXAMPLES generated cases (valid and invalid)
# per operation. Schemathesis' coverage phase (deterministic boundary and negative
# values, ~300 cases for a report body) is too slow for every run; set
# OADR_FUZZ_THOROUGH=1 to include it (and more generated cases), e.g. before a release.
THOROUGH = os.environ.get("OADR_FUZZ_THOROUGH") == "1"
CONFIG = {
    "generation": {"max-examples": MAX_EXAMPLES * (5 if THOROUGH else 1),
                   "deterministic": True, "database": "none"},
    "phases": {"coverage": {"enabled": THOROUGH}},
}


def load(version: str, *, in_process: bool = True):
    """The version's schema; sent to the WSGI application, or (``in_process`` False) over
    the network to the ``base_url`` each call names."""
    schema = schemathesis.openapi.from_dict(patched_document(version),
                                            config=SchemathesisConfig.from_dict(CONFIG))
    if in_process:
        schema.config.update(base_url=f"http://localhost{BASE[version]}")
        schema.app = application
    return schema


schema31 = load(VERSION_31)
schema301 = load(VERSION_301)
schema31_https = load(VERSION_31, in_process=False)
schema301_https = load(VERSION_301, in_process=False)
# Schemathesis hands each test a copy of its schema object, sharing the loaded document:
# the document tells the version.
VERSION_OF = {id(schema.raw_schema): version
              for schema, version in ((schema31, VERSION_31), (schema301, VERSION_301),
                                      (schema31_https, VERSION_31),
                                      (schema301_https, VERSION_301))}


def version_of(case) -> str:
    return VERSION_OF[id(case.operation.schema.raw_schema)]


# --- seeded objects and callers, chosen by Hypothesis per generated case ---------------------

# Filled by the ``seeded`` fixtures before each test, read while cases are generated:
# the in-process run's, and the HTTPS run's (its objects live in the server's database).
SEEDED: dict[str, str] = {}
TOKENS: dict[str, str] = {}
HTTPS_SEEDED: dict[str, str] = {}
HTTPS_TOKENS: dict[str, str] = {}
ROLES = ("bl", "ven")
PATH_PARAMETERS = {"programID": "program", "eventID": "event", "reportID": "report",
                   "subscriptionID": "subscription", "venID": "ven", "resourceID": "resource"}
ROLE_HEADER = "X-Test-Role"  # shows in schemathesis' reproduction command; servers ignore it


def _with_real_ids(seeded: dict[str, str]):
    def hook(context, path_parameters: dict):
        """Path parameters as generated, or (as often) the ids of the seeded objects."""
        real = {name: seeded[kind] for name, kind in PATH_PARAMETERS.items()
                if name in (path_parameters or {}) and kind in seeded}
        if not real:
            return st.just(path_parameters)
        return st.sampled_from([path_parameters, {**path_parameters, **real}])
    return hook


def _with_caller(tokens: dict[str, str]):
    def as_role(case, role: str):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {tokens[role]}",
                        ROLE_HEADER: role}
        return case

    def hook(context, case):
        """Each case is sent by the BL client or by the VEN client (drawn, so
        reproducible). One test per operation covers both roles, which halves generation
        time compared with a test per operation and role."""
        return st.sampled_from(ROLES).map(lambda role: as_role(case, role))
    return hook


for _schema, _seeded, _tokens in ((schema31, SEEDED, TOKENS), (schema301, SEEDED, TOKENS),
                                  (schema31_https, HTTPS_SEEDED, HTTPS_TOKENS),
                                  (schema301_https, HTTPS_SEEDED, HTTPS_TOKENS)):
    _schema.hook("flatmap_path_parameters")(_with_real_ids(_seeded))
    _schema.hook("flatmap_case")(_with_caller(_tokens))


def _token(client: DjangoClient, credentials: dict) -> str:
    response = client.post(f"{BASE[VERSION_31]}/auth/token", urlencode({
        "grant_type": "client_credentials",
        "client_id": credentials["client_id"],
        "client_secret": credentials["client_secret"],
    }), content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200, response.content
    return response.json()["access_token"]


def _post(client: DjangoClient, token: str, path: str, body: dict) -> dict:
    response = client.post(f"{BASE[VERSION_31]}{path}", json.dumps(body),
                           content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 201, response.content
    return response.json()


@pytest.fixture
def seeded(db, fast_hashing, settings) -> None:
    """A BL and a VEN client with real tokens, and one object of each kind."""
    # Generated callback URLs point at hosts that do not answer; the echo check has its
    # own tests (tests/vtn/test_webhooks.py).
    settings.VTN_WEBHOOK_VERIFY_CALLBACKS = False
    client = DjangoClient()
    issued = create_client(name="fuzz-bl", role="bl")
    operator_scope.set_operators(client=issued.client, operators=NETWORK_OPERATORS,
                                 changed_by="test")  # every network operator
    bl = issued.as_dict()
    ven = create_client(name="fuzz-ven", role="ven", ven_name="fuzz-ven-1").as_dict()
    bl_token, ven_token = _token(client, bl), _token(client, ven)
    ven_obj = json.loads(client.get(f"{BASE[VERSION_31]}/vens", HTTP_AUTHORIZATION=(
        f"Bearer {ven_token}")).content)[0]
    program = _post(client, bl_token, "/programs", {
        "programName": "fuzz-program", "targets": ["fuzz-group"],
        "intervalPeriod": {"start": "2030-01-01T00:00:00Z", "duration": "P1D"}})
    event = _post(client, bl_token, "/events", {
        "programID": program["id"], "eventName": "fuzz-event", "targets": ["fuzz-group"],
        "intervalPeriod": {"start": "2030-01-01T00:00:00Z", "duration": "PT1H"},
        "intervals": [{"id": 0, "payloads": [{"type": "PRICE", "values": [0.1]}]}]})
    # Grant the VEN the target, so that it sees the program and the event.
    response = client.put(f"{BASE[VERSION_31]}/vens/{ven_obj['id']}", json.dumps({
        "objectType": "BL_VEN_REQUEST", "venName": ven_obj["venName"],
        "clientID": ven["client_id"], "targets": ["fuzz-group"]}),
        content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {bl_token}")
    assert response.status_code == 200, response.content
    resource = _post(client, ven_token, "/resources", {
        "objectType": "VEN_RESOURCE_REQUEST", "resourceName": "fuzz-resource",
        "venID": ven_obj["id"]})
    report = _post(client, ven_token, "/reports", {
        "eventID": event["id"], "clientName": "fuzz-ven-1", "resources": [{
            "resourceName": "fuzz-resource",
            "intervals": [{"id": 0, "payloads": [{"type": "USAGE", "values": [1.0]}]}]}]})
    subscription = _post(client, ven_token, "/subscriptions", {
        "clientName": "fuzz-ven-1", "programID": program["id"], "objectOperations": [{
            "objects": ["EVENT"], "operations": ["CREATE"],
            "callbackUrl": "https://127.0.0.1:9/callback"}]})
    SEEDED.update(program=program["id"], event=event["id"], report=report["id"],
                  subscription=subscription["id"], ven=ven_obj["id"], resource=resource["id"])
    TOKENS.update(bl=bl_token, ven=ven_token)
    # Let the WSGI application run inside the test's transaction. Django closes
    # "obsolete" connections when a request starts and finishes; inside a transaction
    # (autocommit off) a PostgreSQL connection counts as obsolete, so the first request
    # would close it under the test. Django's test client (used above) disconnects the
    # same handlers around each of its requests, and reconnects them afterwards.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)
    SEEDED.clear()
    TOKENS.clear()


# --- checks ---------------------------------------------------------------------------------

_problem_validators: dict[str, Draft4Validator] = {}


def _problem_validator(version: str) -> Draft4Validator:
    if version not in _problem_validators:
        components = document(version)["components"]
        _problem_validators[version] = Draft4Validator(
            {"$ref": "#/components/schemas/problem", "components": components},
            format_checker=FormatChecker())
    return _problem_validators[version]


def error_is_problem(ctx, response, case) -> bool | None:
    """Any 4xx/5xx, documented for the operation or a listed deviation, is a valid
    problem document served as application/json."""
    if response.status_code < 400:
        return None
    content_type = (response.headers.get("content-type") or [""])[0].split(";")[0].strip()
    assert content_type == ERROR_MEDIA_TYPE, (
        f"{response.status_code} error served as {content_type!r}, not {ERROR_MEDIA_TYPE}")
    version = version_of(case)
    body = response.json()
    errors = [e.message for e in _problem_validator(version).iter_errors(body)]
    assert not errors, f"{response.status_code} problem body is invalid: {errors}"
    assert body.get("status") == response.status_code, body
    return None


def status_code_conformance_or_deviation(ctx, response, case) -> bool | None:
    """``status_code_conformance``, except for the deviations the VTN documents."""
    try:
        return status_code_conformance(ctx, response, case)
    except UndefinedStatusCode:
        version = version_of(case)
        allowed = statuses.allowed(version, case.method, case.path,
                                   frozenset(case.headers or {}))
        if response.status_code not in allowed:
            raise
        return None


CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


# The seeded objects are set up once per operation, not per generated case: the cases of
# one operation share them (and may change or delete them, which is fine).
FIXTURE_SETTINGS = settings(suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                  HealthCheck.too_slow])


def _run(case):
    # The Authorization header comes from _with_caller.
    case.call_and_validate(checks=CHECKS, additional_checks=[
        status_code_conformance_or_deviation, error_is_problem])


@schema31.parametrize()
@FIXTURE_SETTINGS
def test_openadr_31_conformance(case, seeded):
    _run(case)


@schema301.parametrize()
@FIXTURE_SETTINGS
def test_openadr_301_conformance(case, seeded):
    _run(case)


# --- the same run over real HTTPS -------------------------------------------------------------


@pytest.fixture(scope="module")
def https_callers(vtn_server: VtnServer) -> Iterator[dict]:
    """A BL client (every network operator) and a VEN client of the real VTN, their
    tokens, and one HTTPS session (connections are reused between cases)."""
    bl = vtn_server.create_client("bl", "fuzz-https-bl")
    ven = vtn_server.create_client("ven", "fuzz-https-ven", ven="fuzz-https-ven")
    session = PinnedSession()
    session.verify = vtn_server.ca_bundle
    try:
        yield {"server": vtn_server, "session": session, "ven": ven,
               "tokens": {"bl": vtn_server.token(bl), "ven": vtn_server.token(ven)}}
    finally:
        session.close()


def _https(callers: dict, role: str, method: str, path: str, body: dict | None = None,
           expected: int = 200) -> dict | list:
    response = callers["session"].request(
        method, callers["server"].url(VERSION_31, path), json=body, timeout=60,
        headers={"Authorization": f"Bearer {callers['tokens'][role]}"})
    assert response.status_code == expected, (method, path, response.text)
    return response.json()


@pytest.fixture
def https_seeded(https_callers: dict) -> Iterator[None]:
    """One object of each kind, made over HTTPS for each operation (an earlier operation's
    cases may have changed or deleted the previous ones)."""
    callers, server = https_callers, https_callers["server"]
    vens = _https(callers, "ven", "GET", "vens")
    ven_name = callers["ven"]["ven_name"]
    ven_obj = vens[0] if vens else _https(callers, "ven", "POST", "vens", {
        "objectType": "VEN_VEN_REQUEST", "venName": ven_name}, expected=201)
    group = server.unique("fuzz-https-group")
    _https(callers, "bl", "PUT", f"vens/{ven_obj['id']}", {
        "objectType": "BL_VEN_REQUEST", "venName": ven_obj["venName"],
        "clientID": callers["ven"]["client_id"], "targets": [group]})
    program = _https(callers, "bl", "POST", "programs", {
        "programName": server.unique("fuzz-https-program"), "targets": [group],
        "intervalPeriod": {"start": "2030-01-01T00:00:00Z", "duration": "P1D"}},
        expected=201)
    event = _https(callers, "bl", "POST", "events", {
        "programID": program["id"], "eventName": "fuzz-event", "targets": [group],
        "intervalPeriod": {"start": "2030-01-01T00:00:00Z", "duration": "PT1H"},
        "intervals": [{"id": 0, "payloads": [{"type": "PRICE", "values": [0.1]}]}]},
        expected=201)
    resource_name = server.unique("fuzz-https-resource")
    resource = _https(callers, "ven", "POST", "resources", {
        "objectType": "VEN_RESOURCE_REQUEST", "resourceName": resource_name,
        "venID": ven_obj["id"]}, expected=201)
    report = _https(callers, "ven", "POST", "reports", {
        "eventID": event["id"], "clientName": ven_obj["venName"], "resources": [{
            "resourceName": resource_name,
            "intervals": [{"id": 0, "payloads": [{"type": "USAGE", "values": [1.0]}]}]}]},
        expected=201)
    subscription = _https(callers, "ven", "POST", "subscriptions", {
        "clientName": ven_obj["venName"], "programID": program["id"], "objectOperations": [{
            "objects": ["EVENT"], "operations": ["CREATE"],
            "callbackUrl": "https://127.0.0.1:9/callback"}]}, expected=201)
    HTTPS_SEEDED.update(program=program["id"], event=event["id"], report=report["id"],
                        subscription=subscription["id"], ven=ven_obj["id"],
                        resource=resource["id"])
    HTTPS_TOKENS.update(callers["tokens"])
    yield
    HTTPS_SEEDED.clear()
    HTTPS_TOKENS.clear()


def _run_https(case, callers: dict) -> None:
    version = version_of(case)
    case.call_and_validate(
        base_url=callers["server"].url(version).rstrip("/"), session=callers["session"],
        verify=callers["server"].ca_bundle, timeout=60, checks=CHECKS,
        additional_checks=[status_code_conformance_or_deviation, error_is_problem])


@schema31_https.parametrize()
@FIXTURE_SETTINGS
def test_openadr_31_conformance_over_https(case, https_callers, https_seeded):
    _run_https(case, https_callers)


@schema301_https.parametrize()
@FIXTURE_SETTINGS
def test_openadr_301_conformance_over_https(case, https_callers, https_seeded):
    _run_https(case, https_callers)
