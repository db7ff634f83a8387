"""The FSP agent's footprint: peak memory, start-up to the first poll, CPU per cycle.

What it does, in one run on this machine:
1. installs the agent as on a gateway box (``pip install ./gbflex_profile ./ven_client``
   into a fresh virtual environment, so its modules are compiled to bytecode at install
   and nothing of the VTN's is importable; ``--gateway-venv`` reuses one), starts a real
   VTN over HTTPS on loopback (a temporary database and development PKI, as the
   end-to-end tests do) and onboards one mTLS site with one unit, its agent's signing key
   registered;
2. start-up, in ``--rounds`` interleaved short rounds (the order flips every round, the
   load average is read in each): the wall time of ``python -c pass``, of ``python -c
   "import ssl"``, of a plain TLS first poll (a stdlib script: TLS handshake with the
   site certificate, a token, one ``GET /events``) and of ``ven-client run`` from
   start to its first completed poll cycle (fresh state database, so SQLite set-up is
   included; the agent's log splits it into start-up before the first cycle and the
   cycle itself). Medians, and the median of the per-round ratios agent / plain first
   poll, which the machine's load affects less;
3. where the first poll goes, in one process, stage by stage (imports, configuration,
   SQLite set-up, TLS context, token, discovery, first poll, key loading, first verified
   dispatch, acknowledgement signing): wall time, RSS and peak RSS after each stage, the
   Python heap (tracemalloc, in a second run) and the slowest imports (``-X importtime``);
4. steady state, in ``--steady-rounds`` rounds: the agent polling every ``--interval``
   for ``--seconds``, with one dispatch issued after its first poll (verified, handed
   to the handler, both acknowledgements signed and sent), so its peak RSS includes
   the signing libraries and a signature of each kind; CPU per cycle and memory from
   /proc; the baseline is a bare urllib3 loop making the same authenticated conditional
   ``GET /events`` with the same certificate;
5. prints the figures, the load averages and the machine as JSON.

Every process measured runs the gateway environment's interpreter. ``--compare-venv``
adds another install's agent (an older version, say) to every start-up round, with the
median of the per-round ratios of the two first polls.

Usage: ``python benchmarks/agent.py [--rounds 5] [--steady-rounds 3] [--seconds 6]
[--gateway-venv DIR]``. Linux only (reads /proc). Aims: peak RSS under 40 MiB, first
poll under one second.
"""

from __future__ import annotations

import argparse
import calendar
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.poll import machine  # noqa: E402
from tests.fixtures.agent import AgentWorld  # noqa: E402
from tests.fixtures.server import E2EDatabase, VtnServer  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
AIM_RSS_MIB = 40.0
AIM_FIRST_POLL_S = 1.0

# The least a first poll needs, with the standard library only: TLS with the site
# certificate, a token, one GET /events. Prints nothing; exits when done.
PLAIN_FIRST_POLL = textwrap.dedent('''
    import http.client, json, ssl, sys, urllib.parse
    host, port, base, ca, cert, key, client_id, secret = sys.argv[1:9]
    context = ssl.create_default_context(cafile=ca)
    context.load_cert_chain(cert, key)
    connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=30)
    form = urllib.parse.urlencode({"grant_type": "client_credentials",
                                   "client_id": client_id, "client_secret": secret})
    connection.request("POST", base + "/auth/token", form,
                       {"Content-Type": "application/x-www-form-urlencoded"})
    token = json.loads(connection.getresponse().read())["access_token"]
    connection.request("GET", base + "/events?active=true&skip=0&limit=50",
                       headers={"Authorization": "Bearer " + token})
    assert connection.getresponse().status == 200
''')

# The steady-state baseline: the same conditional GET /events with urllib3, forever.
BARE_LOOP = textwrap.dedent('''
    import json, ssl, sys, time, urllib3
    url, token_url, ca, cert, key, client_id, secret, interval = sys.argv[1:9]
    context = ssl.create_default_context(cafile=ca)
    context.load_cert_chain(cert, key)
    pool = urllib3.PoolManager(ssl_context=context, retries=False, maxsize=1)
    token = json.loads(pool.request("POST", token_url, encode_multipart=False, fields={
        "grant_type": "client_credentials", "client_id": client_id,
        "client_secret": secret}).data)["access_token"]
    etag = None
    print("ready", flush=True)
    while True:
        headers = {"Authorization": "Bearer " + token}
        if etag:
            headers["If-None-Match"] = etag
        response = pool.request("GET", url + "?active=true&skip=0&limit=50", headers=headers)
        etag = response.headers.get("ETag", etag)
        print("poll", flush=True)
        time.sleep(float(interval))
''')

# Stage by stage in one process: argv is the agent's configuration file, then "trace" to
# follow the Python heap with tracemalloc (which itself costs memory, so a separate run).
# One JSON line per stage on stdout.
STAGES = textwrap.dedent('''
    import json, sys, time
    trace = sys.argv[2:] == ["trace"]
    if trace:
        import tracemalloc
        tracemalloc.start()
    def status():
        fields = {}
        with open("/proc/self/status") as handle:
            for line in handle:
                name, _, value = line.partition(":")
                if name in ("VmRSS", "VmHWM"):
                    fields[name] = int(value.split()[0]) / 1024
        return fields
    last = time.perf_counter()
    def stage(name):
        global last
        now = time.perf_counter()
        figures = status()
        record = {"stage": name, "ms": round(1000 * (now - last), 1),
                  "rss_mib": round(figures["VmRSS"], 1), "peak_mib": round(figures["VmHWM"], 1)}
        if trace:
            current, peak = tracemalloc.get_traced_memory()
            record |= {"heap_mib": round(current / 2**20, 2),
                       "heap_peak_mib": round(peak / 2**20, 2)}
        print(json.dumps(record), flush=True)
        last = time.perf_counter()
    stage("interpreter")
    from ven_client import config as config_module, logs
    from ven_client.agent import Agent
    from gbflex_profile import acks
    from gbflex_profile.vocabulary import RECEIVED
    from ven_client import profile
    stage("import")
    config = config_module.load(sys.argv[1])
    logs.configure("json", stream=open("/dev/null", "w"))
    stage("config")
    agent = Agent(config)
    agent.check_signing_key()
    agent.recover()
    stage("sqlite")
    agent.transport._connections()
    stage("tls_context")
    agent.transport.token()
    stage("token")
    agent.discover()
    stage("discovery")
    events = agent.poll_events()
    stage("first_poll")
    key, kid = agent.signing_key()
    stage("key_loading")
    dispatch = next(e for e in events if profile.is_dispatch(e))
    document = profile.verify_dispatch(dispatch, agent.key_for, fsp=agent.fsp,
                                       units=set(agent.units))
    stage("first_verified_dispatch")
    acks.ack_payloads(acks.read_back(document, stage=RECEIVED), key, kid)
    stage("ack_signing")
''')


def proc_status(pid: int) -> dict[str, float]:
    """VmRSS, VmHWM (peak), RssAnon (private) and RssFile (mapped files, shareable) in
    MiB, and CPU seconds (user + system), of a running process."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            fields[name] = int(value.split()[0]) / 1024
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    fields["cpu_s"] = (int(stat[11]) + int(stat[12])) / TICKS
    return fields


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def gateway_venv(path: Path) -> Path:
    """A virtual environment with only the agent installed, as on a gateway box (made
    unless ``path`` already has ``ven-client``)."""
    if not (path / "bin" / "ven-client").exists():
        build = Path(tempfile.mkdtemp(prefix="agent-build-"))
        for folder in ("gbflex_profile", "ven_client"):
            shutil.copytree(ROOT / folder, build / folder, ignore=shutil.ignore_patterns(
                "__pycache__", "build", "*.egg-info", "tests"))
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=300)
        subprocess.run([str(path / "bin" / "pip"), "install", "-q", "./gbflex_profile",
                        "./ven_client"], cwd=build, check=True, timeout=1200,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(build)
    return path


def wall(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                   timeout=120)
    return time.perf_counter() - started


def epoch(timestamp: str) -> float:
    """Epoch seconds of a log timestamp (``2026-11-22T05:01:10.123Z``)."""
    return calendar.timegm(time.strptime(timestamp[:19], "%Y-%m-%dT%H:%M:%S")) + \
        int(timestamp[20:23]) / 1000


def log_events(path: Path) -> list[dict]:
    records = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            pass
    return records


def wait_log(path: Path, process: subprocess.Popen, needle: str, timeout: float = 60) -> None:
    deadline = time.perf_counter() + timeout
    while needle not in path.read_text(errors="replace"):
        if process.poll() is not None or time.perf_counter() > deadline:
            raise SystemExit(f"the agent did not log {needle}:\n{path.read_text()}")
        time.sleep(0.01)


class Bench:
    def __init__(self, world: AgentWorld, args: argparse.Namespace, venv: Path) -> None:
        self.world, self.args = world, args
        self.python = str(venv / "bin" / "python")
        self.agent = str(venv / "bin" / "ven-client")
        self.site = world.onboard(units=("b1",), handler_command=["true"],
                                  poll_interval_s=args.interval, poll_jitter=0.0,
                                  signing_key=str(world.root / "site-signing-key.pem"))
        self.runs = 0
        server = world.server
        address = urlsplit(server.base_url)
        certificate = self.site.onboarding["certificate"]
        self.secret = self.site.onboarding["client_secret"]
        self.credentials = [server.ca_bundle, certificate["cert_path"],
                            certificate["key_path"], self.site.onboarding["client_id"],
                            self.secret]
        self.plain = [self.python, "-c", PLAIN_FIRST_POLL, address.hostname or "",
                      str(address.port), urlsplit(server.url("3.1.0")).path.rstrip("/"),
                      *self.credentials]

    def fresh_config(self) -> Path:
        """The site's configuration with a state directory of its own (a first start)."""
        self.runs += 1
        self.world.configure(self.site, state_dir=str(self.world.root / f"state-{self.runs}"))
        return self.site.config_path

    def agent_to_first_poll(self, command: str | None = None) -> dict:
        config = self.fresh_config()
        log_path = self.world.root / f"run-{self.runs}.log"
        started_epoch = time.time()
        started = time.perf_counter()
        with log_path.open("wb") as log:
            agent = subprocess.Popen([command or self.agent, "--config", str(config), "run"],
                                     stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_log(log_path, agent, '"event":"online"')
            first_poll = time.perf_counter() - started
        finally:
            agent.terminate()
            agent.wait(timeout=30)
        records = {r["event"]: r for r in log_events(log_path)}
        at = {name: epoch(record["ts"]) for name, record in records.items()}
        # The first cycle's steps, from the log's timestamps (millisecond resolution).
        steps = [("agent_started", started_epoch), ("token_issued", "agent_started"),
                 ("discovered", "token_issued"), ("heartbeat_sent", "discovered"),
                 ("online", "heartbeat_sent")]
        found = {f"{name}_after_s": at[name] - (at[since] if isinstance(since, str)
                                                 else since)
                 for name, since in steps if name in at and (since in at or
                                                             not isinstance(since, str))}
        return {"first_poll_s": first_poll, "first_cycle_s": records["online"]["seconds"],
                **found}

    def compared_to_first_poll(self) -> dict:
        """:meth:`agent_to_first_poll` of the ``--compare-venv`` install."""
        command = str(self.args.compare_venv / "bin" / "ven-client")
        return {f"compared_{name}": value
                for name, value in self.agent_to_first_poll(command).items()}

    def startup_rounds(self) -> dict:
        rounds = []
        for number in range(self.args.rounds):
            measures = {
                "python_pass_s": lambda: wall([self.python, "-c", "pass"]),
                "python_import_ssl_s": lambda: wall([self.python, "-c", "import ssl"]),
                "plain_tls_first_poll_s": lambda: wall(self.plain),
                "agent": self.agent_to_first_poll,
            }
            if self.args.compare_venv:
                measures["compared_agent"] = self.compared_to_first_poll
            order = list(measures) if number % 2 == 0 else list(reversed(measures))
            result: dict = {"load_average": load_average()}
            for name in order:
                value = measures[name]()
                result.update(value if isinstance(value, dict) else {name: value})
            result["ratio_agent_to_plain"] = \
                result["first_poll_s"] / result["plain_tls_first_poll_s"]
            if self.args.compare_venv:
                result["ratio_agent_to_compared"] = \
                    result["first_poll_s"] / result["compared_first_poll_s"]
            rounds.append(result)
        names = [name for name in rounds[0] if all(name in r for r in rounds)]
        return {name: round(statistics.median(r[name] for r in rounds), 3)
                for name in names} | {
            "agent_first_poll_s_each": [round(r["first_poll_s"], 3) for r in rounds],
            "load_average_each": [r["load_average"] for r in rounds]}

    def stages(self) -> dict:
        """Issue a dispatch, then follow one process through the stages of a first poll
        that finds it."""
        config = self.fresh_config()
        self.world.issue(self.site, unit="b1", kw=1500)
        runs = {}
        for mode in ("rss", "trace"):
            argv = [self.python, *(["-X", "importtime"] if mode == "rss" else []), "-c", STAGES,
                    str(config), *(["trace"] if mode == "trace" else [])]
            done = subprocess.run(argv, capture_output=True, text=True, timeout=300,
                                  cwd="/")
            if done.returncode != 0:
                raise SystemExit(f"stage run failed:\n{done.stdout}\n{done.stderr}")
            runs[mode] = [json.loads(line) for line in done.stdout.splitlines()]
            if mode == "rss":
                runs["slowest_imports_cumulative_ms"] = slowest_imports(done.stderr)
        for record, traced in zip(runs["rss"], runs.pop("trace"), strict=True):
            record["heap_mib"], record["heap_peak_mib"] = traced["heap_mib"], \
                traced["heap_peak_mib"]
        return runs

    def steady_round(self) -> dict:
        config = self.fresh_config()
        log_path = self.world.root / f"run-{self.runs}.log"
        with log_path.open("wb") as log:
            agent = subprocess.Popen([self.agent, "--config", str(config), "run"], stdout=log,
                                     stderr=subprocess.STDOUT)
        bare = None
        try:
            wait_log(log_path, agent, '"event":"online"')
            self.world.issue(self.site, unit="b1", kw=1500)
            wait_log(log_path, agent, '"kind":"ack_actioned"')
            time.sleep(1)  # settle: heartbeat, caches
            cycles_before = log_path.read_text().count('"event":"cycle_done"')
            before = proc_status(agent.pid)
            time.sleep(self.args.seconds)
            after = proc_status(agent.pid)
            cycles = max(1, log_path.read_text().count('"event":"cycle_done"') - cycles_before)
            server = self.world.server
            bare = subprocess.Popen(
                [self.python, "-c", BARE_LOOP, server.url("3.1.0", "events"),
                 server.url("3.1.0", "auth/token"), *self.credentials,
                 str(self.args.interval)], stdout=subprocess.PIPE, text=True)
            assert bare.stdout is not None and bare.stdout.readline().strip() == "ready"
            time.sleep(1)
            polls = 0
            bare_before = proc_status(bare.pid)
            deadline = time.monotonic() + self.args.seconds
            while time.monotonic() < deadline:
                bare.stdout.readline()
                polls += 1
            bare_after = proc_status(bare.pid)
        finally:
            agent.terminate()
            agent.wait(timeout=30)
            if bare is not None:
                bare.terminate()
                bare.wait(timeout=30)
        return {"load_average": load_average(), "peak_rss_mib": after["VmHWM"],
                "rss_mib": after["VmRSS"], "rss_anon_mib": after["RssAnon"],
                "rss_file_mib": after["RssFile"],
                "cpu_ms_per_cycle": 1000 * (after["cpu_s"] - before["cpu_s"]) / cycles,
                "bare_peak_rss_mib": bare_after["VmHWM"],
                "bare_rss_anon_mib": bare_after["RssAnon"],
                "bare_cpu_ms_per_poll": 1000 * (bare_after["cpu_s"] - bare_before["cpu_s"]) /
                max(1, polls)}

    def steady_rounds(self) -> dict:
        rounds = [self.steady_round() for _ in range(self.args.steady_rounds)]
        return {name: round(statistics.median(r[name] for r in rounds), 2)
                for name in rounds[0]} | {
            "peak_rss_mib_each": [round(r["peak_rss_mib"], 1) for r in rounds],
            "load_average_each": [r["load_average"] for r in rounds]}


def slowest_imports(importtime: str, count: int = 12) -> dict[str, float]:
    """The modules with the largest cumulative import time from ``-X importtime``."""
    found = {}
    for line in importtime.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = (part.strip() for part in line[len("import time:"):].split("|"))
        found[name] = int(cumulative) / 1000
    return dict(sorted(found.items(), key=lambda item: -item[1])[:count])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5,
                        help="interleaved start-up rounds (default 5)")
    parser.add_argument("--steady-rounds", type=int, default=3,
                        help="steady-state runs with a dispatch (default 3)")
    parser.add_argument("--seconds", type=float, default=6.0,
                        help="steady-state measuring time per run (default 6)")
    parser.add_argument("--interval", type=float, default=0.25,
                        help="poll interval of the agent and the baseline (default 0.25 s)")
    parser.add_argument("--no-stages", action="store_true",
                        help="leave out the stage-by-stage run (it uses the agent's current "
                             "internals: an older version's install cannot run it)")
    parser.add_argument("--compare-venv", type=Path, default=None,
                        help="another install of the agent (say, an older version) whose "
                             "first poll joins each start-up round, for a ratio in one run")
    parser.add_argument("--gateway-venv", type=Path, default=None,
                        help="the agent's virtual environment (made there when it lacks "
                             "ven-client; default: a fresh one, deleted after the run)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="agent-bench-"))
    venv = gateway_venv(args.gateway_venv or work / "gateway")
    database = E2EDatabase("", work)  # SQLite: the VTN is not what is measured
    server = VtnServer(work, database)
    server.prepare()
    server.start()
    world = AgentWorld(server=server, root=work / "world")
    world.root.mkdir()
    try:
        bench = Bench(world, args, venv)
        load_before = os.getloadavg()
        startup = bench.startup_rounds()
        stages = {} if args.no_stages else bench.stages()
        steady = bench.steady_rounds()
        figures = {
            "machine": machine() | {"load_average_1_5_15_before": load_before,
                                    "load_average_1_5_15_after": os.getloadavg()},
            "startup_medians": startup,
            "first_poll_stages": stages,
            "steady_state_medians": steady,
            "aims": {
                "peak_rss_under_40_mib": steady["peak_rss_mib"] < AIM_RSS_MIB,
                "first_poll_under_1_s": startup["first_poll_s"] < AIM_FIRST_POLL_S},
            "notes": "first_poll_s: ven-client run started to its first completed cycle "
                     "(token, VEN discovery, GET /events; fresh state database); "
                     "plain_tls_first_poll_s: a stdlib script doing the least of that "
                     "(start, TLS, token, one GET); the ratio is their per-round median. "
                     "Steady state: one conditional GET /events per cycle (304 when "
                     "unchanged) plus SQLite bookkeeping, after one dispatch was "
                     "verified, actioned and acknowledged twice (signed).",
        }
        print(json.dumps(figures, indent=2))
    finally:
        world.close()
        server.stop()
        database.drop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
