"""The conformance sandbox end to end, heartbeats: a new heartbeat interval reaches our
agent and not one that never re-reads the programs (``parameter-change``), and an agent
that polls too rarely and sends no heartbeats fails only ``heartbeat-regular``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conformance.sandbox import (
    PROGRAMS_REFRESH_S,
    check_named,
    cli_run,
    failed_checks,
    onboard,
    wait_online,
)
from tests.fixtures.agent import AgentWorld

pytestmark = pytest.mark.slow


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
