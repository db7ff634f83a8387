"""What the site's signature costs on a meter-reading report: signing it in the agent and
verifying it in the VTN, against the parsing of the same report that the VTN's intake
does anyway (``dispatch.readings.parse_readings``).

For reports of 48 and 500 half-hourly intervals (a day of one unit; the agent's largest
report), it runs short rounds in which the baseline (parse), the check
(``report_signing.verify_report``, what runs before the report is written) and the
signing (``report_signing.sign_report``, once per queued report in the agent) are each
timed over a few repetitions, interleaved so that a change in the machine's load hits
all three alike, and prints the medians and the median of the per-round ratios to the
baseline as JSON, with the load average before and after.

Usage: ``python benchmarks/report_signatures.py [--rounds 15]``. No server, no database.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.poll import machine  # noqa: E402
from dispatch import readings  # noqa: E402
from gbflex_profile import jose, report_signing  # noqa: E402

REPEAT = 5


def report(intervals: int) -> dict:
    start = datetime(2030, 2, 1, tzinfo=UTC)
    return {"payloadDescriptors": [{"objectType": "REPORT_PAYLOAD_DESCRIPTOR",
                                    "payloadType": "USAGE", "readingType": "DIRECT_READ",
                                    "units": "KWH"}],
            "resources": [{"resourceName": "bat1", "intervals": [
                {"id": i, "intervalPeriod": {
                    "start": (start + timedelta(minutes=30 * i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "duration": "PT30M"},
                 "payloads": [{"type": "USAGE", "values": [round(-120.5 + i * 0.25, 2)]}]}
                for i in range(intervals)]}]}


def timed(work) -> float:
    started = time.perf_counter()
    for _ in range(REPEAT):
        work()
    return (time.perf_counter() - started) / REPEAT


def measure(intervals: int, rounds: int) -> dict:
    key = jose.generate_private_key()
    jwks = {"keys": [jose.public_jwk(key, "site-1")]}
    body = report(intervals)
    signed = report_signing.sign_report(body, kind="METERING", fsp="acme", key=key,
                                        kid="site-1")

    def parse() -> None:
        readings.parse_readings(report_signing.content_resources(signed["resources"]),
                                signed["payloadDescriptors"], {"bat1"})

    def check() -> None:
        report_signing.verify_report(kind="METERING", fsp="acme",
                                     resources=signed["resources"],
                                     payload_descriptors=signed["payloadDescriptors"],
                                     jwks=jwks)

    def sign() -> None:
        report_signing.sign_report(body, kind="METERING", fsp="acme", key=key, kid="site-1")

    parse(), check(), sign()  # warm up: imports, caches
    samples: dict[str, list[float]] = {"parse": [], "verify": [], "sign": []}
    for _ in range(rounds):
        samples["parse"].append(timed(parse))
        samples["verify"].append(timed(check))
        samples["sign"].append(timed(sign))
    ratios = {name: statistics.median(a / b for a, b in zip(samples[name], samples["parse"],
                                                            strict=True))
              for name in ("verify", "sign")}
    return {"intervals": intervals,
            "median_ms": {name: round(statistics.median(values) * 1000, 3)
                          for name, values in samples.items()},
            "median_ratio_to_parse": {name: round(value, 2) for name, value in ratios.items()},
            "signed_bytes": len(json.dumps(signed)), "unsigned_bytes": len(json.dumps(body))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    arguments = parser.parse_args()
    load_before = os.getloadavg()
    results = [measure(n, arguments.rounds) for n in (48, 500)]
    print(json.dumps({"benchmark": "report_signatures", "rounds": arguments.rounds,
                      "repeat": REPEAT, "results": results,
                      "load_average": {"before": [round(x, 2) for x in load_before],
                                       "after": [round(x, 2) for x in os.getloadavg()]},
                      "machine": machine()}, indent=2))


if __name__ == "__main__":
    main()
