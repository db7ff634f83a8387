"""End to end over HTTPS with a real Celery worker on Redis: a VEN posts meter readings as
OpenADR reports, the operator issues a dispatch, the VEN acknowledges it, the worker
settles the month, and the FSP reads its statement through the API and disputes a line.

Settlement periods of one minute (a contract term) keep the test to a few minutes of
real time: the dispatch starts at the next whole minute and lasts two."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from gbflex_profile import acks, jose, report_signing
from tests.fixtures.server import MANAGE, ROOT
from tests.fixtures.worker import CeleryWorker

pytestmark = pytest.mark.slow


def z(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def minutes(start: datetime, kwh: list[float]) -> list[dict]:
    return [{"id": i, "intervalPeriod": {"start": z(start + timedelta(minutes=i)),
                                         "duration": "PT1M"},
             "payloads": [{"type": "USAGE", "values": [value]}]}
            for i, value in enumerate(kwh)]


def test_a_dispatch_is_settled_by_the_worker_and_disputed_by_the_fsp(
        vtn_server, celery_worker: CeleryWorker):
    fsp = vtn_server.unique("heat")
    onboarded = json.loads(vtn_server.manage(
        "fsp", "onboard", "--operator", "ENWL", "--fsp", fsp, "--unit", "hp9:300").stdout)
    contract = f"{fsp}-restore"
    vtn_server.manage("fsp", "contract", "--operator", "ENWL", "--fsp", fsp, "--id", contract,
                      "--product", "RESTORE", "--unit", "hp9", "--utilisation-price", "300",
                      "--baseline", "meter-before-2")
    vtn_server.manage("shell", "-c", (
        "from dispatch.models import Contract; from settlement.models import SettlementTerms; "
        f"SettlementTerms.objects.create(contract=Contract.objects.get(identifier='{contract}'),"
        " period_minutes=1, meter_window_hours=0)"))
    ven_token = vtn_server.token(onboarded)
    operator_token = vtn_server.token(vtn_server.create_client("bl", vtn_server.unique("dno")))
    now = datetime.now(UTC)
    start = now.replace(second=0, microsecond=0) + timedelta(minutes=1)

    with vtn_server.session(operator_token) as operator:
        issued = operator.post(f"{vtn_server.base_url}/dispatch/api/v1/dispatches", json={
            "unit": f"{fsp}/hp9", "product": "RESTORE", "reference": f"{fsp}-1",
            "serviceStart": z(start), "serviceEnd": z(start + timedelta(minutes=2)),
            "serviceTimings": [{"setpointTime": z(start), "volume": 100,
                                "setpointType": "delta"}]}, timeout=30)
        assert issued.status_code == 201, issued.text
        dispatch = issued.json()

    key = jose.generate_private_key()
    public = jose.public_jwk(key, "site-1")
    with vtn_server.session(ven_token) as ven:
        registered = ven.post(f"{vtn_server.base_url}/dispatch/api/v1/site-keys", json={
            "jwk": {k: public[k] for k in ("kty", "crv", "x", "kid")}}, timeout=30)
        assert registered.status_code == 201, registered.text
        document = dispatch["current"]["document"]
        read_back = acks.expected_read_back(document)
        claim = acks.claim_document(
            stage="RECEIVED", status=read_back["status"], dispatch_ref=read_back["dispatchRef"],
            fsp=read_back["fspId"], unit=read_back["dispatchUnit"],
            revision=read_back["revision"], setpoints=read_back["setpoints"])
        acked = ven.post(vtn_server.url("3.1.0", "reports"), json={
            "eventID": dispatch["eventID"], "clientName": "agent", "reportName": "ack",
            "resources": [{"resourceName": "hp9", "intervals": [{"id": 0, "payloads":
                          acks.payloads_for(claim, jose.sign(claim, key, "site-1"))}]}]},
            timeout=30)
        assert acked.status_code == 201, acked.text
        # 240 kW for the two minutes before (the meter-before baseline), then 144 and 120 kW
        # Signed with the site key: the site has one, so its operator refuses unsigned ones.
        readings = ven.post(vtn_server.url("3.1.0", "reports"), json=report_signing.sign_report(
            {"eventID": onboarded["metering_event_id"], "clientName": "agent",
             "reportName": "readings", "resources": [{"resourceName": "hp9",
                                                      "intervals": minutes(
                                                          start - timedelta(minutes=2),
                                                          [4, 4, 2.4, 2])}]},
            kind="METERING", fsp=fsp, key=key, kid="site-1"), timeout=30)
        assert readings.status_code == 201, readings.text
        intakes = ven.get(f"{vtn_server.base_url}/dispatch/api/v1/report-intakes",
                          params={"report": readings.json()["id"]}, timeout=30)
        assert intakes.status_code == 200 and intakes.json()[0]["stored"] == 4, intakes.text

    month = f"{start:%Y-%m}"
    issued_statements = celery_worker.run("settlement.tasks.issue_monthly_statements", month)
    mine = [s for s in issued_statements if s["contract"] == contract]
    assert mine and mine[0]["status"] == "issued", issued_statements

    with vtn_server.session(ven_token) as ven:
        listed = ven.get(f"{vtn_server.base_url}/settlement/api/v1/statements", timeout=30)
        assert listed.status_code == 200
        (statement,) = [s for s in listed.json() if s["contract"] == contract]
        detail = ven.get(f"{vtn_server.base_url}/settlement/api/v1/statements/"
                         f"{statement['id']}", timeout=30).json()
        lines = [line for line in detail["document"]["lines"] if line["kind"] == "utilisation"]
        assert [(line["baselineKw"], line["actualKw"], line["deliveredKw"]) for line in lines] \
            == [("240", "144", "96"), ("240", "120", "100")]
        # 96 kW and 100 kW for a minute each at 300 GBP/MWh: 0.48 + 0.50
        assert detail["document"]["totals"]["netGbp"] == "0.98"
        refused = ven.post(f"{vtn_server.base_url}/settlement/api/v1/statements/"
                           f"{statement['id']}/accept", timeout=30)
        assert refused.status_code == 403  # a site's gateway does not answer statements

    # The FSP's commercial back office answers it.
    office = json.loads(vtn_server.manage(
        "fsp", "staff-client", "--operator", "ENWL", "--fsp", fsp, "--name", f"{fsp}-office",
        "--role", "commercial").stdout)
    with vtn_server.session(vtn_server.token(office)) as commercial:
        disputed = commercial.post(f"{vtn_server.base_url}/settlement/api/v1/statements/"
                            f"{statement['id']}/dispute", json={
                                "reason": "our logger shows full delivery",
                                "lines": [{"line": lines[0]["line"], "reason": "96 is low"}]},
                            timeout=30)
        assert disputed.status_code == 200 and disputed.json()["status"] == "disputed"

    with vtn_server.session(operator_token) as operator:
        shown = operator.get(f"{vtn_server.base_url}/dispatch/api/v1/dispatches/ENWL/{fsp}-1",
                             timeout=30).json()
        assert shown["current"]["acknowledged"]["received"] is not None


def test_the_comms_check_runs_on_the_worker(vtn_server, celery_worker: CeleryWorker):
    changes = celery_worker.run("dispatch.tasks.check_comms")
    assert isinstance(changes, list)
    assert all({"site", "from", "to", "at"} <= set(change) for change in changes)


def test_workers_settling_the_same_month_at_once_make_one_statement(vtn_server):
    """Four processes settle the same contract's month at the same moment, as workers
    picking up the same job would: one statement, and all of them agree on it."""
    fsp = vtn_server.unique("race")
    vtn_server.manage("fsp", "onboard", "--operator", "ENWL", "--fsp", fsp, "--unit", "u1:100")
    contract = f"{fsp}-dyn"
    vtn_server.manage("fsp", "contract", "--operator", "ENWL", "--fsp", fsp, "--id", contract,
                      "--product", "DYNAMIC", "--unit", "u1")
    workers = [subprocess.Popen(
        [sys.executable, str(MANAGE), "settle", "--month", "2026-09", "--contract", contract],
        cwd=ROOT, env=vtn_server.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True) for _ in range(4)]
    answers = [worker.communicate(timeout=120) for worker in workers]
    assert [worker.returncode for worker in workers] == [0] * 4, answers
    printed = [json.loads(out)[0] for out, _ in answers]
    assert {(p["id"], p["version"], p["sha256"]) for p in printed} == {
        (printed[0]["id"], 1, printed[0]["sha256"])}
    counted = vtn_server.manage("shell", "-c", (
        "from settlement.models import Statement; "
        f"print(Statement.objects.filter(contract__identifier='{contract}').count())"))
    assert counted.stdout.split()[-1] == "1"
