"""Error answers: RFC 7807 problem documents, right status, nothing changed."""

from __future__ import annotations

import json

import pytest

from tests.fixtures.api import (
    OpenADRClient,
    event_body,
    expire_token,
    missing_id,
    new_actor,
    program_body,
    revoke,
    subscription_body,
)
from tests.spec import VERSION_31, VERSIONS
from vtn.models import Event, Program, Report, Resource, Subscription, Ven

# Errors are served as the documents declare them (application/json) unless the request
# prefers application/problem+json (tests/vtn/test_error_media_type.py).
PROBLEM = "application/json"


def counts() -> tuple[int, ...]:
    return tuple(m.objects.count() for m in (Program, Event, Report, Subscription, Ven,
                                             Resource))


def assert_problem(reply, status: int) -> None:
    assert reply.status == status, reply.json
    assert reply.content_type.startswith(PROBLEM)
    body = reply.json
    assert body["status"] == status
    assert body["type"]
    assert body["title"]
    assert body["detail"]


@pytest.fixture
def program(bl, version) -> dict:
    status, program = bl.api.post("/programs", program_body(version, "existing"))
    assert status == 201
    return program


# --- 400 ---------------------------------------------------------------------------------

BAD_PROGRAMS = {
    "missing-required-field": {"programDescriptions": [{"URL": "https://example.com"}]},
    "wrong-type": {"programName": 42},
    "name-longer-than-128": {"programName": "p" * 129},
    "empty-name": {"programName": ""},
    "bad-date-time": {"programName": "p", "intervalPeriod": {"start": "yesterday"}},
    "bad-duration": {"programName": "p", "intervalPeriod": {"start": "2024-01-01T00:00:00Z",
                                                            "duration": "1 hour"}},
    "nul-character": {"programName": "bad\x00name"},
    "non-object-body": ["programName", "p"],
    "string-body": "programName",
}


@pytest.mark.parametrize("body", BAD_PROGRAMS.values(), ids=BAD_PROGRAMS.keys())
def test_invalid_program_body_is_a_bad_request_and_changes_nothing(bl, program, version, body):
    before = counts()
    assert_problem(bl.api.post("/programs", body), 400)
    assert_problem(bl.api.put(f"/programs/{program['id']}", body), 400)
    assert counts() == before
    assert bl.api.get(f"/programs/{program['id']}")[1] == program


def test_invalid_event_body_is_a_bad_request(bl, program, version):
    before = counts()
    for bad in ({"intervals": []},  # no programID
                event_body(version, program["id"], priority=-1),
                event_body(version, program["id"], start="2024-13-45T00:00:00Z"),
                event_body(version, program["id"], intervals=[{"id": "x", "payloads": []}])):
        assert_problem(bl.api.post("/events", bad), 400)
    assert counts() == before


def test_unknown_subscription_operation_is_a_bad_request(ven_a, program, version):
    body = subscription_body(version, program["id"])
    body["objectOperations"][0]["operations"] = ["FOO"]
    before = counts()
    assert_problem(ven_a.api.post("/subscriptions", body), 400)
    assert counts() == before


def test_unknown_object_type_in_subscription_is_a_bad_request(ven_a, program, version):
    body = subscription_body(version, program["id"], objects=["PROGRAMME"])
    assert_problem(ven_a.api.post("/subscriptions", body), 400)


@pytest.mark.parametrize("raw", ['{"programName": "p"', "{'programName': 'p'}", "nonsense"],
                         ids=["truncated", "single-quotes", "not-json"])
def test_malformed_json_is_a_bad_request(bl, raw):
    before = counts()
    assert_problem(bl.api.request("POST", "/programs", data=raw), 400)
    assert counts() == before


@pytest.mark.parametrize("raw", [
    '{"programName": "p", "attributes": [{"type": "X", "values": [1e400]}]}',
    '{"programName": "p", "attributes": [{"type": "X", "values": [-1e400]}]}',
    '{"programName": "p", "attributes": [{"type": "X", "values": [1' + "0" * 40 + "]}]}",
    '{"programName": "p\\u0000"}',
    '{"programName": "p", "attributes": [{"type": "X\\u0000", "values": []}]}',
], ids=["huge-float", "huge-negative-float", "huge-integer", "nul-in-name", "nul-nested"])
def test_unstorable_values_are_a_bad_request_not_a_server_error(bl, raw):
    before = counts()
    assert_problem(bl.api.request("POST", "/programs", data=raw), 400)
    assert counts() == before


def test_huge_priority_is_a_bad_request(bl, program, version):
    body = event_body(version, program["id"], priority=2**40)
    assert_problem(bl.api.post("/events", body), 400)


def test_nul_character_in_a_query_parameter_is_a_bad_request(bl):
    assert_problem(bl.api.get("/vens", {"venName": "a\x00b"}), 400)


# --- 401 ---------------------------------------------------------------------------------

def test_missing_token_is_unauthorized(api, program):
    reply = api.get("/programs")
    assert_problem(reply, 401)
    assert reply.response["WWW-Authenticate"].startswith("Bearer")


def test_unknown_token_is_unauthorized(api, program):
    assert_problem(api.with_token("not-a-real-token").get("/programs"), 401)


def test_malformed_authorization_header_is_unauthorized(api, program):
    reply = api.get("/programs", headers={"Authorization": "Bearer a b c"})
    assert_problem(reply, 401)


def test_expired_token_is_unauthorized(bl, program):
    expire_token(bl.token)
    assert_problem(bl.api.get("/programs"), 401)


def test_token_of_a_revoked_client_is_unauthorized(bl, program):
    before = counts()
    revoke(bl)
    assert_problem(bl.api.get("/programs"), 401)
    assert_problem(bl.api.post("/programs", program_body(bl.version)), 401)
    assert counts() == before


def test_writes_without_a_token_change_nothing(api, program, version):
    before = counts()
    assert_problem(api.post("/programs", program_body(version)), 401)
    assert_problem(api.put(f"/programs/{program['id']}", program_body(version)), 401)
    assert_problem(api.delete(f"/programs/{program['id']}"), 401)
    assert counts() == before


# --- 403 ---------------------------------------------------------------------------------

def test_ven_without_write_programs_scope_is_forbidden(ven_a, program, version):
    before = counts()
    assert_problem(ven_a.api.post("/programs", program_body(version)), 403)
    assert_problem(ven_a.api.put(f"/programs/{program['id']}", program_body(version)), 403)
    assert_problem(ven_a.api.delete(f"/programs/{program['id']}"), 403)
    assert_problem(ven_a.api.post("/events", event_body(version, program["id"])), 403)
    assert counts() == before


def test_client_without_read_scope_is_forbidden(make_actor, program):
    writer = make_actor("writer", "bl", scopes=["write_programs"])
    assert_problem(writer.api.get("/programs"), 403)
    assert_problem(writer.api.get(f"/programs/{program['id']}"), 403)


def test_token_requested_with_fewer_scopes_is_limited_to_them(bl, program, version):
    status, body = OpenADRClient(version).request_token(bl.client_id, bl.secret, "read_all")
    assert status == 200
    reader = bl.api.with_token(body["access_token"])
    assert reader.get("/programs")[0] == 200
    assert_problem(reader.post("/programs", program_body(version)), 403)


# --- 404 ---------------------------------------------------------------------------------

@pytest.mark.parametrize("collection", ["programs", "events", "reports", "subscriptions",
                                        "vens"])
def test_unknown_id_is_not_found(bl, collection):
    assert_problem(bl.api.get(f"/{collection}/{missing_id()}"), 404)
    assert_problem(bl.api.delete(f"/{collection}/{missing_id()}"), 404)


@pytest.mark.parametrize("bad_id", ["bad!id", "a.b", "x" * 129, "%20"])
def test_id_with_illegal_characters_is_not_found(bl, program, bad_id):
    before = counts()
    assert_problem(bl.api.get(f"/programs/{bad_id}"), 404)
    assert_problem(bl.api.delete(f"/programs/{bad_id}"), 404)
    assert counts() == before


def test_put_to_unknown_id_is_not_found_and_creates_nothing(bl, version):
    before = counts()
    assert_problem(bl.api.put(f"/programs/{missing_id()}", program_body(version)), 404)
    assert counts() == before


def test_event_for_an_unknown_program_is_rejected(bl, version):
    before = counts()
    reply = bl.api.post("/events", event_body(version, missing_id()))
    assert reply.status in (400, 404, 409)
    assert_problem(reply, reply.status)
    assert counts() == before


def test_unknown_path_is_a_not_found_problem(bl):
    assert_problem(bl.api.get("/no-such-collection"), 404)


# --- 405, unsupported media type, 409 --------------------------------------------------------

def test_wrong_method_is_not_allowed(bl, program, version):
    before = counts()
    assert_problem(bl.api.patch(f"/programs/{program['id']}", {"programName": "x"}), 405)
    assert_problem(bl.api.put("/programs", program_body(version)), 405)
    assert_problem(bl.api.delete("/programs"), 405)
    assert counts() == before


def test_text_body_is_a_bad_request_naming_the_media_type(bl, version):
    """POST /programs lists no 415: the answer is 400, saying what was wrong."""
    before = counts()
    data = json.dumps(program_body(version))
    reply = bl.api.request("POST", "/programs", data=data, content_type="text/plain")
    assert_problem(reply, 400)
    assert "Unsupported Media Type" in reply.json["detail"]
    assert "text/plain" in reply.json["detail"]
    assert counts() == before


def test_conflict_is_a_problem_and_changes_nothing(bl, program, version):
    before = counts()
    assert_problem(bl.api.post("/programs", program_body(version, "existing")), 409)
    assert counts() == before


# --- the token endpoint ------------------------------------------------------------------------

@pytest.fixture
def issued(make_actor):
    return make_actor("token-client", "ven", ven_name="token-ven")


def test_token_endpoint_issues_a_bearer_token(api, issued):
    status, body = api.request_token(issued.client_id, issued.secret)
    assert status == 200
    assert body["token_type"] == "Bearer"
    assert body["access_token"]
    assert body["expires_in"] > 0
    assert api.with_token(body["access_token"]).get("/vens")[0] == 200


def test_token_endpoint_accepts_http_basic_credentials(api, issued):
    import base64

    basic = base64.b64encode(f"{issued.client_id}:{issued.secret}".encode()).decode()
    reply = api.post_form("/auth/token", {"grant_type": "client_credentials"},
                          headers={"Authorization": f"Basic {basic}"})
    assert reply.status == 200
    assert reply.json["token_type"] == "Bearer"


def test_wrong_secret_is_invalid_client(api, issued):
    reply = api.request_token(issued.client_id, "wrong-secret")
    assert_problem(reply, 401)
    assert reply.json["error"] == "invalid_client"


def test_unknown_client_is_invalid_client(api, db):
    reply = api.request_token("no-such-client", "secret")
    assert_problem(reply, 401)
    assert reply.json["error"] == "invalid_client"


def test_revoked_client_gets_no_token(api, issued):
    revoke(issued)
    reply = api.request_token(issued.client_id, issued.secret)
    assert reply.status == 401
    assert reply.json["error"] == "invalid_client"


def test_missing_grant_type_is_a_bad_request(api, issued):
    reply = api.post_form("/auth/token", {"client_id": issued.client_id,
                                          "client_secret": issued.secret})
    assert_problem(reply, 400)
    assert reply.json["error"] == "invalid_request"


def test_unsupported_grant_type_is_a_bad_request(api, issued):
    reply = api.post_form("/auth/token", {"grant_type": "password",
                                          "client_id": issued.client_id,
                                          "client_secret": issued.secret})
    assert_problem(reply, 400)
    assert reply.json["error"] == "unsupported_grant_type"


def test_json_token_request_is_invalid_request(api, issued):
    """RFC 6749 section 5.2 and both documents: 400 invalid_request, not 415."""
    reply = api.post("/auth/token", {"grant_type": "client_credentials",
                                     "client_id": issued.client_id,
                                     "client_secret": issued.secret})
    assert_problem(reply, 400)
    assert reply.json["error"] == "invalid_request"
    assert "application/json" in reply.json["error_description"]


def test_scope_the_client_does_not_hold_is_invalid_scope(api, issued):
    reply = api.request_token(issued.client_id, issued.secret, scope="write_programs")
    assert_problem(reply, 400)
    assert reply.json["error"] == "invalid_scope"


def test_client_secrets_are_hashed_at_rest(issued):
    from oauth2_provider.models import get_application_model

    stored = get_application_model().objects.get(client_id=issued.client_id).client_secret
    assert stored != issued.secret
    assert issued.secret not in stored


@pytest.mark.parametrize("version", [VERSION_31])
def test_auth_server_names_the_token_endpoint(api):
    status, body = api.get("/auth/server")
    assert status == 200
    assert body["tokenURL"].endswith("/openadr3/3.1.0/auth/token")


# --- notifiers (3.1) ------------------------------------------------------------------------

@pytest.mark.parametrize("version", [VERSION_31])
def test_notifiers_offer_the_webhook_binding_without_mqtt(ven_a):
    status, body = ven_a.api.get("/notifiers")
    assert status == 200
    assert body == {"WEBHOOK": True}


@pytest.mark.parametrize("version", [VERSION_31])
def test_notifiers_say_so_when_webhooks_are_off(ven_a, settings):
    settings.VTN_WEBHOOKS_ENABLED = False
    status, body = ven_a.api.get("/notifiers")
    assert status == 200
    assert body == {"WEBHOOK": False}


@pytest.mark.parametrize("version", [VERSION_31])
@pytest.mark.parametrize("topic", ["programs", "events", "reports", "subscriptions", "vens",
                                   "resources", "programs/p1", "programs/p1/events",
                                   "vens/v1", "vens/v1/events", "vens/v1/programs",
                                   "vens/v1/resources"])
def test_mqtt_topics_are_not_found(bl, topic):
    assert_problem(bl.api.get(f"/notifiers/mqtt/topics/{topic}"), 404)


def test_both_versions_share_clients_and_tokens(db, api_settings):
    actor = new_actor("shared", "bl", VERSION_31)
    for version in VERSIONS:
        assert actor.on(version).get("/programs")[0] == 200


@pytest.mark.django_db
@pytest.mark.parametrize("url", [
    "/dispatch/api/v1/report-intakes?operator=a%00b",
    "/dispatch/api/v1/dispatches?fsp=%00",
    "/settlement/api/v1/statements?contract=x%00",
    "/openadr3/3.1.0/programs?targets=%00",
    "/dispatch/api/v1/dispatches/EN%00WL/REF",
])
def test_a_nul_anywhere_in_the_url_is_a_problem_not_a_server_error(url):
    from django.test import Client

    operator = new_actor("operator", "bl", VERSION_31)
    response = Client().get(url, headers={"Authorization": f"Bearer {operator.token}"})
    assert response.status_code == 400 and response["Content-Type"] == PROBLEM
    assert "NUL" in response.json()["detail"]
