"""The FSP agent's footprint: memory, CPU per poll cycle and start-up time.

What it does, in one run on this machine:
1. starts a real VTN over HTTPS on loopback (a temporary SQLite database and development
   PKI, as the end-to-end tests do), onboards one mTLS site with one unit and registers
   the agent's signing key;
2. start-up: the median wall time of ``ven-client --help`` against ``python -c "import
   requests"`` and ``python -c pass``; and the time from starting ``ven-client run`` to
   its first completed poll cycle (token, VEN discovery, JWKS-free first poll);
3. steady state: runs the agent polling every 0.25 s for ``--seconds`` and reads its
   resident memory (VmRSS, and the peak VmHWM) and CPU time from /proc, divided by the
   cycles it logged; the baseline is a bare ``requests`` loop making the same
   authenticated conditional ``GET /events`` with the same certificate;
4. prints the figures and the machine as JSON.

Usage: ``python benchmarks/agent.py [--seconds 20]``. Linux only (reads /proc).
Aims: under 40 MB RSS, start-up under one second.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.poll import machine  # noqa: E402
from tests.fixtures.server import E2EDatabase, VtnServer  # noqa: E402

PYTHON = sys.executable
TICKS = os.sysconf("SC_CLK_TCK")


def wall(argv: list[str], runs: int = 7) -> float:
    """Median wall seconds of running ``argv`` to completion."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def proc_status(pid: int) -> dict[str, float]:
    """VmRSS, VmHWM, RssAnon (private) and RssFile (mapped files, shareable) in MiB, CPU
    seconds (user + system) of a running process."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            fields[name] = int(value.split()[0]) / 1024
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    fields["cpu_s"] = (int(stat[11]) + int(stat[12])) / TICKS
    return fields


BARE_LOOP = textwrap.dedent('''
    import json, sys, time, requests
    url, token_url, ca, cert, key, client_id, secret, interval = sys.argv[1:9]
    session = requests.Session()
    session.cert = (cert, key)
    token = session.post(token_url, data={"grant_type": "client_credentials",
        "client_id": client_id, "client_secret": secret}, verify=ca).json()["access_token"]
    etag = None
    print("ready", flush=True)
    while True:
        headers = {"Authorization": "Bearer " + token}
        if etag:
            headers["If-None-Match"] = etag
        response = session.get(url, params={"active": "true", "skip": 0, "limit": 50},
                               headers=headers, verify=ca)
        etag = response.headers.get("ETag", etag)
        print("poll", flush=True)
        time.sleep(float(interval))
''')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="steady-state measuring time (default 20)")
    parser.add_argument("--interval", type=float, default=0.25,
                        help="poll interval of the agent and the baseline (default 0.25 s)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="agent-bench-"))
    database = E2EDatabase("", work)
    server = VtnServer(work, database)
    server.prepare()
    server.start()
    processes: list[subprocess.Popen] = []
    try:
        onboarding = json.loads(server.manage(
            "fsp", "onboard", "--operator", "ENWL", "--fsp", "bench", "--unit", "b1:500:export",
            "--dir", str(server.pki_dir), "--out", str(work / "site")).stdout)
        server.manage("fsp", "contract", "--operator", "ENWL", "--fsp", "bench", "--id", "C-B",
                      "--product", "MW_DISPATCH", "--unit", "b1")
        certificate = onboarding["certificate"]
        config = work / "agent.toml"
        config.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in {
            "vtn_url": server.base_url, "client_id": onboarding["client_id"],
            "client_secret": onboarding["client_secret"], "ca_bundle": server.ca_bundle,
            "client_cert": certificate["cert_path"], "client_key": certificate["key_path"],
            "handler_command": ["true"], "poll_interval_s": args.interval,
            "poll_jitter": 0.0, "state_dir": str(work / "state"), "log_level": "debug",
        }.items()))
        agent_cmd = [str(Path(PYTHON).parent / "ven-client"), "--config", str(config)]
        subprocess.run([*agent_cmd, "keys", "generate"], check=True, capture_output=True)

        startup = {
            "python_pass_s": wall([PYTHON, "-c", "pass"]),
            "python_import_requests_s": wall([PYTHON, "-c", "import requests"]),
            "ven_client_help_s": wall([*agent_cmd[:1], "--help"]),
        }
        log_path = work / "agent.log"
        started = time.perf_counter()
        with log_path.open("wb") as log:
            agent = subprocess.Popen([*agent_cmd, "run"], stdout=log, stderr=subprocess.STDOUT)
        processes.append(agent)
        while '"event":"online"' not in log_path.read_text():
            if agent.poll() is not None or time.perf_counter() - started > 30:
                raise SystemExit(f"the agent did not come online:\n{log_path.read_text()}")
            time.sleep(0.005)
        startup["ven_client_run_to_first_poll_s"] = time.perf_counter() - started

        def cycles() -> int:
            return log_path.read_text().count('"event":"cycle_done"')

        time.sleep(2)  # settle: first heartbeat, JWKS, caches
        before, cycles_before = proc_status(agent.pid), cycles()
        time.sleep(args.seconds)
        after, cycles_after = proc_status(agent.pid), cycles()
        agent_cycles = max(1, cycles_after - cycles_before)

        bare = subprocess.Popen(
            [PYTHON, "-c", BARE_LOOP, server.url("3.1.0", "events"),
             server.url("3.1.0", "auth/token"), server.ca_bundle, certificate["cert_path"],
             certificate["key_path"], onboarding["client_id"], onboarding["client_secret"],
             str(args.interval)], stdout=subprocess.PIPE, text=True)
        processes.append(bare)
        assert bare.stdout.readline().strip() == "ready"
        time.sleep(2)
        bare_polls = 0
        bare_before = proc_status(bare.pid)
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline:
            bare.stdout.readline()
            bare_polls += 1
        bare_after = proc_status(bare.pid)

        figures = {
            "machine": machine(),
            "startup": {k: round(v, 3) for k, v in startup.items()},
            "agent": {
                "rss_mib": round(after["VmRSS"], 1), "peak_rss_mib": round(after["VmHWM"], 1),
                "rss_anon_mib": round(after["RssAnon"], 1),
                "rss_file_mib": round(after["RssFile"], 1), "cycles": agent_cycles,
                "cpu_ms_per_cycle": round(1000 * (after["cpu_s"] - before["cpu_s"]) /
                                          agent_cycles, 2)},
            "baseline_bare_requests_loop": {
                "rss_mib": round(bare_after["VmRSS"], 1),
                "peak_rss_mib": round(bare_after["VmHWM"], 1),
                "rss_anon_mib": round(bare_after["RssAnon"], 1),
                "rss_file_mib": round(bare_after["RssFile"], 1), "polls": bare_polls,
                "cpu_ms_per_poll": round(1000 * (bare_after["cpu_s"] - bare_before["cpu_s"]) /
                                         max(1, bare_polls), 2)},
            "aims": {"rss_under_40_mib": after["VmHWM"] < 40,
                     "startup_under_1_s": startup["ven_client_run_to_first_poll_s"] < 1},
            "notes": "an agent cycle is one conditional GET /events (304 when unchanged) plus "
                     "its SQLite bookkeeping (one fsync'd transaction); the baseline makes "
                     "only the GET.",
        }
        print(json.dumps(figures, indent=2))
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)
        server.stop()
        database.drop()


if __name__ == "__main__":
    main()
