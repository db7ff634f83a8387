"""Agent fail-over between two real VTN servers sharing one database (several web nodes,
or a disaster-recovery site): the agent is given both URLs in order; when the first
stops it carries on with the second after repeated connection failures, and it returns
to the first once that is ready again. Dispatches issued at each stage are actioned
and acknowledged exactly once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fixtures.agent import AgentWorld, accepted, wait_for
from tests.fixtures.server import E2EDatabase, VtnServer

pytestmark = [pytest.mark.slow]


def both_acks(world: AgentWorld, reference: str):
    def check():
        acks = world.acknowledgements(reference).get(1, [])
        return acks if accepted(acks, "received") and accepted(acks, "actioned") else None
    return check


def agent_requests(log_path: Path) -> int:
    """How many OpenADR requests a server's access log shows."""
    return sum(1 for line in log_path.read_text(errors="replace").splitlines()
               if "/openadr3/" in line and '"GET ' in line)


def test_the_agent_fails_over_to_the_second_vtn_and_returns_to_the_first(tmp_path):
    first = VtnServer(tmp_path / "vtn", E2EDatabase(os.environ.get("DATABASE_URL", ""),
                                                    tmp_path))
    first.prepare()
    first.start()
    # A second web node: same database, PKI and secrets, another port.
    second = VtnServer(first.workdir, first.database)
    second.env = {**first.env, "VTN_PUBLIC_URL": second.base_url}
    second.log_path = first.workdir / "server-second.log"
    second.start()
    world = AgentWorld(server=first, root=tmp_path / "sites")
    try:
        site = world.onboard(vtn_urls=[first.base_url, second.base_url],
                             failover_after_failures=2, failback_check_s=2.0)
        agent = world.start_agent(site)
        one = world.issue(site)
        wait_for(both_acks(world, one["reference"]), 30, "the first dispatch via the first VTN")

        first.stop()
        failover = wait_for(lambda: [r for r in site.log_records()
                                     if r["event"] == "vtn_failover"], 60, "fail-over")
        assert failover[0]["to"] == second.base_url and failover[0]["failures"] == 2
        world.server = second  # the operator carries on through the second node too
        two = world.issue(site)
        wait_for(both_acks(world, two["reference"]), 30, "the second dispatch via the second")
        assert agent_requests(second.log_path) > 0

        first.start()
        failback = wait_for(lambda: [r for r in site.log_records()
                                     if r["event"] == "vtn_failback"], 60, "fail-back")
        assert failback[0]["to"] == first.base_url
        world.server = first
        three = world.issue(site)
        wait_for(both_acks(world, three["reference"]), 30, "the third dispatch via the first")
        on_second = agent_requests(second.log_path)
        world.wait_polls(site, 3)  # several polls: all of them now reach the first VTN
        assert agent_requests(second.log_path) == on_second

        assert [h["dispatch"]["dispatchRef"] for h in site.handled()] == [
            one["reference"], two["reference"], three["reference"]]
        for dispatch in (one, two, three):
            acks = world.acknowledgements(dispatch["reference"])[1]
            assert sorted(a["stage"] for a in acks) == ["actioned", "received"], acks
        assert agent.poll() is None
        assert world.stop_agent(agent) == 0
    finally:
        world.close()
        second.stop(graceful=False)
        first.stop(graceful=False)
        first.database.drop()


def test_the_url_list_and_its_primary_are_validated():
    from ven_client.config import Config

    config = Config(vtn_url="https://a.example", client_id="c", client_secret="s")
    assert config.urls == ["https://a.example"]
    listed = Config(vtn_urls=["https://a.example", "https://b.example"], client_id="c",
                    client_secret="s")
    assert listed.vtn_url == "https://a.example" and listed.urls[1] == "https://b.example"
    listed.validate()
    wrong = Config(vtn_url="https://c.example", vtn_urls=["https://a.example"],
                   client_id="c", client_secret="s")
    with pytest.raises(ValueError, match="vtn_url must be one of vtn_urls"):
        wrong.validate()
