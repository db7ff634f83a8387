"""Load-balancer probes: /healthz (alive) and /readyz (database, migrations, signing
keys, broker), unauthenticated and saying nothing sensitive."""

from __future__ import annotations

import json
import os

import pytest
from django.test import Client as DjangoClient

pytestmark = pytest.mark.django_db

SECRET_WORDS = ("sqlite", "postgres", "password", "secret", "redis://", "traceback", "127.0.0.1")


def get(path: str):
    response = DjangoClient(raise_request_exception=False).get(path)
    return response.status_code, json.loads(response.content), response


def assert_reveals_nothing(response) -> None:
    text = response.content.decode().lower()
    for word in SECRET_WORDS:
        assert word not in text, (word, text)


def test_healthz_answers_without_credentials():
    status, body, response = get("/healthz")
    assert (status, body) == (200, {"status": "ok"})
    assert response["Cache-Control"] == "no-store"


def test_readyz_is_ready_with_the_embedded_defaults(settings):
    settings.CELERY_BROKER_URL = ""
    status, body, response = get("/readyz")
    assert status == 200, body
    assert body == {"status": "ready", "checks": {
        "database": "ok", "migrations": "ok", "signingKeys": "ok", "broker": "in-process",
        "rateLimits": "in-process"}}
    assert_reveals_nothing(response)


@pytest.mark.django_db(transaction=True)
def test_a_kept_connection_that_stopped_working_is_replaced_not_reported(settings):
    """A database restart leaves the connection a worker kept broken: the probe asks
    again on a new connection rather than reporting the database as failing."""
    from django.db import connection

    settings.CELERY_BROKER_URL = ""
    connection.ensure_connection()
    broken = connection.connection
    broken.close()  # behind Django's back, as the server's end going away leaves it
    status, body, _ = get("/readyz")
    assert status == 200 and body["checks"]["database"] == "ok", body
    assert connection.connection is not broken


def test_an_unreachable_broker_is_degraded_but_ready(settings):
    from tests.fixtures.server import free_port

    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"
    status, body, response = get("/readyz")
    assert status == 200 and body["checks"]["broker"] == "degraded", body
    assert_reveals_nothing(response)


def test_a_reachable_broker_is_ok(settings):
    settings.CELERY_BROKER_URL = os.environ.get("CELERY_TEST_REDIS_URL",
                                                "redis://127.0.0.1:6379/0")
    assert get("/readyz")[1]["checks"]["broker"] == "ok"


def test_rate_limit_counters_falling_back_to_the_process_are_degraded_but_ready(settings):
    """While the shared cache does not answer, the probe says so (the counters hold per
    process meanwhile); when it answers again, ok."""
    from tests.fixtures.server import free_port
    from vtn.auth import ratelimit

    def shared_cache(url: str) -> dict:
        return {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                            "LOCATION": url, "OPTIONS": {"socket_connect_timeout": 0.5,
                                                         "socket_timeout": 0.5}}}

    try:
        settings.CACHES = shared_cache(f"redis://127.0.0.1:{free_port()}/0")  # nobody there
        status, body, response = get("/readyz")
        assert status == 200 and body["checks"]["rateLimits"] == "degraded", body
        assert_reveals_nothing(response)
        ratelimit.clear_local()  # as when the retry period has passed
        settings.CACHES = shared_cache(os.environ.get("CELERY_TEST_REDIS_URL",
                                                      "redis://127.0.0.1:6379/0"))
        assert get("/readyz")[1]["checks"]["rateLimits"] == "ok"
    finally:
        ratelimit.clear_local()


def test_a_signing_key_that_does_not_decrypt_is_not_ready(gb, issue, settings):
    from dispatch import signing_keys

    issue(reference="HA-1")  # the operator's signing key now exists
    assert get("/readyz")[0] == 200
    signing_keys._loadable_keys.clear()
    settings.DISPATCH_SIGNING_KEY_PASSPHRASE = "not-the-passphrase-it-was-made-with"
    status, body, response = get("/readyz")
    assert status == 503 and body["checks"]["signingKeys"] == "failing", body
    assert response["Retry-After"].isdigit()
    assert_reveals_nothing(response)


def test_unapplied_migrations_are_not_ready(settings, monkeypatch):
    from webserver import health

    monkeypatch.setattr(health, "_migrations_ok_until", 0.0)
    from django.db import connection
    from django.db.migrations.recorder import MigrationRecorder

    recorder = MigrationRecorder(connection)
    latest = recorder.migration_qs.filter(app="vtn").order_by("-id").first()
    latest.delete()  # as if the newest migration had not been applied (rolled back after)
    status, body, _ = get("/readyz")
    assert status == 503 and body["checks"]["migrations"] == "failing", body
