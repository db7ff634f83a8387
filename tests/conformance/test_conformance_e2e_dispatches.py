"""The conformance sandbox end to end, broken agents on dispatches: ven_client with a
sabotaged read-back (one kW off, kVAr read as kW, delta read as absolute), a signing key
the VTN does not know, or one that ignores Retry-After through the comms-loss scenario
fails exactly the checks that grade what it got wrong.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conformance.sandbox import (
    check_named,
    cli_run,
    failed_checks,
    onboard,
    outcomes,
    start_sabotaged,
    wait_online,
)
from tests.fixtures.agent import AgentWorld

pytestmark = pytest.mark.slow


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
