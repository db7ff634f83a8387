"""Dispatch latency with and without MQTT push: `dispatch issue` to RECEIVED recorded.

What it does, in one run on this machine:
1. starts a real Mosquitto with the dynamic security plugin (the shipped
   deploy/mosquitto/mosquitto-acl-dev.conf, on a free port) and a real VTN over HTTPS on
   loopback that provisions it (OAUTH2_BEARER_TOKEN) and publishes after commit;
2. onboards two FSP sites (``fsp onboard``, mTLS) and runs their agents (``ven-client
   run``) with a 30 s poll interval: one with push (the default), one with ``push =
   false``;
3. for each agent, ``--dispatches`` times: issues an MW_DISPATCH dispatch through the
   operator API at a random moment of the agent's poll cycle and measures the time
   until the VTN has recorded the agent's RECEIVED acknowledgement;
4. prints median, p95 and max for both, and the machine, as JSON.

Usage: ``python benchmarks/push_latency.py [--dispatches 20] [--poll 30]``.
Aim: with push, p95 under 1 s.
"""

from __future__ import annotations

import argparse
import json
import random
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.poll import machine  # noqa: E402
from tests.fixtures.agent import AgentWorld, wait_for  # noqa: E402
from tests.fixtures.broker import ACL_CONFIG, Broker  # noqa: E402
from tests.fixtures.server import E2EDatabase, VtnServer  # noqa: E402


def received_at(world: AgentWorld, reference: str) -> bool:
    return any(a["stage"] == "received" for a in world.acknowledgements(reference).get(1, []))


def measure(world: AgentWorld, site, count: int, poll: float, spread: float) -> list[float]:
    times = []
    for _ in range(count):
        time.sleep(random.uniform(0, spread))  # a random point of the agent's cycle
        dispatch = world.issue(site, kw=random.randint(50, 500))
        started = time.monotonic()
        wait_for(lambda d=dispatch: received_at(world, d["reference"]), poll * 3,
                 "RECEIVED", interval=0.02)
        times.append(time.monotonic() - started)
    return times


def summary(times: list[float]) -> dict:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return {"n": len(times), "median_s": round(statistics.median(times), 3),
            "p95_s": round(p95, 3), "max_s": round(ordered[-1], 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dispatches", type=int, default=20)
    parser.add_argument("--poll", type=float, default=30.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="push-bench-"))
    admin = secrets.token_urlsafe(16)
    broker = Broker(work, ACL_CONFIG, admin=admin)
    broker.start()
    database = E2EDatabase("", work)
    server = VtnServer(work, database)
    server.env.update({"VTN_MQTT_BROKER_URL": f"mqtt://127.0.0.1:{broker.port}",
                       "VTN_MQTT_AUTHENTICATION": "OAUTH2_BEARER_TOKEN",
                       "VTN_MQTT_DYNSEC_USERNAME": "vtn-admin",
                       "VTN_MQTT_DYNSEC_PASSWORD": admin, "LOG_LEVEL": "WARNING"})
    world = None
    try:
        server.prepare()
        server.start()
        world = AgentWorld(server=server, root=work / "sites")
        (work / "sites").mkdir()
        results = {}
        for mode, push in (("push", True), ("poll_only", False)):
            site = world.onboard(poll_interval_s=args.poll, poll_jitter=0.0, push=push)
            world.start_agent(site)
            wait_for(lambda s=site: any(r.get("event") in ("online", "cycle_done")
                                        for r in s.log_records()), 60, "first poll")
            time.sleep(2.0)
            # Without push the latency depends on where in the cycle a dispatch lands:
            # spread the issues over the whole interval. With push it does not.
            spread = 2.0 if push else args.poll
            results[mode] = summary(measure(world, site, args.dispatches, args.poll, spread))
            print(json.dumps({mode: results[mode]}), file=sys.stderr, flush=True)
        results["poll_interval_s"] = args.poll
        results["machine"] = machine()
        print(json.dumps(results, indent=2))
    finally:
        if world is not None:
            world.close()
        server.stop()
        broker.stop()
        database.drop()


if __name__ == "__main__":
    main()
