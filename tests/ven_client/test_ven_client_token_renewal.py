"""The agent renews its token late in its life at a random point, so a fleet that got its
tokens together never renews them in one burst; and it rides out a VTN that cannot issue
a new token while the current one lasts (docs/fsp-agent.md)."""

from __future__ import annotations

import dataclasses
import io
import json
import random
from pathlib import Path

import pytest

from tests.fixtures.server import VtnServer, free_port
from ven_client import logs
from ven_client.config import Config
from ven_client.transport import (
    RENEW_MARGIN_S,
    RENEW_WINDOW,
    Transport,
    Unavailable,
    renewal_delay,
)


def test_renewal_falls_late_in_the_tokens_life_and_before_its_end():
    low, high = RENEW_WINDOW
    assert renewal_delay(3600, lambda: 0.0) == pytest.approx(3600 * low)
    assert renewal_delay(3600, lambda: 1.0) == pytest.approx(3600 * high)
    assert renewal_delay(3600, lambda: 1.0) <= 3600 - RENEW_MARGIN_S
    # Short lifetimes keep a margin of a tenth of the life, and their jitter.
    assert renewal_delay(60, lambda: 0.0) == pytest.approx(60 * low)
    assert renewal_delay(60, lambda: 1.0) <= 54
    assert renewal_delay(60, lambda: 0.0) < renewal_delay(60, lambda: 1.0)
    # A lifetime where the window's top would cross the margin is capped by it.
    assert renewal_delay(200, lambda: 1.0) == pytest.approx(180)


def test_a_fleet_issued_tokens_at_once_renews_them_spread_over_minutes():
    rng = random.Random(20261129).random
    renewals = sorted(renewal_delay(3600, rng) for _ in range(1000))
    assert renewals[-1] - renewals[0] > 0.18 * 3600  # spread over ~12 minutes
    per_minute: dict[int, int] = {}
    for when in renewals:
        per_minute[int(when // 60)] = per_minute.get(int(when // 60), 0) + 1
    # Uniform over 12 minutes is ~83 a minute; never a burst of the whole fleet.
    assert max(per_minute.values()) < 130
    assert len(per_minute) >= 12


@pytest.fixture
def clock() -> list[float]:
    return [1_800_000_000.0]


def _transport(server: VtnServer, credentials: dict, tmp_path: Path, clock: list[float],
               rng_value: float) -> Transport:
    config = Config(vtn_url=server.base_url, client_id=credentials["client_id"],
                    client_secret=credentials["client_secret"], ca_bundle=server.ca_bundle,
                    state_dir=str(tmp_path / "state"))
    return Transport(config, clock=lambda: clock[0], rng=lambda: rng_value)


def test_the_agent_renews_at_its_jittered_time_against_the_vtn(vtn_server: VtnServer,
                                                               tmp_path: Path,
                                                               clock: list[float]) -> None:
    credentials = vtn_server.create_client("ven", "renewal", ven="renewal")
    transport = _transport(vtn_server, credentials, tmp_path, clock, rng_value=0.5)
    try:
        first = transport.token()
        assert transport.request("GET", "programs").status_code == 200
        lifetime = 3600  # the VTN's default VTN_TOKEN_LIFETIME_SECONDS
        renew_after = renewal_delay(lifetime, lambda: 0.5)
        start = clock[0]
        clock[0] = start + renew_after - 1
        assert transport.token() == first
        clock[0] = start + renew_after + 1
        second = transport.token()
        assert second != first
        assert transport.request("GET", "programs").status_code == 200
    finally:
        transport.close()


def test_the_agent_keeps_its_token_while_the_vtn_cannot_renew_it(vtn_server: VtnServer,
                                                                 tmp_path: Path,
                                                                 clock: list[float]) -> None:
    credentials = vtn_server.create_client("ven", "renewal-down", ven="renewal-down")
    transport = _transport(vtn_server, credentials, tmp_path, clock, rng_value=0.0)
    stream = io.StringIO()
    logs.configure("json", stream=stream)
    try:
        first = transport.token()
        start = clock[0]
        # The VTN goes away (nothing listens on that port any more).
        transport.config = dataclasses.replace(
            transport.config, vtn_url=f"https://127.0.0.1:{free_port()}")
        clock[0] = start + 3600 * RENEW_WINDOW[0] + 1
        assert transport.token() == first
        clock[0] += 30  # within the retry interval: no new attempt, same token
        assert transport.token() == first
        clock[0] = start + 3600 - 1  # past the usable life: the failure surfaces
        with pytest.raises(Unavailable):
            transport.token()
        # Back, the next call gets a new token.
        transport.config = dataclasses.replace(transport.config,
                                               vtn_url=vtn_server.base_url)
        assert transport.token() != first
    finally:
        logs.configure("json")
        transport.close()
    events = [json.loads(line)["event"] for line in stream.getvalue().splitlines()]
    assert events.count("token_renewal_deferred") == 1
    assert events.count("token_issued") == 2
