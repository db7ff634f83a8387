"""Health endpoints for load balancers and orchestrators (docs/operations.md, "High
availability"). Unauthenticated, so they say only ok / failing per check: no versions,
hosts, counts or error messages (those go to the log).

- ``GET /healthz``: the process is alive and answering (touches nothing else).
- ``GET /readyz``: this node can serve: the database answers, every migration is
  applied, the operators' dispatch signing keys decrypt, and the Celery broker answers
  (a broker that does not is reported ``degraded`` but still ready: the web tier serves
  without it). ``rateLimits`` says whether the authentication rate-limit counters are
  shared through the cache (``ok``), counted in this process because the cache does not
  answer (``degraded``: still ready, authentication does not depend on it) or in-process
  by configuration. 503 with Retry-After when not ready.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET
from kombu import Connection

from dispatch.signing_keys import signing_keys_usable
from vtn.auth import ratelimit

logger = logging.getLogger(__name__)
# A passing migrations check is remembered this long (building the plan reads every
# migration file); a failing one is looked at again on the next probe.
MIGRATIONS_CHECK_TTL = 60.0
_migrations_ok_until = 0.0


def _answer(body: dict, status: int = 200) -> JsonResponse:
    response = JsonResponse(body, status=status)
    response["Cache-Control"] = "no-store"
    return response


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return _answer({"status": "ok"})


def check_database() -> bool:
    """Whether the database answers now. A connection this process kept from before the
    database restarted fails once: it is closed and the question asked again on a new
    connection, so the probe does not report a database that is back as failing."""
    connection = connections[DEFAULT_DB_ALIAS]
    for attempt in range(2):
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
                return cursor.fetchone()[0] == 1
        except DatabaseError as exc:
            connection.close()
            if attempt:
                logger.warning("readiness: database: %s", exc.__class__.__name__)
    return False


def check_migrations() -> bool:
    global _migrations_ok_until
    if time.monotonic() < _migrations_ok_until:
        return True
    executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
    pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if pending:
        logger.warning("readiness: %d migrations not applied", len(pending))
        return False
    _migrations_ok_until = time.monotonic() + MIGRATIONS_CHECK_TTL
    return True


def check_signing_keys() -> bool:
    if signing_keys_usable():
        return True
    logger.warning("readiness: an operator's signing key does not decrypt")
    return False


def check_broker() -> str:
    """ok, degraded (configured but not answering) or in-process (no broker configured)."""
    url = getattr(settings, "CELERY_BROKER_URL", "")
    if not url:
        return "in-process"
    try:
        with Connection(url, connect_timeout=1,
                        transport_options={"socket_connect_timeout": 1}) as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0,
                                         timeout=2)
    except Exception as exc:  # noqa: BLE001 (any failure to reach it is "degraded")
        logger.warning("readiness: broker: %s", exc.__class__.__name__)
        return "degraded"
    return "ok"


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    checks: dict[str, str] = {}
    checks["database"] = "ok" if check_database() else "failing"
    if checks["database"] == "ok":
        try:
            checks["migrations"] = "ok" if check_migrations() else "failing"
            checks["signingKeys"] = "ok" if check_signing_keys() else "failing"
        except DatabaseError as exc:
            logger.warning("readiness: %s", exc.__class__.__name__)
            checks.setdefault("migrations", "failing")
            checks.setdefault("signingKeys", "failing")
    else:
        checks["migrations"] = checks["signingKeys"] = "unknown"
    checks["broker"] = check_broker()
    checks["rateLimits"] = {"shared": "ok", "local": "degraded"}.get(
        ratelimit.counters_state(), "in-process")
    ready = all(checks[name] == "ok" for name in ("database", "migrations", "signingKeys"))
    response = _answer({"status": "ready" if ready else "not ready", "checks": checks},
                       status=200 if ready else 503)
    if not ready:
        response["Retry-After"] = str(getattr(settings, "VTN_RETRY_AFTER_SECONDS", 5))
    return response
