"""Polling load: many distinct VENs polling `GET /events` over HTTPS, against baselines.

What it does, in one run on this machine:
1. makes a fresh database (a temporary SQLite file, or a new PostgreSQL database when
   ``--database-url`` points at a PostgreSQL server), a development PKI, and seeds
   ``--vens`` VENs (each a VEN client with a token, in one of 10 target groups) and 100
   active events spread over 5 programs, each event targeted at one group;
2. starts, side by side on loopback, all over HTTPS with the same certificate:
   * the VTN (``manage.py serve``),
   * a bare WSGI app returning the bytes of a real ``GET /events`` answer on the same
     server (gunicorn, same TLS, workers and threads): the framework ceiling,
   * OpenLEADR-python's VTN (OpenADR 2.0b, aiohttp) answering idle ``oadrPoll`` requests,
     from a virtual environment of its own under the cache directory (made on first use
     with ``pip install openleadr==0.5.36``; left out if that fails);
3. warms the VTN up (each worker meets each token once), then runs ``--rounds`` rounds of
   short ``wrk`` runs, one per target in an order that rotates each round: the VTN's
   plain poll (every request the token of a random VEN), its conditional poll (that VEN's
   current ETag in ``If-None-Match``: 304), the bare app and OpenLEADR;
4. prints per-round figures and load averages, the median of the per-round ratios (the
   figures that survive a busy machine), and the VTN workers' resident memory.

Usage: ``python benchmarks/poll.py [--vens 1000] [--rounds 5] [--round-seconds 5]
[--database-url URL]``. Needs ``wrk`` (Debian package ``wrk``).
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


def create_database(url: str | None, workdir: Path, keep: str | None = None
                    ) -> tuple[str, callable, bool]:
    """A database URL, a function that drops it (or not), and whether it must be seeded.

    With ``keep`` (PostgreSQL only) the database of that name is kept after the run and
    reused, already seeded, by the next run that names it."""
    if not url or not url.startswith(("postgres://", "postgresql://")):
        if keep:
            raise SystemExit("--keep-database needs a PostgreSQL --database-url")
        return f"sqlite:///{workdir / 'bench.sqlite3'}", lambda: None, True
    import psycopg

    name = keep or f"vtn_bench_{secrets.token_hex(4)}"
    base, _, _ = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                              (name,)).fetchone() is not None
        if exists and keep:
            with psycopg.connect(f"{base}/{name}") as seeded:
                done = seeded.execute("SELECT to_regclass('bench_seeded') IS NOT NULL"
                                      ).fetchone()[0]
            if done:
                return f"{base}/{name}", lambda: None, False
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')  # a seeding cut short
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return f"{base}/{name}", (lambda: None) if keep else drop, True


def seed(vens: int, events: int, tokens_path: Path) -> None:
    """Runs inside the benchmark's environment (Django configured for its database)."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    django.setup()
    from datetime import timedelta

    from django.db import connection
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
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:  # what a kept database is reused on
            cursor.execute("CREATE TABLE bench_seeded (vens integer, events integer)")
            cursor.execute("INSERT INTO bench_seeded VALUES (%s, %s)", [vens, events])


def seeded_tokens(vens: int, events: int, tokens_path: Path) -> None:
    """Runs inside the benchmark's environment: the tokens of a kept, seeded database, in
    the order of their VENs (VEN i is in group i % GROUPS), valid for six more hours."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    django.setup()
    from datetime import timedelta

    from django.db import connection
    from django.utils import timezone
    from oauth2_provider.models import AccessToken

    with connection.cursor() as cursor:
        cursor.execute("SELECT vens, events FROM bench_seeded")
        seeded = cursor.fetchone()
    if seeded != (vens, events):
        raise SystemExit(f"the kept database was seeded with {seeded[0]} VENs and {seeded[1]} "
                         f"events, not {vens} and {events}: name another one")
    tokens = AccessToken.objects.filter(application__name__startswith="bench-ven-")
    tokens.update(expires=timezone.now() + timedelta(hours=6))
    by_index = {int(name.rsplit("-", 1)[1]): token for token, name in
                tokens.values_list("token", "application__name")}
    tokens_path.write_text("".join(f"{by_index[i]}\n" for i in range(vens)))


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


def run_wrk(url: str, path: str, lines: Path, duration: float, connections: int,
            threads: int, mode: str, template: Path | None = None) -> dict:
    """One ``wrk`` run; requests/s, latency percentiles in ms and unexpected answers."""
    env = {**os.environ, "POLL_PATH": path, "POLL_MODE": mode,
           "POLL_TEMPLATE": str(template or "")}
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency",
         "-s", str(ROOT / "benchmarks" / "wrk_tokens.lua"), url, "--", str(lines)],
        capture_output=True, text=True, check=True, env=env)
    text = out.stdout

    def latency(pct: str) -> float:
        match = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = float(re.search(r"Requests/sec:\s*([\d.]+)", text).group(1))
    socket_errors = re.search(r"Socket errors: (.*)", text)
    return {"requests_per_s": rps, "p50_ms": latency("50"), "p99_ms": latency("99"),
            "unexpected_status": out.stderr.count("unexpected status"),
            "socket_errors": socket_errors.group(1) if socket_errors else "none"}


def openleadr_python(cache: Path) -> Path | None:
    """The interpreter of a virtual environment with OpenLEADR-python, made on first use."""
    venv = cache / "openleadr-0.5.36"
    python = venv / "bin" / "python"
    if not python.exists():
        try:
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True,
                           capture_output=True)
            subprocess.run([str(python), "-m", "pip", "install", "-q", "openleadr==0.5.36"],
                           check=True, capture_output=True, timeout=900)
        except (subprocess.SubprocessError, OSError) as exc:
            print(f"OpenLEADR-python left out: could not install it ({exc})", file=sys.stderr)
            shutil.rmtree(venv, ignore_errors=True)
            return None
    return python


def parse_server(spec: str) -> tuple[str, int, int]:
    """``"gthread:2x8"`` -> ("gthread", 2, 8)."""
    match = re.fullmatch(r"(gthread|granian):(\d+)x(\d+)", spec.strip())
    if match is None:
        raise SystemExit(f"--servers: {spec!r} is not gthread:WxT or granian:WxT")
    return match.group(1), int(match.group(2)), int(match.group(3))


def server_command(server: str, workers: int, threads: int, app: str, env: dict) -> list[str]:
    """How to start ``app`` ("vtn" or "bare") on a server listening on 127.0.0.1:PORT."""
    if app == "vtn":
        return [PYTHON, str(ROOT / "manage.py"), "serve", "--bind", "127.0.0.1:PORT",
                "--server", server, "--workers", str(workers), "--threads", str(threads)]
    if server == "gthread":
        return [PYTHON, str(ROOT / "benchmarks" / "serve_bare.py"), "127.0.0.1:PORT",
                str(workers), str(threads)]
    # What `manage.py serve --server granian` sets (webserver.server.granian_settings).
    return [PYTHON, "-m", "granian", "--interface", "wsgi", "--http", "1", "--no-ws",
            "--host", "127.0.0.1", "--port", "PORT", "--workers", str(workers),
            "--blocking-threads", str(threads), "--access-log",
            "--ssl-certificate", env["VTN_TLS_CERT"], "--ssl-keyfile", env["VTN_TLS_KEY"],
            "--ssl-protocol-min", "tls1.2", "benchmarks.bare_app:application"]


def worker_memory_mib(pid: int) -> list[float]:
    """Resident memory (MiB) of each child process of ``pid`` (gunicorn's workers)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    sizes = []
    for child in children.read_text().split() if children.exists() else []:
        status = Path(f"/proc/{child}/status")
        match = re.search(r"VmRSS:\s*(\d+) kB", status.read_text()) if status.exists() else None
        if match:
            sizes.append(round(int(match.group(1)) / 1024, 1))
    return sizes


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


# The aims of the polling work, checked against each run (docs/benchmarks.md).
AIM_VTN_VS_BARE = 0.6
AIM_304_VS_BARE = 0.8
AIM_VTN_VS_OPENLEADR = 1.0
AIM_P99_MS = 100.0
AIM_SCALE_TOLERANCE = 0.2  # 10,000 VENs within 20 % of the 1,000-VEN figure
AIM_WORKER_RSS_MIB = 250.0


def aims(report: dict, compare: dict | None = None) -> list[tuple[str, str, bool]]:
    """Each aim as (aim, what this run measured, met) for every server configuration of
    ``report``; ``compare`` is the report of a 1,000-VEN run to hold a larger fleet to."""
    ratios, medians = report["median_ratios"], report["medians"]
    vens = report["setup"]["vens"]
    rows: list[tuple[str, str, bool]] = []
    for label, suffix in report["setup"]["suffixes"].items():
        for aim, key, floor in (("VTN / bare app", "vtn_vs_bare", AIM_VTN_VS_BARE),
                                ("304 / bare app", "vtn_304_vs_bare", AIM_304_VS_BARE),
                                ("VTN / OpenLEADR-python", "vtn_vs_openleadr",
                                 AIM_VTN_VS_OPENLEADR)):
            value = ratios.get(f"{key}{suffix}")
            if value is not None:
                rows.append((f"{label}: {aim} >= {floor:g}", f"{value:.2f}", value >= floor))
        for name, what in ((f"vtn{suffix}", "VTN"), (f"vtn_304{suffix}", "304")):
            p99 = medians[name]["p99_ms"]
            rows.append((f"{label}: {what} p99 < {AIM_P99_MS:g} ms", f"{p99:.1f} ms",
                         p99 < AIM_P99_MS))
        rss = report["vtn_worker_rss_mib"].get(label) or []
        if rss and vens >= 10_000:
            rows.append((f"{label}: worker RSS < {AIM_WORKER_RSS_MIB:g} MiB at {vens:,} VENs",
                         f"{max(rss):.0f} MiB", max(rss) < AIM_WORKER_RSS_MIB))
        if compare is not None and vens > compare["setup"]["vens"]:
            before = compare["median_ratios"].get(f"vtn_vs_bare{suffix}")
            now = ratios.get(f"vtn_vs_bare{suffix}")
            if before and now is not None:
                rows.append((f"{label}: VTN / bare at {vens:,} VENs within "
                             f"{AIM_SCALE_TOLERANCE:.0%} of {compare['setup']['vens']:,}",
                             f"{now:.2f} against {before:.2f}",
                             now >= (1 - AIM_SCALE_TOLERANCE) * before))
    return rows


def print_aims(report: dict, compare: dict | None = None) -> None:
    machine_ = report["machine"]
    print(f"\nAims ({report['setup']['vens']:,} VENs; medians of per-round ratios):")
    for aim, measured, met in aims(report, compare):
        print(f"  {'met    ' if met else 'NOT MET'}  {aim:<58} {measured}")
    print(f"  load average: start {report['load_average']['start']}, end "
          f"{report['load_average']['end']}; machine: {machine_['cpus']} vCPU "
          f"{machine_['cpu_model']}, {machine_['memory']}, Python {machine_['python']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vens", type=int, default=1000)
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--round-seconds", type=float, default=5)
    # Tokens are drawn at random per request, so each worker meets every token only after
    # several times as many requests as there are VENs.
    parser.add_argument("--warmup", type=float, default=None,
                        help="seconds of load on the VTN before the rounds (default: 20 s, "
                             "plus 3 s per 1,000 VENs over 1,000)")
    parser.add_argument("--warmup-max", type=float, default=300,
                        help="seconds of further 5 s warm-up runs at most, until the rate "
                             "settles")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--servers", default=None,
                        help="comma-separated server configurations to compare in one run, "
                             "each SERVER:WORKERSxTHREADS with SERVER gthread (manage.py "
                             "serve) or granian (threads: its blocking threads); the VTN and "
                             "the bare app run on each (default: gthread:WORKERSxTHREADS)")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"))
    parser.add_argument("--cache-dir", type=Path,
                        default=Path(os.environ.get("XDG_CACHE_HOME",
                                                    Path.home() / ".cache")) / "vtn-bench")
    parser.add_argument("--no-openleadr", action="store_true",
                        help="leave OpenLEADR-python out")
    parser.add_argument("--keep-database", metavar="NAME",
                        help="seed the PostgreSQL database NAME once and keep it: later runs "
                             "naming it reuse it as seeded (same --vens and --events)")
    parser.add_argument("--save-report", type=Path, help="write the JSON report here too")
    parser.add_argument("--compare", type=Path,
                        help="a report saved by a 1,000-VEN run: hold this (larger) fleet's "
                             "VTN / bare ratio to within 20 %% of it")
    parser.add_argument("--seed-only", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--tokens-only", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seed_only:
        seed(args.vens, args.events, args.seed_only)
        return
    if args.tokens_only:
        seeded_tokens(args.vens, args.events, args.tokens_only)
        return
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is required: apt-get install wrk")
    warmup = args.warmup if args.warmup is not None else 20 + 3 * max(0, args.vens - 1000) / 1000

    workdir = Path(tempfile.mkdtemp(prefix="vtn-bench-"))
    database_url, drop_database, fresh = create_database(args.database_url, workdir,
                                                         args.keep_database)
    env = {**os.environ, "DATABASE_URL": database_url, "VTN_VAR_DIR": str(workdir),
           "SECRET_KEY": secrets.token_urlsafe(32), "DJANGO_SETTINGS_MODULE": "config.settings",
           "VTN_TLS_CERT": str(workdir / "pki" / "server.pem"),
           "VTN_TLS_KEY": str(workdir / "pki" / "server.key"), "LOG_LEVEL": "WARNING",
           "PYTHONPATH": str(ROOT)}
    manage = [PYTHON, str(ROOT / "manage.py")]
    processes: list[subprocess.Popen] = []
    try:
        subprocess.run([*manage, "pki", "init", "--dir", str(workdir / "pki")], env=env,
                       check=True, capture_output=True)
        subprocess.run([*manage, "migrate", "-v0"], env=env, check=True)
        started = time.monotonic()
        tokens = workdir / "tokens.txt"
        subprocess.run([PYTHON, __file__, "--vens", str(args.vens), "--events", str(args.events),
                        "--seed-only" if fresh else "--tokens-only", str(tokens)], env=env,
                       check=True, cwd=ROOT)
        seeded_in = time.monotonic() - started
        ca = workdir / "pki" / "ca.pem"
        poll_path = "/openadr3/3.1.0/events"

        def start(name: str, command: list[str], probe: str, extra_env: dict | None = None
                  ) -> tuple[str, subprocess.Popen]:
            port = free_port()
            log = workdir / f"{name}.log"
            with log.open("w") as handle:
                process = subprocess.Popen([part.replace("PORT", str(port)) for part in command],
                                           env={**env, **(extra_env or {})}, cwd=ROOT,
                                           stdout=handle, stderr=subprocess.STDOUT)
            processes.append(process)
            base = f"https://127.0.0.1:{port}"
            wait_until_up(f"{base}{probe}", ca, process, log)
            return base, process

        import requests

        configs = [parse_server(spec) for spec in
                   (args.servers or f"gthread:{args.workers}x{args.threads}").split(",")]
        token_list = tokens.read_text().split()
        vtn_processes: dict[str, subprocess.Popen] = {}
        targets: dict[str, tuple] = {}
        body = workdir / "body.json"
        for server, workers, threads in configs:
            label = f"{server}:{workers}x{threads}"
            suffix = "" if len(configs) == 1 else f"@{label}"
            vtn, vtn_processes[label] = start(
                f"vtn-{server}-{workers}x{threads}",
                server_command(server, workers, threads, "vtn", env),
                "/openadr3/3.1.0/auth/server")
            if not body.exists():
                etags = []
                for group in range(min(GROUPS, len(token_list))):
                    answer = requests.get(
                        f"{vtn}{poll_path}", verify=str(ca), timeout=30,
                        headers={"Authorization": f"Bearer {token_list[group]}"})
                    answer.raise_for_status()
                    etags.append(answer.headers["ETag"])
                    if group == 0:
                        body.write_bytes(answer.content)
                conditional = workdir / "tokens-etags.txt"
                conditional.write_text("".join(f"{token} {etags[index % GROUPS]}\n"
                                               for index, token in enumerate(token_list)))
            bare, _ = start(f"bare-{server}-{workers}x{threads}",
                            server_command(server, workers, threads, "bare", env), "/",
                            {"BARE_APP_BODY": str(body)})
            targets |= {
                f"vtn{suffix}": (vtn, poll_path, tokens, "bearer", None),
                f"vtn_304{suffix}": (vtn, poll_path, conditional, "etag", None),
                f"bare{suffix}": (bare, "/", tokens, "bearer", None),
            }
        suffixes = ["" if len(configs) == 1 else f"@{s}:{w}x{t}" for s, w, t in configs]
        python = None if args.no_openleadr else openleadr_python(args.cache_dir)
        if python is not None:
            template = workdir / "oadr_poll.xml"
            prefix = "/OpenADR2/Simple/2.0b"
            openleadr, _ = start("openleadr", [
                str(python), str(ROOT / "benchmarks" / "baselines" / "openleadr_vtn.py"),
                "127.0.0.1", "PORT", env["VTN_TLS_CERT"], env["VTN_TLS_KEY"], str(template)],
                f"{prefix}/OadrPoll")
            ven_ids = workdir / "ven-ids.txt"
            ven_ids.write_text("".join(f"bench-ven-{i}\n" for i in range(args.vens)))
            targets["openleadr"] = (openleadr, f"{prefix}/OadrPoll", ven_ids, "oadr", template)

        def run(name: str, seconds: float) -> dict:
            base, path, lines, mode, template = targets[name]
            return run_wrk(base, path, lines, seconds, args.connections, args.wrk_threads,
                           mode, template)

        loads = [load_average()]
        # Until each VTN's rate settles: two 5 s runs within 10 % after the first, or the
        # maximum. (Each worker loads every token in bulk on its first unknown one.)
        warm = {}
        for suffix in suffixes:
            warm_runs = [run(f"vtn{suffix}", warmup)]
            began = time.monotonic()
            while time.monotonic() - began < args.warmup_max:
                warm_runs.append(run(f"vtn{suffix}", 5))
                previous, last = (r["requests_per_s"] for r in warm_runs[-2:])
                if len(warm_runs) > 2 and abs(last - previous) <= 0.1 * previous:
                    break
            warm[f"vtn{suffix}"] = {"runs": len(warm_runs),
                                    "requests_per_s": [r["requests_per_s"] for r in warm_runs]}
        for name in targets:
            if not name.startswith("vtn@") and name != "vtn":
                run(name, 2)  # connections, TLS sessions, interpreter caches
        names = list(targets)
        rounds: list[dict] = []
        for index in range(args.rounds):
            order = names[index % len(names):] + names[:index % len(names)]
            figures = {name: run(name, args.round_seconds) for name in order}
            figures["load_average"] = load_average()
            rounds.append(figures)
            print(f"round {index + 1}: " + ", ".join(
                f"{name} {figures[name]['requests_per_s']:.0f}/s" for name in names)
                + f" (load {figures['load_average']})", file=sys.stderr)
        loads.append(load_average())
        memory = {label: worker_memory_mib(process.pid)
                  for label, process in vtn_processes.items()}

        def ratio(a: str, b: str) -> float | None:
            if b not in targets:
                return None
            return round(median([r[a]["requests_per_s"] / r[b]["requests_per_s"]
                                 for r in rounds]), 3)

        summary = {name: {key: round(median([r[name][key] for r in rounds]), 2)
                          for key in ("requests_per_s", "p50_ms", "p99_ms")}
                   for name in names}
        report = {
            "machine": machine(),
            "setup": {"vens": args.vens, "events": args.events,
                      "events_per_ven": args.events // GROUPS,
                      "response_bytes": len(body.read_bytes()),
                      "database": database_url.split(":", 1)[0],
                      "servers": [f"{s}: {w} workers x {t} threads" for s, w, t in configs],
                      "suffixes": {f"{s}:{w}x{t}": suffix for (s, w, t), suffix
                                   in zip(configs, suffixes, strict=True)},
                      "server": "the VTN and the bare app on each of the servers above, "
                                "HTTPS; OpenLEADR-python 0.5.36 (aiohttp, one process), HTTPS",
                      "load": f"wrk {args.wrk_threads} thread(s), {args.connections} "
                              f"keep-alive connections, {args.rounds} rounds of "
                              f"{args.round_seconds:g} s per target, order rotating, a random "
                              "VEN per request",
                      "seeded_in_s": round(seeded_in, 1) if fresh else "kept database",
                      "warmup_s": warmup},
            "load_average": {"start": loads[0], "end": loads[1]},
            "warmup": warm,
            "rounds": rounds,
            "medians": summary,
            "median_ratios": {key: value for suffix in suffixes for key, value in (
                (f"vtn_vs_bare{suffix}", ratio(f"vtn{suffix}", f"bare{suffix}")),
                (f"vtn_vs_openleadr{suffix}", ratio(f"vtn{suffix}", "openleadr")),
                (f"vtn_304_vs_bare{suffix}", ratio(f"vtn_304{suffix}", f"bare{suffix}")),
                (f"bare_vs_first_bare{suffix}", ratio(f"bare{suffix}", f"bare{suffixes[0]}")
                 if suffix != suffixes[0] else None),
                (f"vtn_vs_first_vtn{suffix}", ratio(f"vtn{suffix}", f"vtn{suffixes[0]}")
                 if suffix != suffixes[0] else None))},
            "vtn_worker_rss_mib": memory,
        }
        print(json.dumps(report, indent=2))
        print()
        width = max(len(name) for name in names)
        print(f"{'':>{width}} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}   (medians of "
              f"{args.rounds} rounds)")
        for name in names:
            row = summary[name]
            print(f"{name:>{width}} {row['requests_per_s']:>9.0f} {row['p50_ms']:>8.2f} "
                  f"{row['p99_ms']:>8.2f}")
        for key, value in report["median_ratios"].items():
            if value is not None:
                print(f"median ratio {key}: {value:.2f}")
        print(f"VTN workers' RSS (MiB): {memory}; load average start {loads[0]}, "
              f"end {loads[1]}")
        print_aims(report, json.loads(args.compare.read_text()) if args.compare else None)
        if args.save_report:
            args.save_report.write_text(json.dumps(report, indent=2))
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        drop_database()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
