"""The poll path: the lean middleware stack, replayed warm polls, change notifications.

Requests go through the real WSGI application (``config.wsgi``) in this process, as
gunicorn would call it, against the test database. Whether the framework ran for a
request is read from Django's own ``request_started`` signal.
"""

from __future__ import annotations

import io
import sys
import time

import psycopg
import pytest
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, connection
from django.test.utils import CaptureQueriesContext

from tests.fixtures.agent import wait_for
from tests.fixtures.api import (
    VERSION_31,
    clear_process_caches,
    event_body,
    expire_token,
    program_body,
    revoke,
)
from tests.fixtures.requirements import need_postgresql
from vtn import generations
from vtn.models import Generation
from webserver.routing import PathRoutedApplication

POLL = f"/openadr3/{VERSION_31}/events"


@pytest.fixture
def app(api_settings) -> PathRoutedApplication:
    return PathRoutedApplication()


@pytest.fixture
def framework_runs():
    """How many requests Django itself handled since the fixture began."""
    count = [0]

    def started(**kwargs) -> None:
        count[0] += 1

    request_started.connect(started)
    yield count
    request_started.disconnect(started)


def call(app: PathRoutedApplication, path: str, token: str | None = None, method: str = "GET",
         **headers: str) -> tuple[int, dict[str, str], bytes]:
    path, _, query = path.partition("?")
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query,
               "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8443", "HTTP_HOST": "127.0.0.1",
               "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "https",
               "wsgi.input": io.BytesIO(), "wsgi.errors": sys.stderr,
               "REMOTE_ADDR": "127.0.0.1", **headers}
    if token is not None:
        environ["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    answer: dict = {}

    def start_response(status: str, response_headers: list, exc_info=None) -> None:
        answer["status"], answer["headers"] = int(status.split()[0]), dict(response_headers)

    # As Django's test client does: the test's transaction must outlive the request.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        body = b"".join(app(environ, start_response))
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    return answer["status"], answer["headers"], body


@pytest.fixture
def program(bl) -> dict:
    status, body = bl.on(VERSION_31).post("/programs", program_body(VERSION_31))
    assert status == 201, body
    return body


def new_event(bl, program: dict, labels: list[str] | None = None) -> dict:
    status, body = bl.on(VERSION_31).post("/events", event_body(VERSION_31, program["id"],
                                                                 labels))
    assert status == 201, body
    return body


@pytest.mark.parametrize("version", [VERSION_31])
class TestReplayedPolls:
    def test_a_warm_poll_is_answered_without_the_framework_with_the_same_bytes(
            self, app, framework_runs, bl, ven_a, program) -> None:
        new_event(bl, program)
        first = call(app, POLL, ven_a.token)
        runs = framework_runs[0]
        second = call(app, POLL, ven_a.token)
        assert first[0] == 200 and second == first
        assert framework_runs[0] == runs
        assert second[1]["Strict-Transport-Security"].startswith("max-age=")
        assert second[1]["X-Content-Type-Options"] == "nosniff"

    def test_a_matching_etag_is_answered_304_and_a_stale_one_by_the_framework(
            self, app, framework_runs, bl, ven_a, program) -> None:
        status, headers, _ = call(app, POLL, ven_a.token)
        etag = headers["ETag"]
        assert call(app, POLL, ven_a.token, HTTP_IF_NONE_MATCH=etag)[0] == 304
        runs = framework_runs[0]
        status, again, body = call(app, POLL, ven_a.token, HTTP_IF_NONE_MATCH=etag)
        assert (status, body, again["ETag"]) == (304, b"", etag)
        assert framework_runs[0] == runs
        assert call(app, POLL, ven_a.token, HTTP_IF_NONE_MATCH='"stale"')[0] == 200
        assert framework_runs[0] == runs + 1

    def test_a_new_event_is_in_the_very_next_poll(self, app, bl, ven_a, program) -> None:
        call(app, POLL, ven_a.token)
        call(app, POLL, ven_a.token)
        event = new_event(bl, program)
        _, _, body = call(app, POLL, ven_a.token)
        assert event["id"].encode() in body

    def test_a_kept_decision_answers_the_same_question_until_anything_it_rests_on_moves(
            self, app, framework_runs, bl, grant, ven_a, program) -> None:
        event = new_event(bl, program)
        first = call(app, POLL, ven_a.token)
        etag = first[1]["ETag"]
        call(app, POLL, ven_a.token, HTTP_IF_NONE_MATCH=etag)
        runs = framework_runs[0]
        for _ in range(2):  # replayed with the full checks, then from the kept decisions
            assert call(app, POLL, ven_a.token) == first
            assert call(app, POLL, ven_a.token, HTTP_IF_NONE_MATCH=etag)[0] == 304
        assert framework_runs[0] == runs
        # Another question (query, a stale ETag) is not answered by those decisions.
        assert call(app, POLL + "?limit=1", ven_a.token)[0] == 200
        assert call(app, POLL, ven_a.token, HTTP_IF_NONE_MATCH='"other"')[2] == first[2]
        # A write moves the targeting counter: the next polls see it.
        grant(ven_a, ["north"])
        north = new_event(bl, program, ["north"])
        status, headers, body = call(app, POLL, ven_a.token, HTTP_IF_NONE_MATCH=etag)
        assert status == 200 and north["id"].encode() in body and headers["ETag"] != etag
        assert event["id"].encode() in call(app, POLL, ven_a.token)[2]
        # Revocation moves the auth counter: refused at once, whatever was kept.
        call(app, POLL, ven_a.token)
        revoke(ven_a)
        assert call(app, POLL, ven_a.token)[0] == 401

    def test_each_audience_gets_its_own_answer(self, app, bl, grant, ven_a, ven_b,
                                               program) -> None:
        grant(ven_a, ["north"])
        grant(ven_b, ["south"])
        north = new_event(bl, program, ["north"])
        south = new_event(bl, program, ["south"])
        for _ in range(2):
            _, _, for_a = call(app, POLL, ven_a.token)
            _, _, for_b = call(app, POLL, ven_b.token)
            assert north["id"].encode() in for_a and south["id"].encode() not in for_a
            assert south["id"].encode() in for_b and north["id"].encode() not in for_b

    def test_business_logic_callers_of_different_operators_never_share_an_answer(
            self, app, framework_runs, bl, version) -> None:
        from tests.fixtures.api import new_actor

        north = new_actor("north-ops", "bl", version, operators=["ENWL"])
        south = new_actor("south-ops", "bl", version, operators=["SPEN-D"])
        everyone = new_actor("shared-ops", "bl", version)
        programs = {}
        for actor in (north, south):
            status, body = actor.on(version).post("/programs", program_body(version))
            assert status == 201, body
            programs[actor.name] = body["id"].encode()
        path = f"/openadr3/{version}/programs"
        for _ in range(2):  # the second round is answered from the replay cache
            _, _, for_north = call(app, path, north.token)
            _, _, for_south = call(app, path, south.token)
            _, _, for_all = call(app, path, everyone.token)
            assert programs["north-ops"] in for_north and programs["south-ops"] not in for_north
            assert programs["south-ops"] in for_south and programs["north-ops"] not in for_south
            assert programs["north-ops"] in for_all and programs["south-ops"] in for_all
        runs = framework_runs[0]
        call(app, path, north.token)
        assert framework_runs[0] == runs  # replayed, and still only its own

    def test_a_revoked_client_is_refused_at_once(self, app, ven_a, program) -> None:
        assert call(app, POLL, ven_a.token)[0] == 200
        assert call(app, POLL, ven_a.token)[0] == 200
        revoke(ven_a)
        status, headers, _ = call(app, POLL, ven_a.token)
        assert status == 401 and 'error="invalid_token"' in headers["WWW-Authenticate"]

    def test_an_expired_token_is_refused(self, app, ven_a, program) -> None:
        assert call(app, POLL, ven_a.token)[0] == 200
        expire_token(ven_a.token)
        assert call(app, POLL, ven_a.token)[0] == 401

    def test_a_token_without_the_read_scope_is_not_served(self, app, make_actor,
                                                          program) -> None:
        writer = make_actor("writer", "ven", scopes=["write_reports"], ven_name="writer")
        assert call(app, POLL, writer.token)[0] == 403
        assert call(app, POLL, writer.token)[0] == 403

    def test_other_methods_and_preconditions_go_through_the_framework(
            self, app, framework_runs, ven_a, program) -> None:
        call(app, POLL, ven_a.token)
        runs = framework_runs[0]
        call(app, POLL, ven_a.token, method="HEAD")
        call(app, POLL, ven_a.token, HTTP_IF_MODIFIED_SINCE="Sun, 29 Nov 2026 12:00:00 GMT")
        assert call(app, POLL + "?skip=%00", ven_a.token)[0] == 400
        assert framework_runs[0] == runs + 3


def queried_tables(app, token: str) -> str:
    """The SQL a poll ran, lower-cased (its status must be 200)."""
    with CaptureQueriesContext(connection) as queries:
        assert call(app, POLL, token)[0] == 200
    return " ".join(query["sql"] for query in queries.captured_queries).lower()


@pytest.mark.parametrize("version", [VERSION_31])
class TestBulkLoadedCaches:
    """A process's first unknown token loads every live token, and its first VEN loads
    every VEN's granted labels and every site: the next VENs' first polls read none."""

    def test_a_further_vens_first_poll_reads_no_token_labels_or_site(
            self, app, bl, grant, ven_a, ven_b, program) -> None:
        grant(ven_a, ["north"])
        grant(ven_b, ["north"])
        new_event(bl, program, ["north"])
        clear_process_caches()
        first = queried_tables(app, ven_a.token)
        assert "oauth2_provider_accesstoken" in first and "fspsite" in first
        later = queried_tables(app, ven_b.token)
        assert "oauth2_provider_accesstoken" not in later
        assert "targetlabel" not in later and "fspsite" not in later

    def test_a_client_revoked_after_the_bulk_load_is_refused_at_once(
            self, app, ven_a, ven_b, program) -> None:
        clear_process_caches()
        assert call(app, POLL, ven_a.token)[0] == 200  # loads ven_b's token too
        revoke(ven_b)
        assert call(app, POLL, ven_b.token)[0] == 401
        assert call(app, POLL, ven_a.token)[0] == 200

    def test_an_expired_or_unknown_token_is_not_loaded(self, app, ven_a, ven_b,
                                                       program) -> None:
        expire_token(ven_b.token)
        assert call(app, POLL, ven_a.token)[0] == 200
        assert call(app, POLL, ven_b.token)[0] == 401
        assert call(app, POLL, "not-a-token-of-anyone")[0] == 401


@pytest.mark.parametrize("version", [VERSION_31])
def test_api_paths_skip_the_consoles_middleware(app, ven_a, program) -> None:
    _, headers, _ = call(app, POLL, ven_a.token)
    assert "Set-Cookie" not in headers and "Cookie" not in headers.get("Vary", "")
    assert headers["X-Frame-Options"] == "DENY"
    status, login, _ = call(app, "/console/login")
    assert status == 200 and "csrftoken" in login.get("Set-Cookie", "")


# --- change notifications (PostgreSQL) -----------------------------------------------------


@pytest.fixture
def postgres(transactional_db):
    need_postgresql(connection.vendor == "postgresql",
                    "change notification (SQLite reads the counters per request)")


def listener(**kwargs) -> generations.ChangeListener:
    params = connection.get_connection_params()
    conninfo = {k: v for k, v in params.items()
                if k in {"dbname", "user", "password", "host", "port"}}
    return generations.ChangeListener(conninfo, **kwargs)


def bump_elsewhere(name: str) -> int:
    """Change a counter as another node would: its own connection, committed, notified."""
    params = connection.get_connection_params()
    conninfo = {k: v for k, v in params.items()
                if k in {"dbname", "user", "password", "host", "port"}}
    value = int(time.time() * 1000)
    with psycopg.connect(**conninfo) as other:
        other.execute(f"UPDATE {Generation._meta.db_table} SET value = %s WHERE name = %s",
                      (value, name))
        other.execute(f"NOTIFY {generations.CHANNEL}")
    return value


def test_a_committed_change_elsewhere_reaches_the_listener(postgres) -> None:
    generations.bump(generations.TARGETING)
    generations.bump(generations.AUTH)
    watching = listener(recheck_seconds=3600)
    try:
        assert watching.values() == generations.current()
        value = bump_elsewhere(generations.AUTH)
        wait_for(lambda: watching.values()[1] == value, 30, "the notification")
    finally:
        watching.close()


def test_the_socket_is_looked_at_once_per_check_interval_and_a_local_change_at_once(
        postgres) -> None:
    generations.bump(generations.AUTH)
    watching = listener(recheck_seconds=3600, check_seconds=0.2)
    try:
        before = watching.values()
        assert before is not None
        value = bump_elsewhere(generations.AUTH)
        # Heard within the check interval (plus delivery), not later.
        wait_for(lambda: watching.values()[1] == value, 30, "the notification")
        # A change made by this process marks the values stale: read again at once.
        with connection.cursor() as cursor:
            cursor.execute(f"UPDATE {Generation._meta.db_table} SET value = 7 WHERE name = %s",
                           [generations.AUTH])
        watching.mark_stale()
        assert watching.values()[1] == 7
    finally:
        watching.close()


def test_a_lost_listening_connection_falls_back_to_the_query_and_comes_back(postgres) -> None:
    generations.bump(generations.TARGETING)
    watching = listener(recheck_seconds=3600, retry_seconds=0)
    try:
        assert watching.values() is not None
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [watching.backend_pid])
        wait_for(lambda: watching.values() is None, 30, "the lost connection to be noticed")
        value = bump_elsewhere(generations.TARGETING)
        wait_for(lambda: (watching.values() or (0, 0))[0] == value, 30, "a new connection")
    finally:
        watching.close()
