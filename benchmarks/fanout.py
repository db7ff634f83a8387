"""Webhook fan-out: one event targeted at 1,000 VENs, each with its own webhook subscription.

What it does, in one run on this machine:
1. starts a real VTN over HTTPS on loopback (a temporary SQLite database, or a fresh
   PostgreSQL database with ``--database-url``, and a development PKI), and a real HTTPS
   webhook receiver on loopback (tests/fixtures/receiver.py, certificate from that PKI);
2. seeds ``--vens`` VEN clients, each bound to a ven granted the label ``fleet`` and
   owning a subscription to EVENT CREATE at its own callback URL on the receiver, plus
   ``--others`` VENs with subscriptions but another label (they must receive nothing);
3. for each mode (``celery``: a real Celery worker on Redis, as in production;
   ``embedded``: no broker, deliveries on the web process's own pool) a BL client
   creates one event targeted at ``fleet`` and the run measures, from just before that
   POST, the time to the first and to the last of the notifications the receiver gets;
4. baseline, in the same run: the same number of notification-sized POSTs sent to the
   same receiver straight from this process, by as many threads as the VTN's delivery
   pool (``VTN_WEBHOOK_CONCURRENCY``), over keep-alive connections: the ceiling of the
   transport and receiver on this machine;
5. prints the figures and the machine as JSON.

Usage: ``python benchmarks/fanout.py [--vens 1000] [--others 200] [--database-url URL]``.
Needs Redis at ``CELERY_TEST_REDIS_URL`` (default redis://127.0.0.1:6379/0) for the
celery mode. Aim: every delivery to a healthy receiver within 10 s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.poll import machine  # noqa: E402
from tests.fixtures.receiver import WebhookReceiver  # noqa: E402
from tests.fixtures.server import E2EDatabase, VtnServer  # noqa: E402
from tests.fixtures.worker import REDIS_URL, CeleryWorker  # noqa: E402

LABEL = "fleet"


def seed(vens: int, others: int, receiver_url: str) -> None:
    """Runs inside the VTN's environment (Django configured for its database)."""
    import secrets

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    from oauth2_provider.models import Application

    from vtn import services
    from vtn.auth.caller import Caller
    from vtn.models import Client

    admin = Caller(client_id="bench-bl", name="bench-bl", role="bl",
                   scopes=frozenset({"read_all"}), internal=True)
    scopes = "read_targets read_ven_objects write_reports write_subscriptions write_vens"
    applications = Application.objects.bulk_create(
        Application(name=f"fanout-ven-{i}", client_type=Application.CLIENT_CONFIDENTIAL,
                    authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
                    client_secret=secrets.token_urlsafe(16), hash_client_secret=False,
                    client_id=f"fanout{i:05d}{secrets.token_hex(8)}")
        for i in range(vens + others))
    Client.objects.bulk_create(Client(application=app, name=app.name, role="ven", scopes=scopes)
                               for app in applications)
    for index, app in enumerate(applications):
        label = LABEL if index < vens else "elsewhere"
        services.save_ven(caller=admin, data={
            "ven_name": app.name, "client_id": app.client_id, "attributes": None,
            "targets": [{"type": "TARGET", "values": [label]}]})
        caller = Caller(client_id=app.client_id, name=app.name, role="ven",
                        scopes=frozenset(scopes.split()))
        services.save_subscription(caller=caller, data={
            "client_name": app.name, "program_id": None, "wire_version": "3.1.0",
            "targets": [], "object_operations": [{
                "objects": ["EVENT"], "operations": ["CREATE"],
                "callbackUrl": f"{receiver_url}/ok/{index}",
                "bearerToken": secrets.token_urlsafe(12)}]})


def post_event(server: VtnServer, session, program_id: str, name: str) -> float:
    body = {"programID": program_id, "eventName": name, "targets": [LABEL],
            "intervals": [{"id": 0, "payloads": [{"type": "SIMPLE", "values": [1]}]}]}
    started = time.monotonic()
    response = session.post(server.url("3.1.0", "events"), json=body)
    if response.status_code != 201:
        raise SystemExit(f"event refused: {response.status_code} {response.text}")
    return started


def measure(receiver: WebhookReceiver, started: float, expected: int, name: str,
            timeout: float = 120.0) -> dict:
    """Wait for ``expected`` notifications of event ``name``; figures from ``started``."""
    deadline = time.monotonic() + timeout
    while True:
        with receiver._lock:
            times = sorted(r.time for r in receiver.requests
                           if r.method == "POST" and isinstance(r.body, dict)
                           and r.body.get("object", {}).get("eventName") == name)
        if len(times) >= expected or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    time.sleep(1.0)  # anything beyond the expected would be a privacy failure
    with receiver._lock:
        paths = [r.path for r in receiver.requests if r.method == "POST"
                 and isinstance(r.body, dict)
                 and r.body.get("object", {}).get("eventName") == name]
    last = times[-1] - started if times else None
    return {"delivered": len(times), "expected": expected,
            "first_s": round(times[0] - started, 3) if times else None,
            "last_s": round(last, 3) if last is not None else None,
            "rate_per_s": round(len(times) / last, 1) if last else None,
            "duplicates": len(paths) - len(set(paths)),
            "wrong_recipients": sum(1 for p in paths if int(p.rsplit("/", 1)[1])
                                    >= expected)}


def baseline(receiver: WebhookReceiver, count: int, threads: int, ca: str) -> dict:
    """The same POSTs straight from this process: transport and receiver ceiling."""
    import requests

    body = {"objectType": "EVENT", "operation": "CREATE",
            "object": {"id": "x" * 32, "objectType": "EVENT", "eventName": "baseline",
                       "targets": [LABEL], "intervals": [{"id": 0, "payloads": [
                           {"type": "SIMPLE", "values": [1]}]}]}}
    queue = list(range(count))
    lock = threading.Lock()

    def work() -> None:
        session = requests.Session()
        while True:
            with lock:
                if not queue:
                    return
                index = queue.pop()
            session.post(receiver.url(f"baseline/{index}"), json=body, verify=ca,
                         headers={"Authorization": "Bearer x"}, timeout=10).close()

    started = time.monotonic()
    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - started
    return {"delivered": count, "last_s": round(elapsed, 3),
            "rate_per_s": round(count / elapsed, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vens", type=int, default=1000)
    parser.add_argument("--others", type=int, default=200)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", ""))
    parser.add_argument("--modes", default="celery,embedded")
    parser.add_argument("--seed-only", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seed_only:
        seed(args.vens, args.others, args.seed_only)
        return

    work = Path(tempfile.mkdtemp(prefix="fanout-bench-"))
    database = E2EDatabase(args.database_url, work)
    server = VtnServer(work, database)
    server.env.update({"VTN_CALLBACK_ALLOW_PRIVATE": "true",
                       "VTN_WEBHOOK_CA_BUNDLE": server.ca_bundle,
                       "VTN_WEBHOOK_VERIFY_CALLBACKS": "true", "LOG_LEVEL": "WARNING"})
    server.prepare()
    receiver = WebhookReceiver(server.pki_dir / "server.pem", server.pki_dir / "server.key")
    receiver.start()
    results: dict = {"vens_targeted": args.vens, "vens_not_targeted": args.others,
                     "database": "postgresql" if database.is_postgres else "sqlite"}
    worker = None
    try:
        started = time.monotonic()
        subprocess.run([sys.executable, __file__, "--vens", str(args.vens), "--others",
                        str(args.others), "--seed-only", receiver.base_url],
                       env={**server.env, "VTN_WEBHOOK_VERIFY_CALLBACKS": "false"},
                       cwd=ROOT, check=True)
        results["seed_s"] = round(time.monotonic() - started, 1)
        bl = server.create_client("bl", "fanout-bl")
        for mode in args.modes.split(","):
            if mode == "celery":
                worker = CeleryWorker(server, work / "worker.log")
                queue = {"CELERY_BROKER_URL": REDIS_URL,
                         "CELERY_TASK_DEFAULT_QUEUE": worker.queue}
                server.env.update(queue)
                worker.env.update(queue)
                worker.start()
            else:
                server.env.pop("CELERY_BROKER_URL", None)
                server.env.pop("CELERY_TASK_DEFAULT_QUEUE", None)
            server.start()
            with server.session(server.token(bl)) as session:
                program = session.post(server.url("3.1.0", "programs"),
                                       json={"programName": f"fanout-{mode}"}).json()
                name = f"fanout-{mode}"
                t0 = post_event(server, session, program["id"], name)
                request_s = time.monotonic() - t0
                results[mode] = measure(receiver, t0, args.vens, name)
                results[mode]["event_post_s"] = round(request_s, 3)
            server.stop()
            if worker is not None:
                worker.stop()
                worker = None
        threads = int(server.env.get("VTN_WEBHOOK_CONCURRENCY", "16"))
        results["baseline_direct_posts"] = baseline(receiver, args.vens, threads,
                                                    server.ca_bundle)
        results["machine"] = machine()
        print(json.dumps(results, indent=2))
    finally:
        if worker is not None:
            worker.stop()
        server.stop()
        receiver.stop()
        database.drop()


if __name__ == "__main__":
    main()
