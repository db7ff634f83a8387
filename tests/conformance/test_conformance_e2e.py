"""The conformance sandbox end to end: a VTN of its own over HTTPS with fault injection and
self-service onboarding on, FSP sites onboarded through the endpoint, real ``ven_client``
agents polling it, and runs started through the API and the CLI.

Our agent passes every scenario; deliberately broken agents (ven_client with a sabotaged
read-back or signing key, or one that polls too rarely and sends no heartbeats) fail
exactly the checks that grade what they got wrong.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.fixtures.agent import AgentWorld, Site, wait_for
from tests.fixtures.requirements import starts_processes
from tests.fixtures.server import MANAGE, ROOT, E2EDatabase, PinnedSession, VtnServer

pytestmark = pytest.mark.slow

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

# ven_client whose read-back says one kW more than the dispatch (signed consistently).
WRONG_READ_BACK = r'''
import sys
from gbflex_profile import acks
from ven_client import cli
original = acks.read_back
def wrong(document, **kwargs):
    signed = original(document, **kwargs)
    for setpoint in signed["setpoints"]:
        setpoint["volume"] = setpoint["volume"] + 1
    return signed
acks.read_back = wrong
sys.exit(cli.main(sys.argv[1:]))
'''
# ven_client that signs acknowledgements with a key other than the registered one.
BAD_SIGNATURE = r'''
import sys
from ven_client import agent, cli
from gbflex_profile import jose
other = jose.generate_private_key()
original = agent.Agent.signing_key
agent.Agent.signing_key = lambda self: (other, original(self)[1])
sys.exit(cli.main(sys.argv[1:]))
'''
# ven_client that sends availability and readings without the site's signature.
UNSIGNED_REPORTS = r'''
import sys
from gbflex_profile import report_signing
from ven_client import cli
report_signing.sign_report = lambda body, **kwargs: dict(body)
sys.exit(cli.main(sys.argv[1:]))
'''
# ven_client that drops a dispatch it cannot verify without telling the operator.
SILENT_ON_FORGERY = r'''
import sys
from ven_client import agent, cli
agent.Agent.refuse = lambda self, event, said, reason: None
sys.exit(cli.main(sys.argv[1:]))
'''


@pytest.fixture(scope="module")
@starts_processes
def sandbox_vtn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VtnServer]:
    """A VTN of its own: conformance on, last-seen written at once, comms lost after
    0.05 x the heartbeat interval (3 s for MW_DISPATCH sites), and room for every site
    this module onboards from one address within the hour (the limit itself is tested in
    test_conformance_api)."""
    workdir = tmp_path_factory.mktemp("conformance_vtn")
    database = E2EDatabase(os.environ.get("DATABASE_URL", ""), workdir)
    server = VtnServer(workdir, database)
    server.env.update({
        "CONFORMANCE_FAULTS_ENABLED": "true", "CONFORMANCE_SELF_SERVICE": "true",
        "CONFORMANCE_OPERATOR": "ENWL", "VTN_PKI_DIR": str(server.pki_dir),
        "DISPATCH_LAST_SEEN_RESOLUTION_SECONDS": "0.2", "DISPATCH_COMMS_GRACE_FACTOR": "0.05",
        "CONFORMANCE_ONBOARD_RATE_PER_HOUR": "50",
    })
    try:
        server.prepare()
        server.start()
        yield server
    finally:
        server.stop(graceful=False)
        database.drop()


@pytest.fixture
def world(sandbox_vtn: VtnServer, tmp_path: Path) -> Iterator[AgentWorld]:
    world = AgentWorld(server=sandbox_vtn, root=tmp_path)
    try:
        yield world
    finally:
        world.close()


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


# --- our agent passes everything --------------------------------------------------------------


def test_our_agent_passes_every_scenario_through_the_run_api(world: AgentWorld) -> None:
    site = onboard(world, units=(("bat1", 1500, "export", 600), ("hp1", 200, "import")),
                   programs_refresh_s=PROGRAMS_REFRESH_S)
    world.start_agent(site)
    wait_online(world, site)
    with ven_session(world, site) as session:
        response = session.post(f"{world.server.base_url}/conformance/api/v1/runs",
                                json={"scenario": "all"} | RUN_OPTIONS, timeout=30)
        assert response.status_code == 202, response.text
        started = response.json()
        assert started["status"] == "pending"
        url = f"{world.server.base_url}/conformance/api/v1/runs/{started['id']}"
        deadline = time.monotonic() + 600
        answered: set = set()
        while True:
            run = session.get(url, timeout=30).json()
            if run["status"] in ("passed", "failed", "error"):
                break
            answer_when_asked(site, run["awaiting"], answered)
            assert time.monotonic() < deadline, f"run still {run['status']}"
            time.sleep(0.5)

    report = run["report"]
    assert run["status"] == "passed", str(
        {s: f for s, f in failed_checks(report).items() if f}) + "\n" + json.dumps(
        [c for s in report["scenarios"] for c in s["checks"] if not c["passed"]]
        + [s["facts"] for s in report["scenarios"] if s["name"] == "comms-loss"], indent=1)[:8000]
    assert [s["name"] for s in report["scenarios"]] == [
        "lifecycle", "emergency-stop", "stale-revision", "key-rotation", "comms-loss", "metering",
        "notice-period", "parameter-change", "availability", "forged-dispatch", "webhook",
        "mqtt", "reactive-setpoints", "delta-vs-absolute"]
    # The agent takes no webhooks and this VTN has no broker: both not applicable.
    assert [s["name"] for s in report["scenarios"] if s["notApplicable"]] == ["webhook", "mqtt"]
    assert report["summary"]["notApplicable"] == 2
    assert report["fsp"] == site.fsp and report["site"] == "main"
    assert report["summary"]["failed"] == 0
    assert check_named(report, "reactive-setpoints", "kvar-read-back")["passed"]
    assert check_named(report, "delta-vs-absolute", "setpoint-types-read-back")["passed"]
    rotation = next(s for s in report["scenarios"] if s["name"] == "key-rotation")
    assert rotation["facts"]["oldKid"] != rotation["facts"]["newKid"]
    html = requests.get(run["html"], verify=world.server.ca_bundle, timeout=30)
    assert html.status_code == 200 and "PASSED" in html.text
    assert site.fsp in html.text and "comms-lost-marked" in html.text


# --- broken agents fail exactly the right checks ---------------------------------------------

# ven_client that knows only kW: it reads every setpoint back in KW (signed consistently).
KW_ONLY_READ_BACK = r'''
import sys
from gbflex_profile import acks
from ven_client import cli
original = acks.read_back
def kw_only(document, **kwargs):
    signed = original(document, **kwargs)
    for setpoint in signed["setpoints"]:
        setpoint["units"] = "KW"
    return signed
acks.read_back = kw_only
sys.exit(cli.main(sys.argv[1:]))
'''
# ven_client that takes every setpoint as absolute: it reads DELTA back as ABSOLUTE.
ABSOLUTE_ONLY_READ_BACK = r'''
import sys
from gbflex_profile import acks
from ven_client import cli
original = acks.read_back
def absolute_only(document, **kwargs):
    signed = original(document, **kwargs)
    for setpoint in signed["setpoints"]:
        setpoint["setpointType"] = "ABSOLUTE"
    return signed
acks.read_back = absolute_only
sys.exit(cli.main(sys.argv[1:]))
'''


@pytest.mark.parametrize(("code", "failing", "check"), [
    (KW_ONLY_READ_BACK, "reactive-setpoints", "kvar-read-back"),
    (ABSOLUTE_ONLY_READ_BACK, "delta-vs-absolute", "setpoint-types-read-back"),
], ids=["kw-only", "absolute-only"])
def test_an_agent_that_misreads_setpoints_fails_only_the_scenario_that_grades_them(
        world: AgentWorld, tmp_path: Path, code: str, failing: str, check: str) -> None:
    site = onboard(world)  # bat1: 1500 kW export, 600 kVAr, under RESTORE
    start_sabotaged(world, site, code)
    wait_online(world, site)

    status, report = cli_run(world, site, "reactive-setpoints,delta-vs-absolute",
                             tmp_path / "out")

    assert status == 1
    failed = failed_checks(report)
    # Revision 1 of the delta-vs-absolute run is DELTA: the absolute-only agent gets it
    # wrong, its absolute revision 2 right. The kW-only agent gets both kVAr revisions wrong.
    wrong = {"received-r1", "actioned-r1", "acks-valid", check} | (
        {"received-r2", "actioned-r2"} if failing == "reactive-setpoints" else set())
    assert failed == {"reactive-setpoints": set(), "delta-vs-absolute": set()} | {
        failing: wrong}
    assert outcomes(check_named(report, failing, "received-r1")) == {"read_back_mismatch"}


def test_a_wrong_read_back_fails_only_the_acknowledgements_of_setpoints(
        world: AgentWorld, tmp_path: Path) -> None:
    site = onboard(world)
    start_sabotaged(world, site, WRONG_READ_BACK)
    wait_online(world, site)

    code, report = cli_run(world, site, "emergency-stop", tmp_path / "out")

    assert code == 1
    # Revision 1 (RUN) has setpoints to get wrong; the emergency stop has none.
    assert failed_checks(report) == {"emergency-stop": {"received-r1", "actioned-r1",
                                                        "acks-valid"}}
    assert outcomes(check_named(report, "emergency-stop", "received-r1")) == {
        "read_back_mismatch"}
    assert (tmp_path / "out" / "report.html").read_text().count("FAIL") >= 3


def test_a_bad_signature_fails_every_acknowledgement_check(world: AgentWorld,
                                                           tmp_path: Path) -> None:
    site = onboard(world)
    start_sabotaged(world, site, BAD_SIGNATURE)
    wait_online(world, site)

    code, report = cli_run(world, site, "emergency-stop", tmp_path / "out")

    assert code == 1
    assert failed_checks(report) == {"emergency-stop": {
        "received-r1", "actioned-r1", "received-r2", "actioned-r2", "acks-valid"}}
    assert outcomes(check_named(report, "emergency-stop", "acks-valid")) == {
        "invalid_signature"}
    assert check_named(report, "emergency-stop", "heartbeat-regular")["passed"]


def test_an_agent_without_heartbeats_fails_only_the_heartbeat_check(world: AgentWorld,
                                                                     tmp_path: Path) -> None:
    # Polls every 6 s, no jitter, one heartbeat report an hour: the acknowledgements still
    # make a 15 s deadline, but the site is silent for longer than the 3 s interval.
    site = onboard(world, poll_interval_s=6.0, poll_jitter=0.0, heartbeat_interval_s=3600.0)
    world.start_agent(site)
    wait_online(world, site)

    code, report = cli_run(world, site, "emergency-stop", tmp_path / "out",
                           "--deadline", "15", "--heartbeat-interval", "3")

    assert code == 1
    assert failed_checks(report) == {"emergency-stop": {"heartbeat-regular"}}
    gap = check_named(report, "emergency-stop", "heartbeat-regular")["evidence"]
    assert gap["longestGapSeconds"] > 3


# ven_client that ignores Retry-After: it retries as its (tiny) backoff says.
IGNORES_RETRY_AFTER = r'''
import sys
from ven_client import cli, transport
transport.parse_retry_after = lambda value, now=None: None
sys.exit(cli.main(sys.argv[1:]))
'''


def test_an_agent_that_ignores_retry_after_fails_only_the_back_off_check(
        world: AgentWorld, tmp_path: Path) -> None:
    # Backoff from 0.05 s capped at 0.1 s: about ten requests a second through the outage.
    site = onboard(world, backoff_initial_s=0.05, backoff_max_s=0.1)
    start_sabotaged(world, site, IGNORES_RETRY_AFTER)
    wait_online(world, site)

    code, report = cli_run(world, site, "comms-loss", tmp_path / "out")

    assert code == 1
    assert failed_checks(report) == {"comms-loss": {"backs-off"}}
    assert check_named(report, "comms-loss", "comms-lost-marked")["passed"]
    assert check_named(report, "comms-loss", "acks-exactly-once")["passed"]


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


def test_our_agent_passes_notice_period_availability_and_forged_dispatch(
        world: AgentWorld, tmp_path: Path) -> None:
    site = onboard(world)
    world.start_agent(site)
    wait_online(world, site)

    code, report = cli_run_answering(world, site, "notice-period,availability,forged-dispatch",
                                     tmp_path / "out")

    assert code == 0, failed_checks(report)
    assert check_named(report, "availability", "declarations-signed")["passed"]
    assert check_named(report, "forged-dispatch", "forgery-refused")["passed"]
    notice = next(s for s in report["scenarios"] if s["name"] == "notice-period")
    assert notice["facts"]["noticePeriod"] == "PT15M"
    assert [r["status"] for r in notice["facts"]["revisions"]] == ["PRE_NOTIFY", "RUN"]


# ven_client that knows no pre-notification: it drops a PRE_NOTIFY revision unread (neither
# acknowledged nor handed to the asset) and acts on the RUN that follows only.
IGNORES_PRE_NOTIFY = r'''
import sys
from ven_client import agent, cli
original = agent.Agent._ended
agent.Agent._ended = lambda self, document: (document["status"] == "PRE_NOTIFY"
                                             or original(self, document))
sys.exit(cli.main(sys.argv[1:]))
'''
# ven_client that takes a pre-notification as the instruction to run: its asset acts at
# once, and what it signs back says RUN where the operator signed PRE_NOTIFY.
RUNS_AT_PRE_NOTIFY = r'''
import sys
from ven_client import agent, cli
original = agent.profile.verify_dispatch
def as_run(*args, **kwargs):
    document = original(*args, **kwargs)
    return {**document, "status": "RUN"} if document["status"] == "PRE_NOTIFY" else document
agent.profile.verify_dispatch = as_run
sys.exit(cli.main(sys.argv[1:]))
'''


@pytest.mark.parametrize(("code", "failing", "outcome"), [
    (IGNORES_PRE_NOTIFY, {"received-r1"}, None),
    (RUNS_AT_PRE_NOTIFY, {"received-r1", "acks-valid"}, "read_back_mismatch"),
], ids=["ignores-pre-notification", "runs-at-pre-notification"])
def test_an_agent_that_mishandles_a_pre_notification_fails_only_the_notice_period_checks(
        world: AgentWorld, tmp_path: Path, code: str, failing: set[str],
        outcome: str | None) -> None:
    site = onboard(world)  # bat1 is also under DYNAMIC (notice period PT15M)
    start_sabotaged(world, site, code)
    wait_online(world, site)

    # emergency-stop has no pre-notification: the same agent passes it.
    status, report = cli_run(world, site, "notice-period,emergency-stop", tmp_path / "out",
                             "--deadline", "10")

    assert status == 1
    assert failed_checks(report) == {"notice-period": failing, "emergency-stop": set()}
    # The RUN that follows is received and actioned as issued.
    assert check_named(report, "notice-period", "received-r2")["passed"]
    assert check_named(report, "notice-period", "actioned-r2")["passed"]
    first = check_named(report, "notice-period", "received-r1")
    if outcome is None:  # nothing at all came back for the pre-notification
        assert first["evidence"]["acknowledgements"] == []
    else:  # it signed RUN for revision 1: caught by the read-back
        assert outcomes(first) == {outcome}
        detail = " ".join(a["detail"] for a in first["evidence"]["acknowledgements"])
        assert "PRE_NOTIFY" in detail and "RUN" in detail


def test_an_agent_that_does_not_sign_its_declarations_fails_the_availability_checks(
        world: AgentWorld, tmp_path: Path) -> None:
    site = onboard(world)
    start_sabotaged(world, site, UNSIGNED_REPORTS)
    wait_online(world, site)

    code, report = cli_run_answering(world, site, "availability", tmp_path / "out")

    assert code == 1
    # The VTN refuses the unsigned report (the site has a key): nothing is taken in.
    assert failed_checks(report) == {"availability": {
        "declarations-accepted", "declarations-signed", "windows-covered",
        "declarations-in-time"}}
    assert "refuses" in check_named(report, "availability", "declarations-signed")["observed"]


def test_an_agent_that_drops_a_forgery_silently_fails_only_the_refusal_check(
        world: AgentWorld, tmp_path: Path) -> None:
    site = onboard(world)
    start_sabotaged(world, site, SILENT_ON_FORGERY)
    wait_online(world, site)

    code, report = cli_run(world, site, "forged-dispatch", tmp_path / "out")

    assert code == 1
    assert failed_checks(report) == {"forged-dispatch": {"forgery-refused"}}
    assert check_named(report, "forged-dispatch", "forgery-not-actioned")["passed"]


def test_a_new_heartbeat_interval_reaches_our_agent_and_not_one_that_never_rereads(
        world: AgentWorld, tmp_path: Path) -> None:
    # Both take the heartbeat interval from the programs; ours reads them every second,
    # the broken one only once, at start.
    ours = onboard(world, heartbeat_interval_s=0.0, programs_refresh_s=PROGRAMS_REFRESH_S)
    stale = onboard(world, heartbeat_interval_s=0.0, programs_refresh_s=3600.0)
    for site in (ours, stale):
        world.start_agent(site)
        wait_online(world, site)

    code, report = cli_run(world, ours, "parameter-change", tmp_path / "ours")
    assert code == 0, failed_checks(report)
    facts = report["scenarios"][0]["facts"]
    assert (facts["oldIntervalSeconds"], facts["newIntervalSeconds"]) == (60, 10)

    code, report = cli_run(world, stale, "parameter-change", tmp_path / "stale")
    assert code == 1
    assert failed_checks(report) == {"parameter-change": {"heartbeat-interval-followed"}}


def test_cli_writes_both_reports_and_exits_0_when_all_pass(world: AgentWorld,
                                                           tmp_path: Path) -> None:
    site = onboard(world)
    world.start_agent(site)
    wait_online(world, site)

    code, report = cli_run(world, site, "stale-revision", tmp_path / "out")

    assert code == 0, failed_checks(report)
    assert report["passed"] and report["format"] == "gb-conformance-report/1"
    assert report["flags"] == []  # its handler accepted: nothing to flag
    assert set(report) >= {"fsp", "site", "started", "finished", "scenarios"}
    check = report["scenarios"][0]["checks"][0]
    assert set(check) == {"name", "passed", "expected", "observed", "evidence"}
    assert "<html" in (tmp_path / "out" / "report.html").read_text()
    listed = subprocess.run([sys.executable, str(MANAGE), "conformance", "list", "--fsp",
                             f"ENWL/{site.fsp}"], cwd=ROOT, env=world.server.env,
                            capture_output=True, text=True, timeout=60)
    assert json.loads(listed.stdout)[0]["id"] == report["runID"]


def test_a_run_in_which_every_actioned_acknowledgement_failed_is_flagged(
        world: AgentWorld, tmp_path: Path) -> None:
    # The protocol is followed, but local control refuses everything (exit code 3).
    site = onboard(world, handler_command=[
        sys.executable, "-c", "import sys; sys.stdin.read(); print('controller offline', "
        "file=sys.stderr); sys.exit(3)"])
    world.start_agent(site)
    wait_online(world, site)

    code, report = cli_run(world, site, "stale-revision", tmp_path / "out")

    assert report["passed"], failed_checks(report)  # every check of the protocol passed
    assert code == 0
    assert [f["name"] for f in report["flags"]] == ["all-actioned-failed"]
    assert any("controller offline" in reason for reason in report["flags"][0]["reasons"])
    html = (tmp_path / "out" / "report.html").read_text()
    assert "PASSED, FLAGGED" in html and "all-actioned-failed" in html
