"""Helpers of the conformance sandbox's end-to-end tests (``test_conformance_e2e*.py``):
self-service onboarding of a site with an agent configuration, starting a deliberately
broken agent, runs through the CLI (answering what a run awaits, as the FSP would) and
reading their reports. The VTN and the agent world are fixtures (``conftest.py``)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.fixtures.agent import AgentWorld, Site, wait_for
from tests.fixtures.server import MANAGE, ROOT, PinnedSession

POLL_S = 1.0
# The agents in these tests re-read the programs every PROGRAMS_REFRESH_S (their own
# setting), and the runs are told so: parameter-change then grades them within seconds.
PROGRAMS_REFRESH_S = 1.0
RUN_OPTIONS = {"pollIntervalSeconds": POLL_S, "marginSeconds": 4, "heartbeatIntervalSeconds": 5,
               "retryAfterSeconds": 2, "meteringDeadlineSeconds": 30,
               "programRefreshSeconds": 3, "changedHeartbeatSeconds": 10}
CLI_OPTIONS = ["--poll-interval", str(POLL_S), "--margin", "4", "--heartbeat-interval", "5",
               "--retry-after", "2", "--program-refresh", "3",
               "--changed-heartbeat", "10"]


def onboard(world: AgentWorld, *, units=(("bat1", 1500, "export", 600),), **settings) -> Site:
    """Self-service onboarding (units: reference, kW, direction and optionally kVAr), then
    an agent configuration with the issued certificate bundle and a registered signing
    key."""
    server = world.server
    fsp = server.unique("conf")
    response = requests.post(f"{server.base_url}/conformance/api/v1/onboard", json={
        "fsp": fsp, "units": [{"reference": u[0], "capacityKw": u[1], "direction": u[2]}
                              | ({"capacityKvar": u[3]} if len(u) > 3 else {})
                              for u in units]}, verify=server.ca_bundle, timeout=60)
    assert response.status_code == 201, response.text
    onboarding = response.json()
    directory = world.root / fsp
    (directory / "gate").mkdir(parents=True)
    pki = directory / "pki"
    pki.mkdir()
    (pki / "site.pem").write_text(onboarding["certificate"]["cert_pem"])
    (pki / "site.key").write_text(onboarding["certificate"]["key_pem"])
    (directory / "client-secret").write_text(onboarding["client_secret"])
    site = Site(fsp=fsp, units=[u[0] for u in units], onboarding=onboarding,
                directory=directory, mtls=True)
    config = {
        "vtn_url": server.base_url, "client_id": onboarding["client_id"],
        "client_secret_file": str(directory / "client-secret"),
        "client_cert": str(pki / "site.pem"), "client_key": str(pki / "site.key"),
        "ca_bundle": server.ca_bundle, "ven_name": onboarding["ven_name"],
        "handler_command": [sys.executable, "-c", "import sys; sys.stdin.read()"],
        "poll_interval_s": POLL_S, "poll_jitter": 0.1, "backoff_initial_s": 0.5,
        "backoff_max_s": 4.0, "heartbeat_interval_s": 2.0, "state_dir": str(site.state_dir),
        "drop_dir": str(site.drop_dir), "log_format": "json"} | settings
    site.config_path.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in config.items()))
    result = world.cli(site, "keys", "generate")
    assert result.returncode == 0, result.stdout + result.stderr
    return site


def start_sabotaged(world: AgentWorld, site: Site, code: str) -> subprocess.Popen:
    with site.agent_log.open("ab") as log:
        process = subprocess.Popen([sys.executable, "-c", code, "--config",
                                    str(site.config_path), "run"], cwd=ROOT,
                                   env=world._env(), stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
    world.processes.append(process)
    return process


def ven_session(world: AgentWorld, site: Site) -> requests.Session:
    server = world.server
    cert = (str(site.directory / "pki" / "site.pem"), str(site.directory / "pki" / "site.key"))
    response = requests.post(server.url("3.1.0", "auth/token"), data={
        "grant_type": "client_credentials", "client_id": site.onboarding["client_id"],
        "client_secret": site.onboarding["client_secret"]}, cert=cert,
        verify=server.ca_bundle, timeout=30)
    assert response.status_code == 200, response.text
    session = PinnedSession()
    session.verify = server.ca_bundle
    session.cert = cert
    session.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
    return session


def wait_online(world: AgentWorld, site: Site) -> None:
    wait_for(lambda: any(r.get("event") == "online" for r in site.log_records()), 30,
             f"the agent of {site.fsp} to come online")


def drop_readings(site: Site, awaiting: dict) -> None:
    """What the FSP does when the metering or availability scenario asks: a readings or
    availability CSV in the agent's drop folder (written aside, then moved in)."""
    if awaiting["scenario"] == "availability":
        rows = ["unit,start,end,available_kw"]
        for unit in awaiting["units"]:
            rows += [f"{unit},{w['start'][:19]}Z,{w['end'][:19]}Z,100"
                     for w in awaiting["windows"]]
        name = "availability-conformance.csv"
    else:
        rows = ["unit,start,duration,type,value"]
        for unit in awaiting["units"]:
            rows += [f"{unit},{p['start'][:19]}Z,PT30M,USAGE,-12.5"
                     for p in awaiting["periods"]]
        name = "readings-conformance.csv"
    site.drop_dir.mkdir(exist_ok=True)
    staging = site.directory / name
    staging.write_text("\n".join(rows) + "\n")
    staging.rename(site.drop_dir / staging.name)


def answer_when_asked(site: Site, awaiting: dict | None, answered: set) -> None:
    """Drop what a run awaits, once per request."""
    if awaiting and (awaiting["scenario"], awaiting["deadline"]) not in answered:
        drop_readings(site, awaiting)
        answered.add((awaiting["scenario"], awaiting["deadline"]))


def cli_run(world: AgentWorld, site: Site, scenario: str, out: Path, *extra: str
            ) -> tuple[int, dict]:
    result = subprocess.run(
        [sys.executable, str(MANAGE), "conformance", "run", "--fsp", f"ENWL/{site.fsp}",
         "--scenario", scenario, *CLI_OPTIONS, *extra, "--out", str(out)], cwd=ROOT,
        env=world.server.env, capture_output=True, text=True, timeout=300)
    assert (out / "report.json").exists(), result.stdout + result.stderr
    return result.returncode, json.loads((out / "report.json").read_text())


def failed_checks(report: dict) -> dict[str, set[str]]:
    return {s["name"]: {c["name"] for c in s["checks"] if not c["passed"]}
            for s in report["scenarios"]}


def outcomes(check: dict) -> set[str]:
    return {a["outcome"] for a in check["evidence"]["acknowledgements"]}


def check_named(report: dict, scenario: str, name: str) -> dict:
    found = next(s for s in report["scenarios"] if s["name"] == scenario)
    return next(c for c in found["checks"] if c["name"] == name)


def cli_run_answering(world: AgentWorld, site: Site, scenario: str, out: Path,
                      *extra: str) -> tuple[int, dict]:
    """``cli_run`` while answering what the run awaits, as the FSP would."""
    process = subprocess.Popen(
        [sys.executable, str(MANAGE), "conformance", "run", "--fsp", f"ENWL/{site.fsp}",
         "--scenario", scenario, *CLI_OPTIONS, "--metering-deadline", "30", *extra,
         "--out", str(out)], cwd=ROOT, env=world.server.env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    answered: set = set()
    deadline = time.monotonic() + 300
    with ven_session(world, site) as session:
        while process.poll() is None:
            assert time.monotonic() < deadline, "the run did not finish"
            runs = session.get(f"{world.server.base_url}/conformance/api/v1/runs",
                               timeout=30).json()
            for run in runs if isinstance(runs, list) else runs.get("runs", []):
                answer_when_asked(site, run.get("awaiting"), answered)
            time.sleep(0.5)
    output = process.stdout.read() if process.stdout else ""
    assert (out / "report.json").exists(), output
    return process.returncode, json.loads((out / "report.json").read_text())
