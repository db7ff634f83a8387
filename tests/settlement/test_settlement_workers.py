"""Statements settled by several real Celery workers (processes, Redis broker, the test's
PostgreSQL database): contracts are shared out between workers and settled at the same
time; the same statement sent twice, to two workers at once, is computed once and kept
once; and a worker killed in the middle of a task leaves it to another worker, which
settles it (the task is acknowledged late and handed out again).

To make each of these happen for certain, not by luck of timing, the test holds a
contract's row lock in a connection of its own: a task of that contract waits inside
``settle_month`` until the test lets go."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from celery import Celery
from django.db import connection

from dispatch import onboarding, programs, registry
from dispatch.models import Contract, DispatchUnit, MeterReading, ReportIntake
from settlement import tasks
from settlement.models import Statement
from tests.fixtures.parallel import worker_redis_url
from tests.fixtures.requirements import need_redis, starts_processes
from tests.fixtures.server import ROOT, stop_process

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

REDIS_URL = worker_redis_url(os.environ.get("CELERY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
MONTH = "2026-09"
VISIBILITY_TIMEOUT = 8  # seconds before a dead worker's task is handed out again
WAIT = 180.0  # a loaded machine is slow to start workers and run tasks


class Worker:
    """``celery -A config worker`` (one task at a time) on ``queue``, on the test's
    database."""

    def __init__(self, name: str, queue: str, env: dict[str, str], log: Path) -> None:
        self.name, self.queue, self.env, self.log = name, queue, env, log
        self.process: subprocess.Popen | None = None

    def start(self, app: Celery) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo",
                 "--queues", self.queue, "--hostname", f"{self.name}@%h", "--loglevel",
                 "INFO", "--without-gossip", "--without-mingle"],
                cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.output()
            replies = app.control.ping(timeout=1.0)
            if any(node.startswith(f"{self.name}@") for reply in replies for node in reply):
                return
        pytest.fail(f"worker {self.name} did not start:\n{self.output()}")

    def kill(self) -> None:
        """SIGKILL: no warm shutdown, nothing acknowledged or handed back."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            stop_process(self.process)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-10_000:]


@pytest.fixture
@starts_processes
def cluster(transactional_db, tmp_path):
    """Four contracts of one unit each with a few days of readings; a Celery client and
    a function starting workers on a queue of this test."""
    need_redis(REDIS_URL)
    programs.load_products()
    onboarding.onboard_fsp(operator="ENWL", fsp="par", site="main", units=[
        registry.parse_unit_spec(f"p{index}:300") for index in range(4)])
    contracts = [onboarding.create_contract(
        operator="ENWL", identifier=f"C-PAR{index}", fsp="par", product="DYNAMIC",
        units=[f"p{index}"], availability_price=Decimal("4"),
        utilisation_price=Decimal("250")) for index in range(4)]
    start = datetime(2026, 9, 1, tzinfo=UTC)
    rows = []
    for unit in DispatchUnit.objects.filter(reference__startswith="p"):
        intake = ReportIntake.objects.create(site=unit.site, kind="metering", report_id="par",
                                             client_id="test", received_at=start)
        rows += [MeterReading(unit=unit, reading_type="USAGE",
                              start=start + timedelta(minutes=30 * k),
                              end=start + timedelta(minutes=30 * (k + 1)),
                              value=Decimal(40 + k % 7), received_at=start, intake=intake)
                 for k in range(48 * 5)]
    MeterReading.objects.bulk_create(rows)
    queue = f"settle-{secrets.token_hex(4)}"
    settings = connection.settings_dict
    database_url = (f"postgres://{settings['USER']}@{settings['HOST']}:{settings['PORT']}/"
                    f"{settings['NAME']}")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings",
           "DATABASE_URL": database_url, "CELERY_BROKER_URL": REDIS_URL,
           "CELERY_RESULT_BACKEND": REDIS_URL, "CELERY_TASK_DEFAULT_QUEUE": queue,
           "CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
           "VTN_VAR_DIR": str(tmp_path / "var"), "SECRET_KEY": secrets.token_urlsafe(50)}
    if settings.get("PASSWORD"):
        env["DATABASE_URL"] = database_url.replace(
            f"{settings['USER']}@", f"{settings['USER']}:{settings['PASSWORD']}@")
    app = Celery("settle-client", broker=REDIS_URL, backend=REDIS_URL)
    app.conf.broker_transport_options = {"visibility_timeout": VISIBILITY_TIMEOUT}
    workers: list[Worker] = []

    def start_worker(name: str) -> Worker:
        worker = Worker(f"{name}-{queue}", queue, env, tmp_path / f"{name}.log")
        workers.append(worker)
        worker.start(app)
        return worker

    class Cluster:
        pass

    cluster = Cluster()
    cluster.contracts, cluster.app, cluster.queue = contracts, app, queue
    cluster.start_worker, cluster.database_url = start_worker, env["DATABASE_URL"]
    yield cluster
    for worker in workers:
        worker.stop()
    app.close()


def send(cluster, contract: Contract, requested_at: datetime | None = None):
    sent = (requested_at or datetime.now(UTC)).isoformat()
    return cluster.app.send_task(tasks.SETTLE_STATEMENT, args=[contract.pk, MONTH, sent],
                                 queue=cluster.queue)


class ContractLock:
    """The contract's row lock, held by a connection of the test until released."""

    def __init__(self, url: str, contract: Contract) -> None:
        self.connection = psycopg.connect(url)
        self.connection.execute("SELECT id FROM dispatch_contract WHERE id = %s FOR UPDATE",
                                [contract.pk])

    def waiters(self) -> int:
        """How many sessions of the database wait for a lock (behind this one, directly
        or behind another waiter: a row's second waiter queues behind the first)."""
        with psycopg.connect(self.connection.info.dsn, autocommit=True) as other:
            return other.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND cardinality(pg_blocking_pids(pid)) > 0"
            ).fetchone()[0]

    def wait_for(self, count: int) -> None:
        deadline = time.monotonic() + WAIT
        while self.waiters() < count:
            assert time.monotonic() < deadline, f"fewer than {count} tasks reached the lock"
            time.sleep(0.2)

    def release(self) -> None:
        self.connection.rollback()
        self.connection.close()


def test_two_workers_settle_contracts_side_by_side(cluster):
    one, two = cluster.start_worker("one"), cluster.start_worker("two")
    first, *others = cluster.contracts
    lock = ContractLock(cluster.database_url, first)
    try:
        blocked = send(cluster, first)
        lock.wait_for(1)  # one worker is now busy with the first contract ...
        # ... so the other settles every other contract meanwhile.
        results = [send(cluster, contract).get(timeout=WAIT) for contract in others]
    finally:
        lock.release()
    held = blocked.get(timeout=WAIT)
    assert {result["worker"].split("@")[0] for result in results} != {held["worker"].split(
        "@")[0]}
    assert len({result["worker"] for result in [*results, held]}) == 2
    assert {one.name, two.name} == {r["worker"].split("@")[0] for r in [*results, held]}
    for contract in cluster.contracts:
        (row,) = Statement.objects.filter(contract=contract)
        assert (row.version, row.status) == (1, "draft")
        assert len(row.document["inputs"]["readings"]) == 1


def test_the_same_statement_sent_to_two_workers_at_once_is_computed_once(cluster):
    cluster.start_worker("one"), cluster.start_worker("two")
    contract = cluster.contracts[0]
    requested = datetime.now(UTC)
    lock = ContractLock(cluster.database_url, contract)
    try:
        twice = [send(cluster, contract, requested), send(cluster, contract, requested)]
        lock.wait_for(2)  # both workers wait on the contract at the same time
    finally:
        lock.release()
    results = [result.get(timeout=WAIT) for result in twice]
    assert len({result["worker"] for result in results}) == 2
    assert sorted(result["computed"] for result in results) == [False, True]
    assert len({result["statement"] for result in results}) == 1
    assert Statement.objects.filter(contract=contract).count() == 1
    # Sent again later (a new request), it is computed again and, unchanged, kept as is.
    again = send(cluster, contract).get(timeout=WAIT)
    assert again["computed"] and again["statement"] == results[0]["statement"]
    assert Statement.objects.filter(contract=contract).count() == 1


def test_a_task_of_a_killed_worker_is_settled_by_another(cluster):
    doomed = cluster.start_worker("doomed")
    contract = cluster.contracts[1]
    lock = ContractLock(cluster.database_url, contract)
    try:
        result = send(cluster, contract)
        lock.wait_for(1)  # the task is running: inside settle_month, waiting on the lock
        doomed.kill()
    finally:
        lock.release()
    assert not Statement.objects.filter(contract=contract).exists()
    survivor = cluster.start_worker("survivor")
    settled = result.get(timeout=WAIT)  # handed out again after the visibility timeout
    assert settled["worker"].startswith(f"{survivor.name}@")
    assert settled["computed"]
    (row,) = Statement.objects.filter(contract=contract)
    assert row.pk == settled["statement"] and row.version == 1
