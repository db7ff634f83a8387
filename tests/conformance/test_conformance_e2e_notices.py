"""The conformance sandbox end to end, notice period, availability and forged dispatches:
our agent passes them (answering the availability request as the FSP would); agents that
mishandle a pre-notification, send unsigned declarations or drop a forgery silently fail
exactly the checks that grade what they got wrong.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conformance.sandbox import (
    check_named,
    cli_run,
    cli_run_answering,
    failed_checks,
    onboard,
    outcomes,
    start_sabotaged,
    wait_online,
)
from tests.fixtures.agent import AgentWorld

pytestmark = pytest.mark.slow


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


# ven_client that sends availability and readings without the site's signature.
UNSIGNED_REPORTS = r'''
import sys
from gbflex_profile import report_signing
from ven_client import cli
report_signing.sign_report = lambda body, **kwargs: dict(body)
sys.exit(cli.main(sys.argv[1:]))
'''


def test_an_agent_that_does_not_sign_its_declarations_fails_the_availability_checks(
        world: AgentWorld, tmp_path: Path) -> None:
    site = onboard(world)
    start_sabotaged(world, site, UNSIGNED_REPORTS)
    wait_online(world, site)

    # The run waits out its whole deadline for declarations that never count: 15 s, still
    # ample for the agent to send (and the VTN to refuse) them a poll after the drop.
    code, report = cli_run_answering(world, site, "availability", tmp_path / "out",
                                     "--metering-deadline", "15")

    assert code == 1
    # The VTN refuses the unsigned report (the site has a key): nothing is taken in.
    assert failed_checks(report) == {"availability": {
        "declarations-accepted", "declarations-signed", "windows-covered",
        "declarations-in-time"}}
    assert "refuses" in check_named(report, "availability", "declarations-signed")["observed"]


# ven_client that drops a dispatch it cannot verify without telling the operator.
SILENT_ON_FORGERY = r'''
import sys
from ven_client import agent, cli
agent.Agent.refuse = lambda self, event, said, reason: None
sys.exit(cli.main(sys.argv[1:]))
'''


def test_an_agent_that_drops_a_forgery_silently_fails_only_the_refusal_check(
        world: AgentWorld, tmp_path: Path) -> None:
    site = onboard(world)
    start_sabotaged(world, site, SILENT_ON_FORGERY)
    wait_online(world, site)

    code, report = cli_run(world, site, "forged-dispatch", tmp_path / "out")

    assert code == 1
    assert failed_checks(report) == {"forged-dispatch": {"forgery-refused"}}
    assert check_named(report, "forged-dispatch", "forgery-not-actioned")["passed"]
