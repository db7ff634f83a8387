"""The response validator itself: it rejects what the documents reject."""

from __future__ import annotations

import pytest

from tests import spec
from tests.spec import VERSION_31, VERSION_301, SpecViolation

META = {"id": "abc", "createdDateTime": "2024-01-01T00:00:00.000Z",
        "modificationDateTime": "2024-01-01T00:00:00Z"}
PROGRAM = META | {"objectType": "PROGRAM", "programName": "p"}


def test_concrete_paths_match_their_templates():
    assert spec.match_path(VERSION_31, "/openadr3/3.1.0/programs/abc?x=1") == \
        "/programs/{programID}"
    assert spec.match_path(VERSION_31, "/notifiers/mqtt/topics/programs") == \
        "/notifiers/mqtt/topics/programs"
    assert spec.match_path(VERSION_301, "/vens/v1/resources/r1") == \
        "/vens/{venID}/resources/{resourceID}"
    assert spec.match_path(VERSION_31, "/programs/{programID}") == "/programs/{programID}"


def test_valid_program_passes():
    spec.validate_response(VERSION_31, "GET", "/programs/{programID}", 200, PROGRAM)
    spec.validate_response(VERSION_301, "GET", "/programs", 200, [PROGRAM])


@pytest.mark.parametrize("body", [
    {k: v for k, v in PROGRAM.items() if k != "programName"},
    PROGRAM | {"programName": "p" * 129},
    PROGRAM | {"createdDateTime": "2024-01-01 00:00"},
    PROGRAM | {"objectType": "EVENT_X"},
    PROGRAM | {"intervalPeriod": {"start": "2024-01-01T00:00:00Z", "duration": "1h"}},
], ids=["missing-name", "long-name", "bad-date-time", "bad-object-type", "bad-duration"])
def test_invalid_program_is_rejected(body):
    with pytest.raises(SpecViolation):
        spec.validate_response(VERSION_31, "GET", "/programs/abc", 200, body)


def test_31_ven_response_with_object_type_ven_is_accepted():
    body = META | {"objectType": "VEN", "venName": "v", "clientID": "c"}
    spec.validate_response(VERSION_31, "GET", "/vens/abc", 200, body)


@pytest.mark.parametrize("object_type", ["BL_VEN_REQUEST", "VEN_VEN_REQUEST", None])
def test_31_ven_response_object_type_must_still_be_an_object_type(object_type):
    body = META | {"venName": "v", "clientID": "c"}
    if object_type:
        body["objectType"] = object_type
    with pytest.raises(SpecViolation):
        spec.validate_response(VERSION_31, "GET", "/vens/abc", 200, body)


def test_31_ven_response_still_requires_client_id():
    body = META | {"objectType": "VEN", "venName": "v"}
    with pytest.raises(SpecViolation):
        spec.validate_response(VERSION_31, "GET", "/vens/abc", 200, body)


def test_31_resource_response_relaxation_only_concerns_object_type():
    body = META | {"objectType": "RESOURCE", "resourceName": "r", "clientID": "c",
                   "venID": "v"}
    spec.validate_response(VERSION_31, "GET", "/resources/abc", 200, body)
    with pytest.raises(SpecViolation):
        spec.validate_response(VERSION_31, "GET", "/resources/abc", 200,
                               {k: v for k, v in body.items() if k != "venID"})


def test_original_document_is_contradictory_for_ven_responses():
    """The relaxation exists because the document itself cannot be satisfied."""
    import yaml

    with (spec.SPEC_DIR / "3.1.1" / "openadr3.yaml").open() as handle:
        schemas = yaml.safe_load(handle)["components"]["schemas"]
    assert schemas["BlVenRequest"]["properties"]["objectType"]["enum"] == ["BL_VEN_REQUEST"]
    assert "VEN" in schemas["objectTypes"]["enum"]
    assert "BL_VEN_REQUEST" not in schemas["objectTypes"]["enum"]


@pytest.mark.parametrize(("version", "method", "path", "status"), [
    (VERSION_31, "POST", "/vens", 409),  # not listed for this operation
    (VERSION_301, "GET", "/programs", 401),  # 3.0.1 lists no 401 at all
    (VERSION_31, "PATCH", "/programs/abc", 405),  # no such operation
    (VERSION_31, "GET", "/nowhere", 404),  # no such path
])
def test_unlisted_error_statuses_must_be_problem_documents(version, method, path, status):
    problem = {"type": "about:blank", "title": "T", "status": status, "detail": "d"}
    spec.validate_response(version, method, path, status, problem)
    for bad in ("plain text", [problem], problem | {"status": "409"},
                problem | {"status": status + 1}):
        with pytest.raises(SpecViolation):
            spec.validate_response(version, method, path, status, bad)


def test_undocumented_success_status_is_rejected():
    with pytest.raises(SpecViolation):
        spec.validate_response(VERSION_31, "GET", "/programs", 201, [])


def test_unknown_operation_success_is_rejected():
    with pytest.raises(SpecViolation):
        spec.validate_response(VERSION_31, "PATCH", "/programs/abc", 200, PROGRAM)
