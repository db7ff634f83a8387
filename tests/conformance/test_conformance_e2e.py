"""The conformance sandbox end to end: a VTN of its own over HTTPS with fault injection and
self-service onboarding on, FSP sites onboarded through the endpoint, real ``ven_client``
agents polling it, and runs started through the API and the CLI.

Here our agent passes every scenario (through the run API), the CLI writes both reports,
and a run whose every actioned acknowledgement failed is flagged. Deliberately broken
agents fail exactly the checks that grade what they got wrong: in
``test_conformance_e2e_dispatches.py``, ``test_conformance_e2e_heartbeats.py`` and
``test_conformance_e2e_notices.py``, each with a VTN of its own so they run side by side.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.conformance.sandbox import (
    PROGRAMS_REFRESH_S,
    RUN_OPTIONS,
    answer_when_asked,
    check_named,
    cli_run,
    failed_checks,
    onboard,
    ven_session,
    wait_online,
)
from tests.fixtures.agent import AgentWorld
from tests.fixtures.server import MANAGE, ROOT

pytestmark = pytest.mark.slow


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
