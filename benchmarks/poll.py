"""Polling load: many distinct VENs polling `GET /events` over HTTPS.

What it does, in one run on this machine:
1. makes a fresh database (a temporary SQLite file, or a new PostgreSQL database when
   ``--database-url`` points at a PostgreSQL server), a development PKI, and seeds
   1,000 VENs (each a VEN client with a token, in one of 10 target groups) and 100
   active events spread over 5 programs, each event targeted at one group;
2. serves the VTN with ``manage.py serve`` over HTTPS on loopback and drives it with
   ``wrk``, every request carrying a token of a randomly chosen VEN: a warm-up run
   (each worker meets each token for the first time) and then the measured run;
3. serves a bare WSGI app returning the same bytes as a real response on the same
   server (gunicorn, same TLS, workers and threads): the framework ceiling;
4. prints requests/s, p50 and p99 latency for both, their ratio, and the machine.

Usage: ``python benchmarks/poll.py [--duration 15] [--connections 32] [--database-url URL]``.
Needs ``wrk`` (Debian package ``wrk``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
GROUPS = 10


def machine() -> dict:
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        match = re.search(r"model name\s*:\s*(.+)", cpuinfo.read_text())
        model = match.group(1).strip() if match else model
    memory = "unknown"
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        match = re.search(r"MemTotal:\s*(\d+) kB", meminfo.read_text())
        memory = f"{int(match.group(1)) / 1024 / 1024:.1f} GiB" if match else memory
    return {"cpus": os.cpu_count(), "cpu_model": model, "memory": memory,
            "python": platform.python_version(), "kernel": platform.release()}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def create_database(url: str | None, workdir: Path) -> tuple[str, callable]:
    """A fresh database URL and a function that drops it."""
    if not url or not url.startswith(("postgres://", "postgresql://")):
        return f"sqlite:///{workdir / 'bench.sqlite3'}", lambda: None
    import psycopg

    name = f"vtn_bench_{secrets.token_hex(4)}"
    base, _, _ = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return f"{base}/{name}", drop


def seed(vens: int, events: int, tokens_path: Path) -> None:
    """Runs inside the benchmark's environment (Django configured for its database)."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    django.setup()
    from datetime import timedelta

    from django.utils import timezone
    from oauth2_provider.models import AccessToken, Application

    from vtn import services
    from vtn.auth.caller import Caller
    from vtn.models import Client

    admin = Caller(client_id="bench-bl", name="bench-bl", role="bl",
                   scopes=frozenset({"read_all"}), internal=True)
    applications = Application.objects.bulk_create(
        Application(name=f"bench-ven-{i}", client_type=Application.CLIENT_CONFIDENTIAL,
                    authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
                    client_secret=secrets.token_urlsafe(16), hash_client_secret=False,
                    client_id=f"benchven{i:05d}{secrets.token_hex(8)}")
        for i in range(vens)
    )
    scopes = "read_targets read_ven_objects write_reports write_subscriptions write_vens"
    Client.objects.bulk_create(Client(application=app, name=app.name, role="ven", scopes=scopes)
                               for app in applications)
    for index, app in enumerate(applications):
        services.save_ven(caller=admin, data={
            "ven_name": f"bench-ven-{index}", "client_id": app.client_id, "attributes": None,
            "targets": [{"type": "TARGET", "values": [f"group-{index % GROUPS}"]}],
        })
    expires = timezone.now() + timedelta(hours=6)
    tokens = [secrets.token_urlsafe(30) for _ in applications]
    AccessToken.objects.bulk_create(AccessToken(token=token, application=app, expires=expires,
                                                scope=scopes)
                                    for token, app in zip(tokens, applications, strict=True))
    programs = [services.save_program(caller=admin, data={
        "program_name": f"bench-program-{p}", "interval_period": None,
        "program_descriptions": None, "payload_descriptors": None, "attributes": None,
        "targets": []}) for p in range(5)]
    start = timezone.now() + timedelta(hours=1)
    for e in range(events):
        services.save_event(caller=admin, data={
            "program_id": programs[e % len(programs)].id, "event_name": f"bench-event-{e}",
            "priority": e % 3, "duration": None, "report_descriptors": None,
            "payload_descriptors": [{"objectType": "EVENT_PAYLOAD_DESCRIPTOR",
                                     "payloadType": "DISPATCH_SETPOINT", "units": "KW"}],
            "interval_period": {"start": start.isoformat().replace("+00:00", "Z"),
                                "duration": "PT30M"},
            "intervals": [{"id": i, "payloads": [{"type": "DISPATCH_SETPOINT",
                                                  "values": [100 + i]}]} for i in range(4)],
            "targets": [{"type": "TARGET", "values": [f"group-{e % GROUPS}"]}],
        })
    tokens_path.write_text("\n".join(tokens) + "\n")


def wait_until_up(url: str, ca: Path, process: subprocess.Popen, log: Path) -> None:
    import requests

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited early:\n{log.read_text()}")
        try:
            requests.get(url, verify=str(ca), timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.3)
    raise SystemExit(f"server did not start:\n{log.read_text()}")


def run_wrk(url: str, tokens: Path, duration: int, connections: int, threads: int) -> dict:
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency",
         "-s", str(ROOT / "benchmarks" / "wrk_tokens.lua"), url, "--", str(tokens)],
        capture_output=True, text=True, check=True, env={**os.environ,
                                                         "POLL_PATH": "/openadr3/3.1.0/events"})
    text = out.stdout

    def latency(pct: str) -> float:
        match = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = float(re.search(r"Requests/sec:\s*([\d.]+)", text).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    socket_errors = re.search(r"Socket errors: (.*)", text)
    return {"requests_per_s": rps, "p50_ms": latency("50"), "p99_ms": latency("99"),
            "non_2xx": int(errors.group(1)) if errors else 0,
            "socket_errors": socket_errors.group(1) if socket_errors else "none",
            "status_stderr": out.stderr.strip()[:200]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vens", type=int, default=1000)
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--duration", type=int, default=15, help="seconds per measured run")
    # Tokens are drawn at random per request, so a worker meets all 1,000 of them only
    # after several thousand requests: a minute of warm-up reaches the steady state.
    parser.add_argument("--warmup", type=int, default=60,
                        help="seconds of load before the measured run (reported separately)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"))
    parser.add_argument("--seed-only", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seed_only:
        seed(args.vens, args.events, args.seed_only)
        return
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is required: apt-get install wrk")

    workdir = Path(tempfile.mkdtemp(prefix="vtn-bench-"))
    database_url, drop_database = create_database(args.database_url, workdir)
    env = {**os.environ, "DATABASE_URL": database_url, "VTN_VAR_DIR": str(workdir),
           "SECRET_KEY": secrets.token_urlsafe(32), "DJANGO_SETTINGS_MODULE": "config.settings",
           "VTN_TLS_CERT": str(workdir / "pki" / "server.pem"),
           "VTN_TLS_KEY": str(workdir / "pki" / "server.key"), "LOG_LEVEL": "WARNING",
           "PYTHONPATH": str(ROOT)}
    manage = [PYTHON, str(ROOT / "manage.py")]
    try:
        subprocess.run([*manage, "pki", "init", "--dir", str(workdir / "pki")], env=env,
                       check=True, capture_output=True)
        subprocess.run([*manage, "migrate", "-v0"], env=env, check=True)
        started = time.monotonic()
        tokens = workdir / "tokens.txt"
        subprocess.run([PYTHON, __file__, "--vens", str(args.vens), "--events", str(args.events),
                        "--seed-only", str(tokens)], env=env, check=True, cwd=ROOT)
        seeded_in = time.monotonic() - started

        port = free_port()
        base = f"https://127.0.0.1:{port}"
        ca = workdir / "pki" / "ca.pem"
        results = {}
        log = workdir / "vtn.log"
        with log.open("w") as handle:
            server = subprocess.Popen([*manage, "serve", "--bind", f"127.0.0.1:{port}",
                                       "--workers", str(args.workers)], env=env,
                                      stdout=handle, stderr=subprocess.STDOUT)
        try:
            wait_until_up(f"{base}/openadr3/3.1.0/auth/server", ca, server, log)
            import requests

            token = tokens.read_text().split()[0]
            sample = requests.get(f"{base}/openadr3/3.1.0/events", verify=str(ca),
                                  headers={"Authorization": f"Bearer {token}"}, timeout=10)
            sample.raise_for_status()
            body = workdir / "body.json"
            body.write_bytes(sample.content)
            # Each worker process resolves a token once and keeps it: warm up first, as a
            # fleet that has been polling for a while would have, and report both runs.
            results["vtn_warmup"] = run_wrk(base, tokens, args.warmup, args.connections,
                                            args.wrk_threads)
            results["vtn"] = run_wrk(base, tokens, args.duration, args.connections,
                                     args.wrk_threads)
        finally:
            server.terminate()
            server.wait(timeout=30)

        port = free_port()
        base = f"https://127.0.0.1:{port}"
        bare_env = {**env, "BARE_APP_BODY": str(body)}
        with log.open("w") as handle:
            bare = subprocess.Popen([PYTHON, str(ROOT / "benchmarks" / "serve_bare.py"),
                                     f"127.0.0.1:{port}", str(args.workers)], env=bare_env,
                                    stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            wait_until_up(f"{base}/", ca, bare, log)
            run_wrk(base, tokens, min(args.warmup, 3), args.connections, args.wrk_threads)
            results["bare"] = run_wrk(base, tokens, args.duration, args.connections,
                                      args.wrk_threads)
        finally:
            bare.terminate()
            bare.wait(timeout=30)

        report = {
            "machine": machine(),
            "setup": {"vens": args.vens, "events": args.events, "events_per_ven": args.events
                      // GROUPS, "response_bytes": len(body.read_bytes()),
                      "database": database_url.split(":", 1)[0],
                      "server": f"manage.py serve, {args.workers} workers, HTTPS",
                      "load": f"wrk {args.wrk_threads} thread(s), {args.connections} "
                              f"keep-alive connections, {args.duration}s, random VEN token "
                              "per request", "seeded_in_s": round(seeded_in, 1)},
            "results": results,
            "vtn_vs_bare_throughput": round(results["vtn"]["requests_per_s"]
                                            / results["bare"]["requests_per_s"], 3),
        }
        print(json.dumps(report, indent=2))
        print()
        print(f"{'':>22} {'req/s':>10} {'p50 ms':>9} {'p99 ms':>9}")
        for name in ("vtn_warmup", "vtn", "bare"):
            row = results[name]
            print(f"{name:>22} {row['requests_per_s']:>10.0f} {row['p50_ms']:>9.2f} "
                  f"{row['p99_ms']:>9.2f}")
        print(f"VTN throughput is {report['vtn_vs_bare_throughput']:.1%} of the bare app's.")
    finally:
        drop_database()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
