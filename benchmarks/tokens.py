"""A fleet asking for tokens at once: 200 concurrent token requests over HTTPS.

What it does, in one run on this machine:
1. starts a real VTN over HTTPS on loopback (``manage.py serve``, default 2 workers x 8
   threads; a temporary SQLite database, or a new PostgreSQL database with
   ``--database-url``) and creates ``2 x --clients`` VEN clients;
2. baseline: for half of them, stores the client secret as the previous release did
   (Django's PBKDF2 password hash, what every token request used to verify), then sends
   one token request per client, all at once (a thread and a fresh TLS connection each,
   released together);
3. the same burst for the other half, whose secrets are stored as now (HMAC-SHA256);
4. prints, for each burst: answers by status, wall time until the last answer, latency
   p50/p95/max, and the server's CPU seconds (all gunicorn processes, from /proc) per
   token; and the machine, as JSON.

Usage: ``python benchmarks/tokens.py [--clients 200] [--database-url URL]``. Linux only.
Aim: every one of 200 concurrent token requests answered (200 OK) within 5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.poll import machine  # noqa: E402
from tests.fixtures.server import E2EDatabase, VtnServer, run_manage  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
TIMEOUT_S = 30.0  # the agent's request timeout

SEED = """
import json
from django.contrib.auth.hashers import make_password
from django.db import transaction
from oauth2_provider.models import Application
from vtn.auth import services
out = {"old": [], "new": []}
# One PBKDF2 hash shared by the baseline clients (hashing 200 would take minutes): the
# server still pays a full PBKDF2 verification for each of their requests.
shared = "baseline-" + "x" * 40
old_hash = make_password(shared, hasher="pbkdf2_sha256")
with transaction.atomic():
    for kind in ("old", "new"):
        for i in range(%(count)d):
            issued = services.create_client(name=f"bench-{kind}-{i}", role="ven",
                                            ven_name=f"bench-{kind}-{i}")
            secret = shared if kind == "old" else issued.client_secret
            out[kind].append([issued.client.client_id, secret])
            if kind == "old":
                Application.objects.filter(client_id=issued.client.client_id).update(
                    client_secret=old_hash)
open(%(path)r, "w").write(json.dumps(out))
"""

def tree_cpu_seconds(root_pid: int) -> float:
    """User + system CPU seconds of ``root_pid`` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry.name)
        stats[pid] = fields
        children.setdefault(int(fields[1]), []).append(pid)
    total, stack = 0.0, [root_pid]
    while stack:
        pid = stack.pop()
        if pid in stats:
            total += (int(stats[pid][11]) + int(stats[pid][12])) / TICKS
        stack.extend(children.get(pid, []))
    return total


def hash_costs(runs: int = 5) -> dict:
    """CPU milliseconds of one verification with each way of storing a secret, here."""
    import hashlib
    import hmac

    from django.contrib.auth.hashers import PBKDF2PasswordHasher

    secret, salt = b"x" * 43, b"salt-salt-salt-salt-sa"
    started = time.process_time()
    for _ in range(runs):
        hashlib.pbkdf2_hmac("sha256", secret, salt, PBKDF2PasswordHasher.iterations)
    pbkdf2 = (time.process_time() - started) / runs
    started = time.process_time()
    for _ in range(runs * 1000):
        hmac.new(b"k" * 32, salt + b"$" + secret, hashlib.sha256).hexdigest()
    keyed = (time.process_time() - started) / (runs * 1000)
    return {"pbkdf2_sha256_iterations": PBKDF2PasswordHasher.iterations,
            "pbkdf2_sha256_verify_ms": round(pbkdf2 * 1000, 1),
            "hmac_sha256_verify_ms": round(keyed * 1000, 4)}


def burst(server: VtnServer, clients: list[list[str]]) -> dict:
    """One token request per client, all released at once; each on a new connection."""
    barrier = threading.Barrier(len(clients) + 1)
    results: list[tuple[int | str, float, float]] = [(0, 0.0, 0.0)] * len(clients)
    url = server.url("3.1.0", "auth/token")

    def ask(index: int, client_id: str, secret: str) -> None:
        barrier.wait()
        started = time.perf_counter()
        try:
            response = requests.post(url, verify=server.ca_bundle, timeout=TIMEOUT_S, data={
                "grant_type": "client_credentials", "client_id": client_id,
                "client_secret": secret})
            status = response.status_code
        except requests.RequestException:
            status = f"no answer within {TIMEOUT_S:.0f} s"
        results[index] = (status, started, time.perf_counter())

    threads = [threading.Thread(target=ask, args=(i, *client)) for i, client in
               enumerate(clients)]
    for thread in threads:
        thread.start()
    pid = server._process.pid
    cpu_before = tree_cpu_seconds(pid)
    client_before = resource.getrusage(resource.RUSAGE_SELF)
    released = time.perf_counter()
    barrier.wait()
    for thread in threads:
        thread.join()
    wall = max(end for _, _, end in results) - released
    cpu = tree_cpu_seconds(pid) - cpu_before
    client_after = resource.getrusage(resource.RUSAGE_SELF)
    client_cpu = (client_after.ru_utime + client_after.ru_stime
                  - client_before.ru_utime - client_before.ru_stime)
    latencies = sorted(end - start for _, start, end in results)
    statuses: dict[str, int] = {}
    for status, _, _ in results:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    return {"requests": len(clients), "statuses": statuses,
            "wall_s_until_last_answer": round(wall, 2),
            "latency_p50_s": round(statistics.median(latencies), 2),
            "latency_p95_s": round(latencies[int(len(latencies) * 0.95) - 1], 2),
            "latency_max_s": round(latencies[-1], 2),
            "server_cpu_s_during_burst": round(cpu, 2),
            "server_cpu_ms_per_request": round(cpu * 1000 / len(clients), 1),
            "client_cpu_s": round(client_cpu, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", ""))
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="vtn-bench-tokens-"))
    database = E2EDatabase(args.database_url, workdir)
    server = VtnServer(workdir, database)
    server.env["LOG_LEVEL"] = "WARNING"
    try:
        server.prepare()
        seeded = workdir / "clients.json"
        run_manage(server.env, "shell", "-c",
                   SEED % {"count": args.clients, "path": str(seeded)}, timeout=900)
        clients = json.loads(seeded.read_text())
        server.start()
        # Warm both workers (imports, connections) with a couple of requests first.
        warm = server.create_client("ven", "bench-warm")
        for _ in range(4):
            server.token(warm)
        # Current hashing first: the baseline's abandoned requests would keep the server
        # busy for a minute after its burst.
        new = burst(server, clients["new"])
        time.sleep(2)
        old = burst(server, clients["old"])
        aim = (new["statuses"].get("200") == args.clients
               and new["wall_s_until_last_answer"] <= 5.0)
        print(json.dumps({
            "machine": machine() | {"load_average_1m": os.getloadavg()[0]},
            "database": "postgresql" if database.is_postgres else "sqlite",
            "server": "manage.py serve, 2 workers x 8 threads, TLS",
            "baseline_pbkdf2_stored_secrets": old,
            "hmac_sha256_stored_secrets": new,
            "aim_200_answered_within_5_s": aim,
            "secret_verification": hash_costs(),
        }, indent=2))
    finally:
        server.stop()
        database.drop()


if __name__ == "__main__":
    main()
