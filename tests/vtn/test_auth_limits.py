"""Authentication limits that slow attackers and never lock out good clients, secrets that
are cheap to check, and authentication that survives Redis going away (docs/security.md,
"Abuse resistance").

Everything runs over real HTTPS on 127.0.0.1 against VTN processes sharing the session's
database and PKI, with a redis-server of the test's own as the shared cache.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.fixtures.redis_server import RedisServer
from tests.fixtures.requirements import starts_processes
from tests.fixtures.server import ROOT, PinnedSession, VtnServer, stop_process
from tests.vtn.test_transport_security import (
    V31,
    ExtraServer,
    api_get,
    bound_token,
    onboard,
    request_token,
    security_log,
)

FAILURES_PER_IDENTITY = 5
FAILURES_PER_ADDRESS = 10


@pytest.fixture
@starts_processes
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _outside_hour_boundary(margin: float = 90.0) -> None:
    """The limits below use hourly windows: start well inside one."""
    left = 3600 - time.time() % 3600
    if left < margin:
        time.sleep(left + 1)


def _token_response(server: ExtraServer, session: requests.Session, client_id: str,
                    secret: str) -> requests.Response:
    return session.post(f"{server.base_url}/openadr3/{V31}/auth/token", timeout=30,
                        data={"grant_type": "client_credentials", "client_id": client_id,
                              "client_secret": secret})


def _poll(server: ExtraServer, ca: str, token: str, cert: tuple[str, str] | None = None
          ) -> requests.Response:
    return api_get(server.base_url, ca, token, "programs", cert=cert)


def _split(statuses: list[int], limit: int) -> None:
    """The first ``limit`` failures are answered 401, every later one 429."""
    assert statuses[:limit] == [401] * limit, statuses
    assert statuses[limit:] and set(statuses[limit:]) == {429}, statuses


def test_two_hundred_failures_slow_only_the_failing_requests(
        vtn_server: VtnServer, redis_server: RedisServer) -> None:
    ca = vtn_server.ca_bundle
    victim = onboard(vtn_server, site="victim")  # mTLS site: certificate and secret
    plain = vtn_server.create_client("ven", "victim-plain", ven="victim-plain")  # secret only
    neighbour = vtn_server.create_client("ven", "neighbour", ven="neighbour")
    # Tokens issued before the attack, which the attacked server's workers never saw.
    waiting = vtn_server.token(vtn_server.create_client("ven", "waiting", ven="waiting"))
    victim_token = bound_token(vtn_server, victim)
    server = ExtraServer(vtn_server, "attacked", {
        "CACHE_URL": redis_server.url,  # counters shared by both workers
        "VTN_AUTH_FAILURE_RATE": f"{FAILURES_PER_IDENTITY}/h",
        "VTN_AUTH_FAILURE_ADDRESS_RATE": f"{FAILURES_PER_ADDRESS}/h",
        "VTN_TOKEN_RATE": "1000/min"}, workers=2)
    try:
        _outside_hour_boundary()
        attacker = PinnedSession()
        attacker.verify = ca
        named_victim, named_plain, nothing = [], [], []
        for attempt in range(200):
            kind = attempt % 5
            if kind == 0:  # a bad secret for a known mTLS client, without its certificate
                named_victim.append(_token_response(server, attacker, victim["client_id"],
                                                    f"guess-{attempt}").status_code)
            elif kind == 1:  # the victim's own token, stolen, without its certificate
                named_victim.append(attacker.get(
                    f"{server.base_url}/openadr3/{V31}/programs", timeout=30,
                    headers={"Authorization": f"Bearer {victim_token}"}).status_code)
            elif kind == 2:  # a bad secret for a known secret-only client
                named_plain.append(_token_response(server, attacker, plain["client_id"],
                                                   f"guess-{attempt}").status_code)
            elif kind == 3:  # a client_id that names nothing
                nothing.append(_token_response(server, attacker, f"nobody-{attempt}",
                                               "guess").status_code)
            else:  # a garbage bearer token
                nothing.append(attacker.get(
                    f"{server.base_url}/openadr3/{V31}/programs", timeout=30,
                    headers={"Authorization": f"Bearer garbage-{attempt}"}).status_code)
        _split(named_victim, FAILURES_PER_IDENTITY)
        _split(named_plain, FAILURES_PER_IDENTITY)
        _split(nothing, FAILURES_PER_ADDRESS)
        throttled = _token_response(server, attacker, victim["client_id"], "again")
        assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) >= 1
        assert throttled.json()["status"] == 429

        # At once, from the same address: a neighbour gets a token and polls with it...
        fresh = request_token(server.base_url, ca, neighbour["client_id"],
                              secret=neighbour["client_secret"])
        assert fresh.status_code == 200, fresh.text
        assert _poll(server, ca, fresh.json()["access_token"]).status_code == 200
        # ...a token this server has never seen works...
        assert _poll(server, ca, waiting).status_code == 200
        # ...and the attacked clients get tokens with their correct credentials.
        for secret in (victim["client_secret"], None):  # secret + certificate, certificate
            own = request_token(server.base_url, ca, victim["client_id"], secret=secret,
                                cert=victim.cert)
            assert own.status_code == 200, own.text
            assert "cnf" in own.json()
            assert _poll(server, ca, own.json()["access_token"], victim.cert
                         ).status_code == 200
        assert _poll(server, ca, victim_token, victim.cert).status_code == 200
        own = request_token(server.base_url, ca, plain["client_id"],
                            secret=plain["client_secret"])
        assert own.status_code == 200, own.text
        # The attacker is still throttled after all that success around it.
        assert _token_response(server, attacker, plain["client_id"], "x").status_code == 429
        assert attacker.get(f"{server.base_url}/openadr3/{V31}/programs", timeout=30,
                            headers={"Authorization": "Bearer garbage"}).status_code == 429
        attacker.close()
    finally:
        server.stop(graceful=False)

    limited = security_log(vtn_server, "--kind", "rate_limited", "--since", "10m")
    details = [(e["client_id"], e["remote_addr"], e["detail"]) for e in limited]
    assert any(c == victim["client_id"] and a == "127.0.0.1" and "addr_id" in d
               for c, a, d in details), details
    assert any(c == plain["client_id"] and "addr_id" in d for c, a, d in details), details
    assert any("(addr)" in d for _, _, d in details), details
    refused = security_log(vtn_server, "--client", victim["client_id"], "--since", "10m")
    kinds = [e["kind"] for e in refused]
    assert "cert_mismatch" in kinds and kinds.count("token_issued") >= 3
    # Over budget, refusals are logged once per window, not once per attempt.
    assert len([e for e in limited if e["client_id"] == victim["client_id"]]) <= 2


def test_token_rate_counts_only_tokens_issued(vtn_server: VtnServer,
                                              redis_server: RedisServer) -> None:
    """Naming a client in failed requests cannot use up its token budget."""
    ca = vtn_server.ca_bundle
    client = vtn_server.create_client("bl", "token-budget")
    server = ExtraServer(vtn_server, "token-budget", {
        "CACHE_URL": redis_server.url, "VTN_TOKEN_RATE": "3/h",
        "VTN_AUTH_FAILURE_RATE": "1000/h"})
    try:
        _outside_hour_boundary()
        for attempt in range(10):
            wrong = request_token(server.base_url, ca, client["client_id"],
                                  secret=f"wrong-{attempt}")
            assert wrong.status_code == 401, wrong.text
        statuses = [request_token(server.base_url, ca, client["client_id"],
                                  secret=client["client_secret"]).status_code
                    for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
    finally:
        server.stop(graceful=False)


def test_a_secret_stored_by_the_old_password_hasher_works_and_is_upgraded(
        vtn_server: VtnServer) -> None:
    client = vtn_server.create_client("bl", "old-hash")

    def stored() -> str:
        return vtn_server.manage("shell", "-c", (
            "from oauth2_provider.models import Application;"
            f"print(Application.objects.get(client_id={client['client_id']!r}).client_secret)"
        )).stdout.strip().splitlines()[-1]

    assert stored().startswith("vtn_hmac_sha256$")
    vtn_server.manage("shell", "-c", (
        "from oauth2_provider.models import Application;"
        "from django.contrib.auth.hashers import make_password;"
        f"Application.objects.filter(client_id={client['client_id']!r}).update("
        f"client_secret=make_password({client['client_secret']!r}, hasher='pbkdf2_sha256'))"))
    assert stored().startswith("pbkdf2_sha256$")
    wrong = request_token(vtn_server.base_url, vtn_server.ca_bundle, client["client_id"],
                          secret="wrong")
    assert wrong.status_code == 401
    assert stored().startswith("pbkdf2_sha256$")  # a wrong secret upgrades nothing
    for _ in range(2):
        right = request_token(vtn_server.base_url, vtn_server.ca_bundle, client["client_id"],
                              secret=client["client_secret"])
        assert right.status_code == 200, right.text
        assert stored().startswith("vtn_hmac_sha256$")
    assert request_token(vtn_server.base_url, vtn_server.ca_bundle, client["client_id"],
                         secret="wrong").status_code == 401


def test_authentication_keeps_working_while_redis_is_down_and_recovers(
        vtn_server: VtnServer, redis_server: RedisServer) -> None:
    ca = vtn_server.ca_bundle
    site = onboard(vtn_server, site="redis-down")
    clients = [vtn_server.create_client("ven", "redis-down", ven="redis-down")
               for _ in range(3)]
    server = ExtraServer(vtn_server, "redis-down", {
        "CACHE_URL": redis_server.url, "VTN_RATELIMIT_RETRY_SECONDS": "1",
        "VTN_AUTH_FAILURE_RATE": "3/h", "VTN_AUTH_FAILURE_ADDRESS_RATE": "1000/h",
        "VTN_TOKEN_RATE": "1000/min"}, workers=1)

    def token_and_poll(credentials: dict) -> None:
        issued = request_token(server.base_url, ca, credentials["client_id"],
                               secret=credentials["client_secret"])
        assert issued.status_code == 200, issued.text
        assert _poll(server, ca, issued.json()["access_token"]).status_code == 200

    def counters() -> list[bytes]:
        return redis_server.client().keys("*vtn:rl:*")

    try:
        _outside_hour_boundary()
        token_and_poll(clients[0])
        assert counters()  # the token budget is counted in Redis
        early = vtn_server.token(clients[1])  # never seen by this server
        redis_server.stop()

        started = time.monotonic()
        token_and_poll(clients[1])
        token_and_poll(clients[2])
        assert _poll(server, ca, early).status_code == 200
        bound = request_token(server.base_url, ca, site["client_id"], cert=site.cert)
        assert bound.status_code == 200, bound.text
        assert _poll(server, ca, bound.json()["access_token"], site.cert).status_code == 200
        assert time.monotonic() - started < 10  # no waiting on a dead cache
        # The failure limit still holds, counted in the process meanwhile.
        statuses = [request_token(server.base_url, ca, site["client_id"], secret="wrong",
                                  cert=site.cert).status_code for _ in range(4)]
        assert statuses == [401, 401, 401, 429]
        assert request_token(server.base_url, ca, site["client_id"], cert=site.cert
                             ).status_code == 200
        assert "the shared cache does not answer" in server_log(server)

        redis_server.start()  # same port, empty
        time.sleep(1.5)  # VTN_RATELIMIT_RETRY_SECONDS
        token_and_poll(clients[0])
        assert counters()  # counting in Redis again
    finally:
        server.stop(graceful=False)
    assert "Internal Server Error" not in server_log(server)


def server_log(server: ExtraServer) -> str:
    return server.log_path.read_text(errors="replace")


def test_beat_keeps_scheduling_across_redis_outages(vtn_server: VtnServer,
                                                    redis_server: RedisServer,
                                                    tmp_path: Path) -> None:
    """celery beat started while Redis is down, and Redis stopped under a running beat:
    scheduling resumes by itself each time Redis returns."""
    queue = f"beat-probe-{secrets.token_hex(4)}"
    name = f"probe {queue}"
    vtn_server.manage("shell", "-c", (
        "from django_celery_beat.models import IntervalSchedule, PeriodicTask;"
        "every, _ = IntervalSchedule.objects.get_or_create(every=1, period='seconds');"
        f"PeriodicTask.objects.create(name={name!r}, interval=every, queue={queue!r},"
        "task='vtn.tasks.purge_idempotency_keys')"))
    redis_server.stop()
    log_path = tmp_path / "beat.log"
    env = vtn_server.env | {"CELERY_BROKER_URL": redis_server.url}
    with log_path.open("ab") as log:
        beat = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel", "INFO",
             "--schedule", str(tmp_path / "beat-schedule")],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)

    def queued(timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert beat.poll() is None, log_path.read_text(errors="replace")[-5000:]
            count = redis_server.client().llen(queue)
            if count:
                return count
            time.sleep(0.5)
        pytest.fail(f"beat sent nothing within {timeout} s:\n"
                    f"{log_path.read_text(errors='replace')[-5000:]}")

    try:
        time.sleep(4)  # beat is retrying its first connection
        assert beat.poll() is None
        redis_server.start()
        assert queued(30) >= 1
        redis_server.stop()
        time.sleep(8)  # several due ticks fail meanwhile
        assert beat.poll() is None, log_path.read_text(errors="replace")[-5000:]
        redis_server.start()  # an empty Redis again
        assert queued(30) >= 1
    finally:
        stop_process(beat, timeout=10)
        vtn_server.manage("shell", "-c", (
            "from django_celery_beat.models import PeriodicTask;"
            f"PeriodicTask.objects.filter(name={name!r}).delete()"))


# --- in process: the verdicts, and the fallback against a Redis that is not there --------------


@pytest.fixture
def tight_limits(settings) -> None:
    settings.VTN_AUTH_FAILURE_RATE = "2/h"
    settings.VTN_AUTH_FAILURE_ADDRESS_RATE = "3/h"
    settings.VTN_RATELIMIT_RETRY_SECONDS = 60
    from django.core.cache import cache

    from vtn.auth import ratelimit

    cache.clear()
    ratelimit.clear_local()
    _outside_hour_boundary(5)
    yield
    ratelimit.clear_local()  # (the cache may be a dead Redis here: not touched)


def test_failures_are_counted_per_address_and_identity(tight_limits) -> None:
    from vtn.auth.ratelimit import register_failure

    verdicts = [register_failure("10.0.0.1", "client:a").wait for _ in range(3)]
    assert verdicts[:2] == [None, None] and verdicts[2] is not None
    # The same identity from another address, and another identity from the same one,
    # are untouched; so is the address's budget for credentials that name nothing.
    assert register_failure("10.0.0.2", "client:a").wait is None
    assert register_failure("10.0.0.1", "client:b").wait is None
    nothing = [register_failure("10.0.0.1", None).wait for _ in range(4)]
    assert nothing[:3] == [None] * 3 and nothing[3] is not None
    first, again = register_failure("10.0.0.1", None), register_failure("10.0.0.1", None)
    assert first.wait is not None and again.wait is not None
    assert not again.first  # logged once per window


def test_counters_fall_back_to_the_process_when_redis_does_not_answer(tight_limits,
                                                                      settings) -> None:
    from tests.fixtures.server import free_port
    from vtn.auth import ratelimit

    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": dead,
                                   "OPTIONS": {"socket_connect_timeout": 0.5}}}
    try:
        before = ratelimit.fallback_count()
        started = time.monotonic()
        verdicts = [ratelimit.register_failure("10.0.0.9", "client:x").wait
                    for _ in range(3)]
        assert verdicts[:2] == [None, None] and verdicts[2] is not None
        assert ratelimit.shared_cache_down()
        assert ratelimit.fallback_count() > before
        assert time.monotonic() - started < 3  # one failed connection, then local
    finally:
        ratelimit.clear_local()
