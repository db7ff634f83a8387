"""What operator isolation costs business logic on the OpenADR API's polled lists.

What it does, in one run on this machine:
1. makes a fresh database (a new PostgreSQL database when ``--database-url`` points at a
   PostgreSQL server, else a temporary SQLite file), migrates it, and seeds two network
   operators, each owning ``--programs`` programs with ``--events`` events each (through
   ``vtn.services`` and ``vtn.ownership``, as the dispatch profile writes them), plus
   two business-logic clients with real tokens: one granted every operator (not
   narrowed: the baseline) and one granted a single operator (one ``NOT EXISTS`` on the
   owner table per query);
2. in interleaved short rounds (baseline, narrowed, baseline, ...), answers
   ``GET /openadr3/3.1.0/events?limit=50`` and ``GET .../programs?limit=50`` through the
   whole Django stack (authentication, permissions, view, selector, rendering) with the
   rendered-list cache emptied before every request, so each request runs its query;
3. prints per request the median time of each, the median of the per-round ratios
   (narrowed / baseline), the load average before and after, and the machine.

VEN clients (the polling sites) are not narrowed by operator at all: their path gets no
condition, so it is not measured here (``benchmarks/poll.py`` measures it).

Usage: ``python benchmarks/operator_scope.py [--rounds 15] [--requests 20] [--database-url URL]``.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.poll import create_database, machine  # noqa: E402

OPERATORS = ("ENWL", "SPEN-D")
PATHS = ("/openadr3/3.1.0/events?limit=50", "/openadr3/3.1.0/programs?limit=50")


def seed(programs: int, events: int) -> dict[str, str]:
    """Two operators' programs and events, and the two clients' tokens."""
    from django.db import transaction

    from dispatch import scope
    from dispatch.registry import NETWORK_OPERATORS
    from vtn import ownership, services
    from vtn.auth.caller import Caller
    from vtn.auth.scopes import ALL_SCOPES
    from vtn.auth.services import create_client
    from vtn.models import ObjectOwner

    loader = Caller(client_id="bench", name="bench", role="bl", scopes=frozenset(ALL_SCOPES),
                    internal=True)
    interval = [{"id": 0, "payloads": [{"type": "PRICE", "values": [0.2]}]}]
    for operator in OPERATORS:
        for p in range(programs):
            with transaction.atomic():
                program = services.save_program(caller=loader, data={
                    "program_name": f"bench-{operator}-{p}"})
                ownership.assign(ObjectOwner.Kind.PROGRAM, program.pk, [operator])
                for e in range(events):
                    services.save_event(caller=loader, data={
                        "program_id": program.pk, "event_name": f"e{e}",
                        "interval_period": {"start": "2030-01-01T00:00:00Z",
                                            "duration": "PT1H"},
                        "intervals": interval})
    tokens = {}
    for name, operators in (("baseline", list(NETWORK_OPERATORS)), ("narrowed", ["ENWL"])):
        issued = create_client(name=f"bench-{name}", role="bl")
        scope.set_operators(client=issued.client, operators=operators, changed_by="bench")
        tokens[name] = token_of(issued.client.client_id, issued.client_secret)
    return tokens


def token_of(client_id: str, secret: str) -> str:
    from django.test import Client

    body = urlencode({"grant_type": "client_credentials", "client_id": client_id,
                      "client_secret": secret})
    response = Client().post("/openadr3/3.1.0/auth/token", body,
                             content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200, response.content
    return response.json()["access_token"]


def timed_requests(http, token: str, path: str, count: int) -> tuple[float, int]:
    """Seconds per request (median of ``count``) and the rows of the last answer."""
    from vtn.api import views

    headers = {"Authorization": f"Bearer {token}"}
    times, rows = [], 0
    for _ in range(count):
        views._polled.clear()  # every request runs its query
        started = time.perf_counter()
        response = http.get(path, headers=headers)
        times.append(time.perf_counter() - started)
        assert response.status_code == 200, response.content[:300]
        rows = len(response.json())
    return statistics.median(times), rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=20, help="programs per operator")
    parser.add_argument("--events", type=int, default=100, help="events per program")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--requests", type=int, default=20, help="requests per round")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", ""))
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="vtn-bench-"))
    database_url, drop_database, _ = create_database(args.database_url, workdir)
    os.environ.update({"DATABASE_URL": database_url, "VTN_VAR_DIR": str(workdir),
                       "SECRET_KEY": secrets.token_urlsafe(32), "LOG_LEVEL": "WARNING",
                       "DJANGO_SETTINGS_MODULE": "config.settings",
                       "ALLOWED_HOSTS": "testserver", "CELERY_BROKER_URL": "",
                       "VTN_WEBHOOKS_ENABLED": "false"})
    try:
        import django
        from django.core.management import call_command
        from django.db import connection
        from django.test import Client

        django.setup()
        call_command("migrate", verbosity=0)
        tokens = seed(args.programs, args.events)
        http = Client()
        for name in tokens:  # warm: tokens resolved, reaches cached, plans made
            for path in PATHS:
                timed_requests(http, tokens[name], path, 3)
        load_before = os.getloadavg()
        results: dict[str, dict[str, list[float]]] = {
            path: {"baseline": [], "narrowed": [], "ratio": []} for path in PATHS}
        rows: dict[str, dict[str, int]] = {path: {} for path in PATHS}
        for _ in range(args.rounds):
            for path in PATHS:
                base, rows[path]["baseline"] = timed_requests(http, tokens["baseline"], path,
                                                              args.requests)
                narrow, rows[path]["narrowed"] = timed_requests(http, tokens["narrowed"],
                                                                path, args.requests)
                results[path]["baseline"].append(base)
                results[path]["narrowed"].append(narrow)
                results[path]["ratio"].append(narrow / base)
        load_after = os.getloadavg()
        connection.close()
        report = {
            "machine": machine(),
            "database": database_url.split(":", 1)[0],
            "setup": {"operators": len(OPERATORS), "programs_per_operator": args.programs,
                      "events_per_program": args.events, "rounds": args.rounds,
                      "requests_per_round": args.requests},
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in load_after],
            "per_request": {
                path: {"baseline_ms": round(statistics.median(r["baseline"]) * 1000, 2),
                       "narrowed_ms": round(statistics.median(r["narrowed"]) * 1000, 2),
                       "median_ratio": round(statistics.median(r["ratio"]), 3),
                       "extra_ms": round((statistics.median(r["narrowed"])
                                          - statistics.median(r["baseline"])) * 1000, 2),
                       "rows": rows[path]}
                for path, r in results.items()},
        }
        print(json.dumps(report, indent=2))
    finally:
        drop_database()


if __name__ == "__main__":
    main()
