"""From the agent's signed meter readings to a settled statement, end to end.

The real VTN over HTTPS and the real FSP agent (``ven-client run``): the operator gives a
unit a kVAr capability and contracts three units for Restore (a contract premium for
emergencies, a reactive price) through ``manage.py fsp``; it issues an advisory dispatch
at the contract's price, an emergency one at an instructed price and a reactive one through
the dispatch API; the agent acknowledges each (signed). Once the periods have passed, the
site's meter writes its readings (active kWh and ``GB_REACTIVE`` kVArh) to the agent's drop
folder and the agent sends them as signed OpenADR reports. The month is settled with
``manage.py settle --issue`` and the FSP's back office reads the statement through the
settlement API.

Settlement periods of one minute (a contract term) keep it to a few minutes of real time:
the dispatches start at the first whole minute at least 20 s ahead (Restore needs no
notice) and last two.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.fixtures.agent import OPERATOR, AgentWorld, accepted, wait_for, z

pytestmark = pytest.mark.slow


def by_dispatch(lines: list[dict], kind: str) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for line in lines:
        if line["kind"] == kind:
            found.setdefault(line["dispatchRef"], []).append(line)
    return found


def test_the_agents_signed_readings_settle_each_dispatch_as_instructed(
        agent_world: AgentWorld) -> None:
    world, server = agent_world, agent_world.server
    site = world.onboard(units=("a1", "a2", "q1"))  # export units of 1500 kW
    fsp = site.fsp
    contract = f"{fsp}-restore"
    server.manage_many(
        ["fsp", "unit", "--operator", OPERATOR, "--fsp", fsp, "--unit", "q1", "--kvar", "500",
         "--reason", "inverter rated"],
        ["fsp", "contract", "--operator", OPERATOR, "--fsp", fsp, "--id", contract,
         "--product", "RESTORE", "--unit", "a1", "--unit", "a2", "--unit", "q1",
         "--utilisation-price", "300", "--reactive-price", "20", "--emergency-premium", "10",
         "--baseline", "meter-before-2", "--reactive-baseline", "meter-before-2"],
        ["shell", "-c", (
            "from dispatch.models import Contract; from settlement.models import "
            "SettlementTerms; SettlementTerms.objects.create(contract=Contract.objects.get("
            f"identifier='{contract}'), period_minutes=1, meter_window_hours=0, "
            "penalty_rate_gbp=60)")])
    world.start_agent(site)
    references = {name: server.unique(f"{fsp}-{name}") for name in ("adv", "emg", "q")}
    with world.operator() as session:
        # The operator's client, token and connection are made before the start is
        # chosen: what is left before the start is three POSTs.
        assert session.get(world.api("dispatches"), params={"fsp": fsp},
                           timeout=30).status_code == 200
        # Restore needs no notice: a dispatch may start as soon as it is issued, and no
        # sooner. Settlement periods are whole minutes, so the first whole minute at
        # least 20 s ahead: time enough to issue all three on a busy machine.
        start = (datetime.now(UTC) + timedelta(seconds=80)).replace(second=0, microsecond=0)
        end = start + timedelta(minutes=2)
        window = {"serviceStart": z(start), "serviceEnd": z(end)}
        orders = {
            # 300 kW less export (an export unit's flexibility) at the contract's price;
            # voluntary
            "adv": {"unit": f"{fsp}/a1", "urgency": "advisory", "serviceTimings": [
                {"setpointTime": z(start), "volume": 300, "setpointType": "delta"}]},
            # the same under emergency, at 0.50 GBP/kWh instructed
            "emg": {"unit": f"{fsp}/a2", "urgency": "emergency", "serviceTimings": [
                {"setpointTime": z(start), "volume": 300, "setpointType": "delta",
                 "pricePerUnit": 0.5}]},
            # 300 kVAr supplied
            "q": {"unit": f"{fsp}/q1", "urgency": "warning", "serviceTimings": [
                {"setpointTime": z(start), "volume": 300, "units": "KVAR",
                 "setpointType": "absolute"}]},
        }
        for name, order in orders.items():
            response = session.post(world.api("dispatches"), json=order | window | {
                "operator": OPERATOR, "contract": contract, "reference": references[name]},
                timeout=30)
            assert response.status_code == 201, response.text

    def acknowledged(reference: str) -> bool:
        acks = world.acknowledgements(reference).get(1, [])
        return bool(accepted(acks, "received") and accepted(acks, "actioned"))

    for reference in references.values():
        wait_for(lambda r=reference: acknowledged(r), 90,
                 f"the agent's RECEIVED and ACTIONED of {reference}")

    # The meter reports once the periods have passed: per minute, kWh (negative: export)
    # and kVArh (negative: supplied). a1 and a2 export 600 kW in the two minutes before;
    # a1 then 420 kW twice, a2 420 then 300 kW; q1 supplies 240 then 300 kVAr.
    wait_for(lambda: datetime.now(UTC) >= end, 240, "the dispatches to end", interval=0.5)
    rows = ["unit,start,duration,type,value"]
    for unit, kwh in (("a1", [-10, -10, -7, -7]), ("a2", [-10, -10, -7, -5])):
        rows += [f"{unit},{z(start + timedelta(minutes=i - 2))},PT1M,USAGE,{value}"
                 for i, value in enumerate(kwh)]
    rows += [f"q1,{z(start + timedelta(minutes=i))},PT1M,GB_REACTIVE,{value}"
             for i, value in enumerate([-4, -5])]
    site.drop_dir.mkdir(exist_ok=True)
    staging = site.directory / "readings-meter.csv"
    staging.write_text("\n".join(rows) + "\n")
    staging.rename(site.drop_dir / staging.name)

    def stored() -> list | None:
        with world.operator() as session:
            found = session.get(world.api("meter-readings"), params={"fsp": fsp},
                                timeout=30).json()
        return found if len(found) >= 10 else None

    readings = wait_for(stored, 90, "the agent's 10 readings stored")
    assert sorted((r["type"], r["units"]) for r in readings) == (
        [("GB_REACTIVE", "KVARH")] * 2 + [("USAGE", "KWH")] * 8)

    month = f"{start.astimezone(ZoneInfo('Europe/London')):%Y-%m}"
    settled = json.loads(server.manage("settle", "--month", month, "--contract", contract,
                                       "--issue").stdout)
    assert [s["status"] for s in settled] == ["issued"]

    office = json.loads(server.manage(
        "fsp", "staff-client", "--operator", OPERATOR, "--fsp", fsp, "--name", f"{fsp}-office",
        "--role", "read_only").stdout)
    base = f"{server.base_url}/settlement/api/v1/statements"
    with server.session(server.token(office)) as back_office:
        (listed,) = back_office.get(base, params={"contract": contract}, timeout=30).json()
        document = back_office.get(f"{base}/{listed['id']}", timeout=30).json()["document"]
    lines = document["lines"]
    assert not [line for line in lines if line["kind"] == "held"], lines
    real = by_dispatch(lines, "utilisation")
    reactive = by_dispatch(lines, "reactive")
    assert set(real) == {references["adv"], references["emg"]}
    assert set(reactive) == {references["q"]}

    # Advisory: 180 kW of 300 delivered each minute at the contract's 300 GBP/MWh, and no
    # penalty for the 120 kW short.
    assert [(line["urgency"], line["priceSource"], line["baselineKw"], line["actualKw"],
             line["deliveredKw"], line["deficiencyKw"], line["paymentGbp"], line["penaltyGbp"],
             line["urgencyPremiumGbp"], line["netGbp"]) for line in real[references["adv"]]
            ] == [("advisory", "contract", "-600", "-420", "180", "120", "0.90", "0.00",
                   "0.00", "0.90")] * 2
    # Emergency at 0.50 GBP/kWh: 0.003 MWh x 500 = 1.50, 120 kW short for a minute at 60
    # GBP/MW/h = 0.12, a 10 % premium 0.15; then all 300 kW: 2.50 and 0.25.
    assert [(line["urgency"], line["priceSource"], line["priceGbp"], line["deliveredKw"],
             line["paymentGbp"], line["penaltyGbp"], line["urgencyPremiumGbp"], line["netGbp"])
            for line in real[references["emg"]]] == [
        ("emergency", "instructed", "500.0", "180", "1.50", "0.12", "0.15", "1.53"),
        ("emergency", "instructed", "500.0", "300", "2.50", "0.00", "0.25", "2.75")]
    # Reactive at the contract's 20 GBP/MVArh: 240 of 300 kVAr (0.004 MVArh, 60 kVAr short:
    # 0.06), then 300 kVAr (0.005 MVArh).
    assert [(line["instructedKvar"], line["actualKvar"], line["deliveredKvar"],
             line["deficiencyKvar"], line["deliveredMvarh"], line["deficiencyMvarh"],
             line["paymentGbp"], line["penaltyGbp"], line["netGbp"])
            for line in reactive[references["q"]]] == [
        ("300", "240", "240", "60", "0.004", "0.001", "0.08", "0.06", "0.02"),
        ("300", "300", "300", "0", "0.005", "0", "0.10", "0.00", "0.10")]

    totals = document["totals"]
    # Real power: 180 + 180 + 180 + 300 kW for a minute each delivered, 120 x 3 short.
    assert (totals["deliveredMwh"], totals["deficiencyMwh"]) == ("0.014", "0.006")
    assert (totals["reactiveDeliveredMvarh"], totals["reactiveDeficiencyMvarh"]) == (
        "0.009", "0.001")
    assert (totals["urgencyPremiumGbp"], totals["penaltiesGbp"], totals["netGbp"]) == (
        "0.40", "0.18", "6.20")
    assert (document["terms"]["emergencyPremiumPercent"],
            document["terms"]["reactiveBaselineMethod"]) == ("10.000", "meter-before-2")
