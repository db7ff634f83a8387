"""The sandbox's demo fleet: onboarded once (a second start rotates secrets and reuses the
signing keys), and its real agents answer a dispatch over HTTPS within seconds."""

from __future__ import annotations

import json
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conformance import fleet
from dispatch.models import Contract, FspSite, SiteSigningKey
from tests.fixtures.agent import wait_for, z
from tests.fixtures.server import run_manage
from vtn.models import Client


@pytest.fixture
def fleet_root(settings, tmp_path, fast_hashing, fresh_caches) -> Path:
    settings.VAR_DIR = tmp_path
    return tmp_path / "fleet"


def config_of(root: Path, site: str) -> dict:
    return tomllib.loads((root / site / "config.toml").read_text())


def test_prepare_onboards_three_sites_with_contracts_keys_and_agent_configs(fleet_root):
    prepared = fleet.prepare(base_url="https://127.0.0.1:8443", pki_dir=Path("/pki"))

    assert [s.name for s in prepared.sites] == ["north", "south", "west"]
    sites = FspSite.objects.filter(fsp__identifier=fleet.FLEET_FSP)
    assert sites.count() == 3
    assert set(Contract.objects.filter(fsp__identifier=fleet.FLEET_FSP).values_list(
        "identifier", flat=True)) >= {"FLEET-north-RESTORE", "FLEET-north-MWDISPATCH",
                                     "FLEET-south-DYNAMIC", "FLEET-west-RESTORE"}
    assert not Contract.objects.filter(identifier="FLEET-south-MWDISPATCH").exists()
    config = config_of(fleet_root, "north")
    assert config["vtn_url"] == "https://127.0.0.1:8443"
    assert config["ca_bundle"] == "/pki/ca.pem"
    assert SiteSigningKey.objects.filter(site__name="north", kid=config["signing_kid"]).exists()
    assert (fleet_root / "north" / "client-secret").stat().st_mode & 0o077 == 0
    summary = prepared.summary()
    assert summary["fsp"] == "demo-fleet" and len(summary["sites"]) == 3
    assert "client_secret" not in json.dumps(summary)


def test_prepare_again_rotates_secrets_and_keeps_clients_and_keys(fleet_root):
    fleet.prepare(base_url="https://127.0.0.1:8443", pki_dir=Path("/pki"))
    secret = (fleet_root / "north" / "client-secret").read_text()
    kid = config_of(fleet_root, "north")["signing_kid"]
    clients = Client.objects.count()

    fleet.prepare(base_url="https://127.0.0.1:8443", pki_dir=Path("/pki"))

    assert (fleet_root / "north" / "client-secret").read_text() != secret
    assert config_of(fleet_root, "north")["signing_kid"] == kid
    assert Client.objects.count() == clients
    assert SiteSigningKey.objects.filter(site__name="north").count() == 1


def test_the_fleet_drops_the_readings_a_conformance_run_asks_for_once(fleet_root):
    from conformance.models import ConformanceRun

    prepared = fleet.prepare(base_url="https://127.0.0.1:8443", pki_dir=Path("/pki"))
    north = FspSite.objects.get(fsp__identifier=fleet.FLEET_FSP, name="north")
    ConformanceRun.objects.create(site=north, scenarios=["metering"], status="running",
                                  awaiting={"scenario": "metering", "units": ["bat1", "hp1"],
                                            "periods": [{"start": "2026-11-22T03:00:00.000Z"},
                                                        {"start": "2026-11-22T03:30:00.000Z"}],
                                            "deadline": "2026-11-22T05:02:00.000Z"})
    responder = fleet.MeteringResponder(prepared)

    written = responder.answer_pending()

    assert [p.parent for p in written] == [fleet_root / "north" / "drop"]
    assert written[0].read_text().splitlines() == [
        "unit,start,duration,type,value",
        "bat1,2026-11-22T03:00:00Z,PT30M,USAGE,-187.5",
        "bat1,2026-11-22T03:30:00Z,PT30M,USAGE,-187.5",
        "hp1,2026-11-22T03:00:00Z,PT30M,USAGE,25",
        "hp1,2026-11-22T03:30:00Z,PT30M,USAGE,25"]
    assert responder.answer_pending() == []


def test_the_fleet_drops_the_availability_a_conformance_run_asks_for_once(fleet_root):
    from conformance.models import ConformanceRun

    prepared = fleet.prepare(base_url="https://127.0.0.1:8443", pki_dir=Path("/pki"))
    north = FspSite.objects.get(fsp__identifier=fleet.FLEET_FSP, name="north")
    ConformanceRun.objects.create(
        site=north, scenarios=["availability"], status="running",
        awaiting={"scenario": "availability", "units": ["bat1"],
                  "windows": [{"start": "2026-11-22T07:00:00.000Z",
                               "end": "2026-11-22T08:00:00.000Z"}],
                  "deadline": "2026-11-22T05:02:00.000Z"})
    responder = fleet.MeteringResponder(prepared)

    written = responder.answer_pending()

    assert [p.name for p in written] == [f"availability-{ConformanceRun.objects.get().pk}.csv"]
    assert written[0].read_text().splitlines() == [
        "unit,start,end,available_kw",
        "bat1,2026-11-22T07:00:00Z,2026-11-22T08:00:00Z,750"]
    assert responder.answer_pending() == []


@pytest.mark.slow
def test_the_fleets_agents_answer_a_dispatch(sandbox_vtn, settings):
    server = sandbox_vtn
    # `sandbox --no-serve` against the running VTN's database and PKI onboards the fleet
    # and writes its agents' configurations under <var>/fleet.
    var = server.workdir
    printed = run_manage(server.env | {"VTN_VAR_DIR": str(var)}, "sandbox", "--no-serve",
                         "--bind", f"127.0.0.1:{server.port}").stdout
    summary = json.loads(printed)["fleet"]
    assert [s["site"] for s in summary["sites"]] == ["north", "south", "west"]
    demo = fleet.Fleet(operator=summary["operator"], sites=[
        fleet.FleetSite(name=s["site"], directory=var / "fleet" / s["site"],
                        ven_name=s["ven_name"], client_id=s["client_id"], units=s["units"])
        for s in summary["sites"]])
    operator = server.create_client("bl", "fleet-dno")
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)

    with demo.running():
        wait_for(lambda: all('"online"' in s.log_path.read_text(errors="replace")
                             for s in demo.sites if s.log_path.exists()), 30,
                 "the fleet's agents to come online")
        with server.session(server.token(operator)) as session:
            issued = session.post(f"{server.base_url}/dispatch/api/v1/dispatches", json={
                "unit": "demo-fleet/bat1", "operator": "ENWL", "product": "RESTORE",
                "reference": server.unique("fleet-d"), "status": "run",
                "serviceStart": z(start), "serviceEnd": z(start + timedelta(minutes=30)),
                "serviceTimings": [{"setpointTime": z(start), "volume": 100,
                                    "setpointType": "absolute"}]}, timeout=30)
            assert issued.status_code == 201, issued.text
            url = f"{server.base_url}/dispatch/api/v1/dispatches/ENWL/{issued.json()['reference']}"

            def acknowledged() -> bool:
                revision = session.get(url, timeout=30).json()["revisions"][0]
                stages = {(a["stage"], a["outcome"]) for a in revision["acknowledgements"]}
                return {("received", "accepted"), ("actioned", "accepted")} <= stages
            wait_for(acknowledged, 30, "the fleet agent's acknowledgements", interval=0.5)
        processes = list(demo.processes)
    assert all(p.poll() is not None for p in processes)
