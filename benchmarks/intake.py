"""Meter-data intake end to end: readings per second reaching ``MeterReading`` over HTTPS
on loopback, through the FSP back office's bulk endpoint and through the agent's USAGE
reports, against a PostgreSQL ``COPY`` of the same rows in the same run.

What it does, in one run on this machine:
1. starts a real VTN (``manage.py serve``, 2 workers, TLS) on a throwaway PostgreSQL
   database, as the end-to-end tests do, and onboards one FSP with ``--sites`` sites of
   ``--units`` units each (unsigned: no site key), plus its metering back-office client;
2. runs ``--rounds`` rounds; each round takes in one fresh day of half-hourly readings of
   every unit, kWh and kVArh (``sites * units * 48 * 2`` readings), three times, in an
   order that rotates every round:
   - **bulk**: ``POST /dispatch/api/v1/fsp/meter-readings`` with ``--rows`` rows per
     request, two requests in flight (one per server worker);
   - **reports**: each site's VEN posts its day as OpenADR 3.1 reports on its metering
     event, as the agent does (one resource per unit, one interval per period carrying
     USAGE and GB_REACTIVE, at most 500 intervals per report), two in flight;
   - **copy**: the benchmark itself ``COPY``s the same rows (formatted in Python) into a
     table made ``LIKE`` the readings table (its constraints and indexes) on the same
     server, and commits;
   each is timed from the first request to the last answer (or the commit), and the rows
   stored are counted in the database afterwards;
3. prints, as JSON, the median readings per second of each path, the medians of the
   per-round ratios path / copy, the load average before and after, and the machine.

Usage: ``DATABASE_URL=postgres://... python benchmarks/intake.py [--rounds 5]
[--sites 20] [--units 10] [--rows 5000]``. Aim: at least 20,000 readings/s on both paths.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.poll import machine  # noqa: E402
from tests.fixtures.server import E2EDatabase, VtnServer  # noqa: E402

OPERATOR = "NGED-WM"
PERIODS = 48
MAX_INTERVALS = 500  # the agent's largest report (ven_client.reports)
IN_FLIGHT = 2
AIM = 20_000


def z(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def kwh(unit: int, period: int) -> str:
    return f"{(unit * 7 + period * 13) % 997 / 1000:.3f}"


def kvarh(unit: int, period: int) -> str:
    return f"{(unit * 3 + period * 11) % 499 / 1000 - 0.2:.3f}"


class Bench:
    def __init__(self, server: VtnServer, args: argparse.Namespace) -> None:
        self.server, self.args = server, args
        self.fsp = "bench"
        commands = []
        for site in range(args.sites):
            units = [a for u in range(args.units) for a in ("--unit", f"u{site}x{u}:50:import")]
            commands.append(["fsp", "onboard", "--operator", OPERATOR, "--fsp", self.fsp,
                             "--site", f"s{site}", *units])
        commands.append(["fsp", "staff-client", "--operator", OPERATOR, "--fsp", self.fsp,
                         "--name", "bench-metering", "--role", "metering"])
        printed = [json.loads(text) for text in server.manage_many(*commands)]
        self.sites, office = printed[:-1], printed[-1]
        self.office_token = server.token(office)
        self.site_tokens = [server.token(site) for site in self.sites]
        with server.session(self.site_tokens[0]) as session:
            event = session.get(server.url("3.1.0", f"events/{self.sites[0]['metering_event_id']}"),
                                timeout=30).json()
        self.program_id = event["programID"]
        self.day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)

    def next_day(self) -> datetime:
        self.day -= timedelta(days=1)
        return self.day

    @property
    def readings_per_day(self) -> int:
        return self.args.sites * self.args.units * PERIODS * 2

    # -- the three paths --

    def bulk(self, day: datetime) -> float:
        rows = [{"unit": f"u{s}x{u}", "start": z(day + timedelta(minutes=30 * p)),
                 "kwh": kwh(u, p), "kvarh": kvarh(u, p)}
                for s in range(self.args.sites) for u in range(self.args.units)
                for p in range(PERIODS)]
        bodies = [json.dumps({"readings": rows[i:i + self.args.rows]}).encode()
                  for i in range(0, len(rows), self.args.rows)]
        url = f"{self.server.base_url}/dispatch/api/v1/fsp/meter-readings"
        sessions = [self.server.session(self.office_token) for _ in range(IN_FLIGHT)]

        def send(index: int) -> None:
            response = sessions[index % IN_FLIGHT].post(
                url, data=bodies[index], headers={"Content-Type": "application/json"},
                timeout=300)
            if response.status_code != 200:
                raise RuntimeError(f"bulk answered {response.status_code}: "
                                   f"{response.text[:500]}")

        return self._timed(send, len(bodies), sessions)

    def reports(self, day: datetime) -> float:
        bodies = []
        for s, site in enumerate(self.sites):
            intervals = [(u, p) for u in range(self.args.units) for p in range(PERIODS)]
            for i in range(0, len(intervals), MAX_INTERVALS):
                resources: dict[str, list] = {}
                for u, p in intervals[i:i + MAX_INTERVALS]:
                    resources.setdefault(f"u{s}x{u}", []).append({
                        "id": len(resources.get(f"u{s}x{u}", [])),
                        "intervalPeriod": {"start": z(day + timedelta(minutes=30 * p)),
                                           "duration": "PT30M"},
                        "payloads": [{"type": "USAGE", "values": [float(kwh(u, p))]},
                                     {"type": "GB_REACTIVE", "values": [float(kvarh(u, p))]}]})
                bodies.append((s, json.dumps({
                    "programID": self.program_id, "eventID": site["metering_event_id"],
                    "clientName": site["ven_name"], "reportName": f"metering {z(day)} {i}",
                    "payloadDescriptors": [
                        {"objectType": "REPORT_PAYLOAD_DESCRIPTOR", "payloadType": "USAGE",
                         "readingType": "DIRECT_READ", "units": "KWH"},
                        {"objectType": "REPORT_PAYLOAD_DESCRIPTOR",
                         "payloadType": "GB_REACTIVE", "readingType": "DIRECT_READ",
                         "units": "KVARH"}],
                    "resources": [{"resourceName": name, "intervals": items}
                                  for name, items in resources.items()]}).encode()))
        sessions = [[self.server.session(token) for token in self.site_tokens]
                    for _ in range(IN_FLIGHT)]
        url = self.server.url("3.1.0", "reports")

        def send(index: int) -> None:
            site, body = bodies[index]
            response = sessions[index % IN_FLIGHT][site].post(
                url, data=body, headers={"Content-Type": "application/json"}, timeout=300)
            if response.status_code != 201:
                raise RuntimeError(f"report answered {response.status_code}: "
                                   f"{response.text[:500]}")

        return self._timed(send, len(bodies), [s for group in sessions for s in group])

    def copy(self, day: datetime, connection) -> float:
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute("SELECT id FROM dispatch_dispatchunit ORDER BY id LIMIT 1")
            unit_id = cursor.fetchone()[0]
            cursor.execute("SELECT id FROM dispatch_reportintake ORDER BY id LIMIT 1")
            intake_id = cursor.fetchone()[0]
            now = datetime.now(UTC)
            with cursor.copy('COPY bench_copy (unit_id, reading_type, start, "end", value, '
                             "quality, version, received_at, intake_id) FROM STDIN") as copy:
                for s in range(self.args.sites):
                    for u in range(self.args.units):
                        for p in range(PERIODS):
                            start = day + timedelta(minutes=30 * p)
                            end = start + timedelta(minutes=30)
                            unit = unit_id + s * self.args.units + u  # distinct keys
                            copy.write_row((unit, "USAGE", start, end, kwh(u, p), "OK", 1,
                                            now, intake_id))
                            copy.write_row((unit, "GB_REACTIVE", start, end, kvarh(u, p),
                                            "OK", 1, now, intake_id))
        connection.commit()
        return time.perf_counter() - started

    @staticmethod
    def _timed(send, count: int, sessions: list) -> float:
        started = time.perf_counter()
        with ThreadPoolExecutor(IN_FLIGHT) as pool:
            list(pool.map(send, range(count)))
        elapsed = time.perf_counter() - started
        for session in sessions:
            session.close()
        return elapsed


def count_stored(connection, day: datetime, table: str = "dispatch_meterreading") -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table} WHERE start >= %s AND start < %s",
                       (day, day + timedelta(days=1)))
        found = cursor.fetchone()[0]
    connection.commit()
    return found


def main() -> None:
    import psycopg

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sites", type=int, default=20)
    parser.add_argument("--units", type=int, default=10)
    parser.add_argument("--rows", type=int, default=4800,
                        help="rows per bulk request (two readings each)")
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        sys.exit("set DATABASE_URL to a PostgreSQL database (the benchmark makes its own "
                 "throwaway copy)")
    load_before = os.getloadavg()
    workdir = Path(tempfile.mkdtemp(prefix="bench-intake-"))
    database = E2EDatabase(url, workdir)
    server = VtnServer(workdir, database)
    try:
        server.prepare()
        server.start()
        bench = Bench(server, args)
        connection = psycopg.connect(database.url.replace("postgres://", "postgresql://", 1))
        with connection.cursor() as cursor:
            cursor.execute("CREATE TABLE bench_copy (LIKE dispatch_meterreading INCLUDING ALL)")
        connection.commit()
        paths = ["bulk", "reports", "copy"]
        samples: dict[str, list[float]] = {name: [] for name in paths}
        expected = bench.readings_per_day
        for number in range(args.rounds + 1):  # round 0 warms up and is not counted
            order = paths[number % 3:] + paths[:number % 3]
            for name in order:
                day = bench.next_day()
                if name == "copy":
                    seconds = bench.copy(day, connection)
                    stored = count_stored(connection, day, "bench_copy")
                else:
                    seconds = getattr(bench, name)(day)
                    stored = count_stored(connection, day)
                if stored != expected:
                    raise RuntimeError(f"{name} stored {stored} readings, not {expected}")
                if number:
                    samples[name].append(expected / seconds)
        connection.close()
    finally:
        server.stop()
        database.drop()
    rates = {name: round(statistics.median(values)) for name, values in samples.items()}
    ratios = {name: round(statistics.median(
        a / b for a, b in zip(samples[name], samples["copy"], strict=True)), 3)
        for name in ("bulk", "reports")}
    print(json.dumps({
        "benchmark": "intake", "rounds": args.rounds, "sites": args.sites,
        "units_per_site": args.units, "readings_per_round": expected,
        "bulk_rows_per_request": args.rows, "in_flight": IN_FLIGHT, "server_workers": 2,
        "median_readings_per_s": rates, "median_ratio_to_copy": ratios,
        "aim_readings_per_s": AIM,
        "aim_met": {name: rates[name] >= AIM for name in ("bulk", "reports")},
        "samples_readings_per_s": {name: [round(v) for v in values]
                                   for name, values in samples.items()},
        "load_average": {"before": [round(x, 2) for x in load_before],
                         "after": [round(x, 2) for x in os.getloadavg()]},
        "machine": machine()}, indent=2))


if __name__ == "__main__":
    main()
