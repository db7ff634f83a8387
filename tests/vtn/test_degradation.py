"""Degrade, don't fail, with real processes: a PostgreSQL server of the test's own is
stopped and started under a running VTN (503 with Retry-After, then recovery without a
restart); an SQLite write lock held by another process answers 503 quickly; the web
tier is stopped with the Celery worker running, and the comms check does not blame the
FSP sites for the VTN's own outage (but still notices a site that falls silent)."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

import pytest
import requests

from tests.fixtures.postgres import OwnCluster
from tests.fixtures.server import E2EDatabase, VtnServer
from tests.fixtures.worker import CeleryWorker

pytestmark = [pytest.mark.slow]

PROBLEM = "application/json"  # the default problem media type (Accept may ask for problem+json)


def started_server(workdir: Path, database_url: str, **env: str) -> VtnServer:
    server = VtnServer(workdir, E2EDatabase(database_url, workdir))
    server.env.update(env)
    server.prepare()
    server.start()
    return server


def assert_unavailable(response: requests.Response) -> None:
    assert response.status_code == 503, (response.status_code, response.text)
    assert response.headers["Content-Type"].startswith(PROBLEM)
    assert int(response.headers["Retry-After"]) > 0
    body = response.json()
    assert body["status"] == 503 and "retry" in body["detail"].lower()
    assert "Traceback" not in response.text


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


# --- PostgreSQL down ----------------------------------------------------------------------------

def test_postgresql_down_answers_503_and_recovers_without_restart(own_postgres: OwnCluster,
                                                                  tmp_path):
    server = started_server(tmp_path, own_postgres.url)
    try:
        credentials = server.create_client("bl", "pgdown")
        token = server.token(credentials)
        programs = server.url("3.1.0", "programs")
        with server.session(token) as session:
            assert session.get(programs, timeout=30).status_code == 200
            own_postgres.stop()
            for _ in range(3):  # every process, every request: 503, never 500
                assert_unavailable(session.get(programs, timeout=30))
            assert_unavailable(session.post(programs, json={"programName": "p-down"},
                                            timeout=30))
            token_reply = requests.post(server.url("3.1.0", "auth/token"), data={
                "grant_type": "client_credentials", "client_id": credentials["client_id"],
                "client_secret": credentials["client_secret"]}, verify=server.ca_bundle,
                timeout=30)
            assert_unavailable(token_reply)
            alive = requests.get(f"{server.base_url}/healthz", verify=server.ca_bundle,
                                 timeout=30)
            assert alive.status_code == 200
            ready = requests.get(f"{server.base_url}/readyz", verify=server.ca_bundle,
                                 timeout=30)
            assert ready.status_code == 503 and ready.json()["checks"]["database"] == "failing"
            assert "Retry-After" in ready.headers

            own_postgres.start()  # the same server process carries on
            wait_for(lambda: session.get(programs, timeout=30).status_code == 200, 30,
                     "the VTN to answer again")
            created = session.post(programs, json={"programName": "p-back"}, timeout=30)
            assert created.status_code == 201, created.text
        assert requests.get(f"{server.base_url}/readyz", verify=server.ca_bundle,
                            timeout=30).status_code == 200
        assert server.running
        assert "Internal Server Error" not in server.output()
    finally:
        server.stop(graceful=False)
        if own_postgres.running():
            server.database.drop()


# --- SQLite locked ------------------------------------------------------------------------------

def test_a_long_sqlite_write_lock_answers_503_quickly(tmp_path):
    server = started_server(tmp_path, "")
    database = server.database.url.removeprefix("sqlite:///")
    try:
        token = server.token(server.create_client("bl", "locked"))
        programs = server.url("3.1.0", "programs")
        with server.session(token) as session:
            assert session.get(programs, timeout=30).status_code == 200
            holder = sqlite3.connect(database, timeout=1, isolation_level=None)
            holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
            try:
                began = time.monotonic()
                assert_unavailable(session.post(programs, json={"programName": "p-lock"},
                                                timeout=60))
                waited = time.monotonic() - began
                assert waited < 10, f"answered after {waited:.1f} s"
                # Reads still work meanwhile (write-ahead log).
                assert session.get(programs, timeout=30).status_code == 200
            finally:
                holder.execute("ROLLBACK")
                holder.close()
            created = session.post(programs, json={"programName": "p-lock"}, timeout=30)
            assert created.status_code == 201, created.text
    finally:
        server.stop(graceful=False)
    print(json.dumps({"sqlite_lock_503_after_s": round(waited, 2)}))


# --- the web tier down, the worker running ------------------------------------------------------

GRACE_FACTOR = 0.2  # x the MW_DISPATCH heartbeat interval (60 s): 12 s of silence
ALLOWED_SILENCE_S = 60 * GRACE_FACTOR
# The web tier stays down 6 s longer than the allowed silence: the checks in its last
# seconds, and the first once it is back, would mark the site lost if it counted.
OUTAGE_S = ALLOWED_SILENCE_S + 6


def test_the_vtns_own_outage_is_not_the_fsps_comms_loss(tmp_path):
    # Every request of the VEN moves last_seen (no 15 s coalescing), so the site's last
    # request before the outage is what the check measures silence from.
    server = started_server(tmp_path, os.environ.get("DATABASE_URL", ""),
                            VTN_SERVING_BEAT_SECONDS="2",
                            DISPATCH_LAST_SEEN_RESOLUTION_SECONDS="0")
    worker = CeleryWorker(server, tmp_path / "worker.log")
    worker.env["DISPATCH_COMMS_GRACE_FACTOR"] = str(GRACE_FACTOR)
    try:
        worker.start()
        fsp = server.unique("outagefsp")
        onboarding = json.loads(server.manage(
            "fsp", "onboard", "--operator", "ENWL", "--fsp", fsp, "--unit", "u1:1500:export"
        ).stdout)
        server.manage("fsp", "contract", "--operator", "ENWL", "--fsp", fsp, "--id",
                      f"{fsp}-mw", "--product", "MW_DISPATCH", "--unit", "u1")
        site = f"ENWL/{fsp}/main"
        ven_token = server.token(onboarding)

        def states():
            return {row["site"]: row["state"] for row in server_sites(server)}

        def poll() -> None:
            with server.session(ven_token) as ven:
                assert ven.get(server.url("3.1.0", "events"), timeout=30).status_code == 200

        poll()
        assert states()[site] == "online"
        time.sleep(3)  # a few serving beats before the outage
        poll()  # the site's last request before the VTN goes down

        server.stop()  # the web tier goes down; the worker keeps checking
        outage_began = time.monotonic()
        while time.monotonic() - outage_began < OUTAGE_S:
            assert worker.run("dispatch.tasks.check_comms") == []
            time.sleep(4)
        server.start()
        down_for = time.monotonic() - outage_began
        assert worker.run("dispatch.tasks.check_comms") == []
        assert states()[site] == "online"
        outages = json.loads(server.manage("shell", "-c", (
            "import json; from django.utils import timezone; from datetime import timedelta;"
            "from vtn import serving; now = timezone.now();"
            "print(json.dumps([(b - a).total_seconds() for a, b in "
            "serving.outages(now - timedelta(minutes=10), now)]))")).stdout.splitlines()[-1])
        # The outage as recorded: from the last beat before the stop to the first after
        # (longer than the silence a site is allowed).
        assert outages and OUTAGE_S - 5 <= outages[-1] <= down_for + 10, (outages, down_for)

        # The failure path: the VTN serving, the site silent past 12 s: comms lost.
        changes = wait_for(lambda: worker.run("dispatch.tasks.check_comms"), 40,
                           "the silent site to be marked comms lost")
        assert [(c["site"], c["to"]) for c in changes] == [(site, "comms_lost")]
        assert states()[site] == "comms_lost"
    finally:
        worker.stop(graceful=False)
        server.stop(graceful=False)
        server.database.drop()


def server_sites(server: VtnServer) -> list[dict]:
    token = getattr(server, "_operator_token", None)
    if token is None:
        token = server._operator_token = server.token(server.create_client("bl", "ops"))
    with server.session(token) as session:
        response = session.get(f"{server.base_url}/dispatch/api/v1/sites", timeout=30)
    assert response.status_code == 200, response.text
    return response.json()
