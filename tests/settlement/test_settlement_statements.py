"""Settlement statements from stored dispatches and meter readings: lines and totals
computed by hand, determinism, held lines, versions after corrected data, the lifecycle
through the API (FSPs see only their own), exports, the tasks and the command."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from dispatch.models import Contract, DispatchUnit, MeterReading, ReportIntake
from settlement import services, statement, tasks
from settlement.models import DispatchSettlement, SettlementTerms, Statement
from tests.fixtures.api import new_actor
from tests.fixtures.dispatch import fsp_office_token, timing

pytestmark = pytest.mark.django_db

MONTH = services.Month(2026, 9)
T0 = datetime(2026, 9, 16, 17, 0, tzinfo=UTC)  # a Wednesday; 18:00 in London
BASE = "/settlement/api/v1"


def readings(unit: str, start: datetime, kwh: list) -> None:
    """Half-hourly USAGE readings of ``unit`` from ``start`` (None: flagged missing); a
    reading for a period that has one supersedes it, as a correction does."""
    row = DispatchUnit.objects.get(reference=unit)
    intake = ReportIntake.objects.create(site=row.site, kind="metering", report_id="test",
                                         client_id="test", received_at=T0 + timedelta(days=1))
    for index, value in enumerate(kwh):
        begin = start + timedelta(minutes=30 * index)
        held = MeterReading.objects.filter(unit=row, reading_type="USAGE", start=begin,
                                           superseded_at__isnull=True)
        version = held.first().version + 1 if held.exists() else 1
        held.update(superseded_at=intake.received_at)
        MeterReading.objects.create(
            unit=row, reading_type="USAGE", start=begin, end=begin + timedelta(minutes=30),
            value=None if value is None else Decimal(str(value)),
            quality="MISSING" if value is None else "OK", version=version,
            received_at=intake.received_at, intake=intake)


@pytest.fixture
def settled(gb, issue):
    """hp1 (200 kW import) under C-DYN with a meter-before-2 baseline and a 50 GBP/MW/h
    penalty; a 100 kW delta turn-down 17:00-18:00 UTC on 16 September 2026."""
    contract = Contract.objects.get(identifier="C-DYN")
    contract.baseline_method = "meter-before-2"
    contract.save()
    SettlementTerms.objects.create(contract=contract, penalty_rate_gbp=Decimal(50))
    dispatch = issue("acme/hp1", reference="SET-1", service_start=T0,
                     service_end=T0 + timedelta(hours=1), timings=[timing(T0, 100)],
                     now=T0 - timedelta(hours=1))
    readings("hp1", T0 - timedelta(hours=1), [100, 100, 60, 40])
    return contract, dispatch


def utilisation(document: dict) -> list[dict]:
    return [line for line in document["lines"] if line["kind"] == "utilisation"]


def test_a_statement_prices_each_period_as_computed_by_hand(settled):
    contract, _ = settled
    row = services.settle_month(contract=contract, month=MONTH)
    assert (row.version, row.status, row.held_lines) == (1, "draft", 0)
    first, second = utilisation(row.document)
    assert (first["periodStart"], first["baselineKw"], first["actualKw"], first["orderedKw"],
            first["deliveredKw"], first["deficiencyKw"]) == (
        "2026-09-16T17:00:00Z", "200", "120", "100", "80", "20")
    # 80 kW x 0.5 h = 0.04 MWh x 300 GBP/MWh; 20 kW short x 0.5 h x 50 GBP/MW/h
    assert (first["paymentGbp"], first["penaltyGbp"], first["netGbp"]) == (
        "12.00", "0.50", "11.50")
    assert (second["deliveredKw"], second["overDeliveryKw"], second["netGbp"]) == (
        "100", "20", "15.00")  # over-delivery is not paid
    assert first["baselineSources"] == ["2026-09-16T16:00:00Z", "2026-09-16T16:30:00Z"]
    assert row.document["totals"]["netGbp"] == "26.50" and row.net_gbp == Decimal("26.50")
    assert row.document["inputs"]["dispatches"][0]["dispatchRef"] == "SET-1"


def test_the_same_inputs_give_a_byte_identical_statement(settled):
    contract, _ = settled
    one = services.compute_document(contract, MONTH, 1)
    two = services.compute_document(contract, MONTH, 1)
    assert statement.canonical_bytes(one) == statement.canonical_bytes(two)
    row = services.settle_month(contract=contract, month=MONTH)
    again = services.settle_month(contract=contract, month=MONTH)
    assert again.pk == row.pk and again.sha256 == row.sha256
    assert Statement.objects.count() == 1


def test_missing_data_holds_the_dispatch_and_late_data_releases_it(settled):
    contract, _ = settled
    readings("hp1", T0 + timedelta(minutes=30), [None])
    row = services.settle_month(contract=contract, month=MONTH)
    (held,) = row.document["lines"]
    assert held["kind"] == "held" and held["missingPeriods"] == ["2026-09-16T17:30:00Z"]
    assert row.held_lines == 1 and row.net_gbp == 0
    readings("hp1", T0 + timedelta(minutes=30), [40])
    refreshed = services.settle_month(contract=contract, month=MONTH)
    assert refreshed.pk == row.pk and refreshed.version == 1  # still a draft
    assert refreshed.held_lines == 0 and refreshed.net_gbp == Decimal("26.50")


def test_an_unknown_baseline_method_holds_the_line_with_the_reason(settled):
    contract, _ = settled
    Contract.objects.filter(pk=contract.pk).update(baseline_method="mid-8-of-10")
    row = services.settle_month(contract=Contract.objects.get(pk=contract.pk), month=MONTH)
    assert "mid-8-of-10" in row.document["lines"][0]["reason"]


def test_corrected_data_after_issue_gives_a_new_version_and_never_changes_the_issued(settled):
    contract, _ = settled
    first = services.issue(statement_id=services.settle_month(contract=contract,
                                                              month=MONTH).pk)
    issued_sha = first.sha256
    assert services.settle_month(contract=contract, month=MONTH).pk == first.pk  # no change
    readings("hp1", T0, [50])  # corrected: 100 kW actual, full delivery
    second = services.settle_month(contract=contract, month=MONTH)
    assert (second.version, second.status) == (2, "draft")
    assert second.net_gbp == Decimal("30.00")
    first.refresh_from_db()
    assert first.sha256 == issued_sha and first.status == "issued"
    services.issue(statement_id=second.pk)
    first.refresh_from_db()
    assert first.status == "superseded"


def test_a_stop_cuts_the_order_short(settled):
    from dispatch import issuing

    contract, dispatch = settled
    issuing.stop_dispatch(dispatch=dispatch, now=T0 + timedelta(minutes=30))
    row = services.settle_month(contract=contract, month=MONTH)
    assert [line["periodStart"] for line in utilisation(row.document)] == [
        "2026-09-16T17:00:00Z"]


def test_a_later_revision_never_changes_a_past_periods_money(settled):
    from dispatch import issuing

    contract, dispatch = settled
    (before, _) = utilisation(services.compute_document(contract, MONTH, 1))
    # at 17:30 the operator lowers the order from 17:45 (the first moment Dynamic's notice
    # allows): the 17:00 period was ordered by revision 1 and stays exactly as it was
    issuing.revise_dispatch(
        dispatch=dispatch, now=T0 + timedelta(minutes=30),
        timings=[timing(T0, 100), timing(T0 + timedelta(minutes=45), 50)])
    lines = utilisation(services.compute_document(contract, MONTH, 1))
    first = lines[0]
    assert first == before and first["revision"] == 1
    assert {line["revision"] for line in lines[1:]} == {2}
    assert sum(Decimal(line["orderedKw"]) for line in lines[1:]) < 200  # the future did change


def test_settlement_takes_each_period_from_the_revision_in_force(settled):
    """Even a revision that rewrote the past (as stored before such revisions were
    refused) is settled only from the moment it was instructed."""
    from dispatch.models import DispatchRevision
    from settlement import inputs

    _, dispatch = settled
    first = dispatch.revisions.get()
    rewritten = dict(first.document, revision=2, serviceTimings=[
        dict(first.document["serviceTimings"][0], volume=0)])
    second = DispatchRevision(instruction=dispatch, number=2, status="run",
                              urgency=first.urgency,
                              instruction_time=T0 + timedelta(minutes=30),
                              service_start=first.service_start,
                              service_end=first.service_end, document=rewritten)
    ordered = inputs.dispatch_input(dispatch.reference, dispatch.unit.reference, [first, second])
    assert [(s.start, s.end, s.volume_kw, s.revision) for s in ordered.segments] == [
        (T0, T0 + timedelta(minutes=30), Decimal(100), 1),
        (T0 + timedelta(minutes=30), T0 + timedelta(hours=1), Decimal(0), 2)]
    assert ordered.revision == 2


def test_a_revisions_signed_payload_is_hashed_as_its_canonical_document(settled):
    """Statements name each dispatch's document by the digest of what its signature signs;
    for every kind of revision (issued with fractional volumes and a price, revised,
    stopped) that is the digest of the canonical document."""
    from dispatch import issuing
    from dispatch.models import DispatchRevision
    from settlement import inputs

    _, dispatch = settled
    issuing.revise_dispatch(
        dispatch=dispatch, now=T0 + timedelta(minutes=30),
        timings=[timing(T0, 100), timing(T0 + timedelta(minutes=45), "12.375",
                                          price_gbp_per_kwh=Decimal("0.125"))])
    issuing.stop_dispatch(dispatch=dispatch, now=T0 + timedelta(minutes=50))
    revisions = list(DispatchRevision.objects.filter(instruction=dispatch))
    assert len(revisions) == 3
    for revision in revisions:
        assert inputs.signed_document_sha256(revision) == statement.document_sha256(
            revision.document)
    unsigned = DispatchRevision(document=revisions[0].document, signature="")
    assert inputs.signed_document_sha256(unsigned) == statement.document_sha256(
        revisions[0].document)


# --- the API ----------------------------------------------------------------------------------

class Api:
    def __init__(self, token: str):
        from django.test import Client

        self.http = Client()
        self.headers = {"Authorization": f"Bearer {token}"}

    def get(self, path: str, query: dict | None = None):
        response = self.http.get(BASE + path, query or {}, headers=self.headers)
        return response.status_code, response

    def post(self, path: str, body: dict | None = None):
        response = self.http.post(BASE + path, json.dumps(body or {}),
                                  content_type="application/json", headers=self.headers)
        return response.status_code, json.loads(response.content or b"null")


def test_the_fsp_sees_its_issued_statement_and_disputes_a_line(settled, gb):
    operator = Api(new_actor("operator", "bl", "3.1.0").token)
    acme, zeta = Api(gb.acme.token), Api(gb.zeta.token)
    office = Api(fsp_office_token("ENWL", "acme", "commercial"))
    reader = Api(fsp_office_token("ENWL", "acme", "read_only"))
    zeta_office = Api(fsp_office_token("ENWL", "zeta", "commercial"))
    status, computed = operator.post("/statements", {"operator": "ENWL", "contract": "C-DYN",
                                                     "month": "2026-09"})
    assert status == 200, computed
    sid = computed["id"]
    assert acme.get(f"/statements/{sid}")[0] == 404  # drafts are the operator's
    assert json.loads(acme.get("/statements")[1].content) == []
    assert operator.post(f"/statements/{sid}/issue")[0] == 200
    status, response = acme.get(f"/statements/{sid}")
    assert status == 200 and json.loads(response.content)["document"]["totals"]["netGbp"] == \
        "26.50"
    assert reader.get(f"/statements/{sid}")[0] == 200  # the back office reads it too
    assert zeta.get(f"/statements/{sid}")[0] == 404  # another FSP's
    assert zeta_office.get(f"/statements/{sid}")[0] == 404
    assert zeta_office.post(f"/statements/{sid}/accept")[0] == 404
    assert operator.post(f"/statements/{sid}/accept")[0] == 403  # the FSP answers
    # ... through its commercial back office, not a site's gateway nor a read-only one.
    assert acme.post(f"/statements/{sid}/accept")[0] == 403
    assert acme.post(f"/statements/{sid}/dispute", {"reason": "x"})[0] == 403
    assert reader.post(f"/statements/{sid}/accept")[0] == 403
    assert office.post(f"/statements/{sid}/dispute", {"reason": "x", "lines": [
        {"line": 99, "reason": "no such line"}]})[0] == 400
    status, disputed = office.post(f"/statements/{sid}/dispute", {
        "reason": "our meter shows more", "lines": [{"line": 1, "reason": "actual was 100 kW"}]})
    assert status == 200 and disputed["status"] == "disputed"
    assert disputed["disputes"][0]["lines"] == [{"line": 1, "reason": "actual was 100 kW"}]
    assert office.post(f"/statements/{sid}/accept")[0] == 409
    assert operator.post(f"/statements/{sid}/finalise")[0] == 409  # dispute open
    assert office.post(f"/statements/{sid}/resolve", {"resolution": "x"})[0] == 403
    assert operator.post(f"/statements/{sid}/resolve", {"resolution": "meter checked"})[0] \
        == 200
    status, final = operator.post(f"/statements/{sid}/finalise")
    assert status == 200 and final["status"] == "final"


def test_an_accepted_statement_is_finalised(settled, gb):
    contract, _ = settled
    row = services.issue(statement_id=services.settle_month(contract=contract, month=MONTH).pk)
    acme = Api(fsp_office_token("ENWL", "acme", "commercial"))
    status, accepted = acme.post(f"/statements/{row.pk}/accept")
    assert status == 200 and accepted["status"] == "accepted"
    operator = Api(new_actor("operator", "bl", "3.1.0").token)
    assert operator.post(f"/statements/{row.pk}/finalise")[1]["status"] == "final"
    assert operator.post(f"/statements/{row.pk}/issue")[0] == 409


def test_exports_are_the_canonical_json_and_csv(settled, gb):
    contract, _ = settled
    row = services.issue(statement_id=services.settle_month(contract=contract, month=MONTH).pk)
    acme = Api(gb.acme.token)
    status, response = acme.get(f"/statements/{row.pk}/export", {"format": "json"})
    assert status == 200 and hashlib.sha256(response.content).hexdigest() == row.sha256
    status, response = acme.get(f"/statements/{row.pk}/export", {"format": "csv"})
    assert status == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [r["netGbp"] for r in rows] == ["11.50", "15.00", "26.50"]
    assert acme.get(f"/statements/{row.pk}/export", {"format": "pdf"})[0] == 400


def test_bad_requests_are_problems_and_change_nothing(settled):
    operator = Api(new_actor("operator", "bl", "3.1.0").token)
    assert operator.post("/statements", {"operator": "ENWL", "contract": "C-DYN",
                                         "month": "2026-13"})[0] == 400
    assert operator.post("/statements", {"operator": "ENWL", "contract": "NOPE",
                                         "month": "2026-09"})[0] == 404
    assert operator.get("/statements/abc")[0] == 404
    assert operator.get("/statements", {"status": "paid"})[0] == 400
    assert not Statement.objects.exists()


# --- tasks and command ------------------------------------------------------------------------

def test_due_dispatches_are_settled_by_the_task(settled, monkeypatch):
    _, dispatch = settled
    results = tasks.settle_due_dispatches.apply().get()
    assert results == [{"dispatch": "SET-1", "status": "settled", "netGbp": "26.50"}]
    assert DispatchSettlement.objects.get(dispatch=dispatch).status == "settled"
    assert tasks.settle_due_dispatches.apply().get() == []  # nothing new


def test_monthly_issue_and_nightly_recompute(settled):
    results = tasks.issue_monthly_statements.apply(args=["2026-09"]).get()
    mine = [r for r in results if r["contract"] == "C-DYN"]
    assert mine[0]["status"] == "issued"
    readings("hp1", T0, [50])
    recomputed = tasks.recompute_drafts.apply().get()
    assert any(r["version"] == 2 and r["status"] == "draft" for r in recomputed)


def test_the_settle_command_prints_the_statements(settled):
    out = StringIO()
    call_command("settle", "--month", "2026-09", "--contract", "C-DYN", stdout=out)
    (printed,) = json.loads(out.getvalue())
    assert printed["document"]["totals"]["netGbp"] == "26.50" and printed["status"] == "draft"


# --- units, setpoints and days ----------------------------------------------------------------

def test_an_export_unit_turned_to_zero_is_measured_against_its_absolute_setpoint(gb, issue):
    from dispatch import programs

    contract = Contract.objects.get(identifier="C-MW")  # MW_DISPATCH, bat1 exports 500 kW
    Contract.objects.filter(pk=contract.pk).update(baseline_method="meter-before-2",
                                                   utilisation_price=Decimal(100))
    issue("acme/bat1", reference="MW-1", product=programs.find_product("MW_DISPATCH"),
          service_start=T0, service_end=T0 + timedelta(hours=1),
          timings=[timing(T0, 0, "absolute")], now=T0 - timedelta(minutes=5))
    readings("bat1", T0 - timedelta(hours=1), [-200, -200, -50, 0])  # exporting 400 kW
    row = services.settle_month(contract=Contract.objects.get(pk=contract.pk), month=MONTH)
    first, second = utilisation(row.document)
    # export is negative: moving from -400 kW toward the 0 kW setpoint is "up"
    assert (first["direction"], first["baselineKw"], first["orderedKw"], first["actualKw"],
            first["deliveredKw"], first["deficiencyKw"]) == ("up", "-400", "400", "-100", "300",
                                                             "100")
    assert (second["deliveredKw"], second["deficiencyKw"]) == ("400", "0")
    assert row.document["totals"]["netGbp"] == "35.00"  # 0.15 + 0.20 MWh x 100 GBP


def test_a_dispatch_over_midnight_takes_each_days_baseline_from_its_own_history(gb, issue):
    contract = Contract.objects.get(identifier="C-DYN")
    Contract.objects.filter(pk=contract.pk).update(baseline_method="high-3-of-5")
    start = datetime(2026, 9, 16, 22, 30, tzinfo=UTC)  # 23:30 in London, until 00:30
    issue("acme/hp1", reference="NIGHT-1", service_start=start,
          service_end=start + timedelta(hours=1), timings=[timing(start, 50)],
          now=start - timedelta(hours=1))
    unit = DispatchUnit.objects.get(reference="hp1")
    intake = ReportIntake.objects.create(site=unit.site, kind="metering", report_id="h",
                                         client_id="h", received_at=T0 + timedelta(days=2))
    history = datetime(2026, 9, 7, 23, 0, tzinfo=UTC)  # 8 September, 00:00 London
    rows = []
    for step in range(10 * 48):  # 8-17 September, every half hour
        begin = history + timedelta(minutes=30 * step)
        kwh = Decimal(60) if begin.day in (9, 10) else Decimal(100)  # two low days
        if start <= begin < start + timedelta(hours=1):
            kwh = Decimal(75)  # 150 kW while dispatched
        rows.append(MeterReading(unit=unit, reading_type="USAGE", start=begin,
                                 end=begin + timedelta(minutes=30), value=kwh,
                                 received_at=intake.received_at, intake=intake))
    MeterReading.objects.bulk_create(rows)
    row = services.settle_month(contract=Contract.objects.get(pk=contract.pk), month=MONTH)
    first, second = utilisation(row.document)
    assert (first["day"], first["period"], second["day"], second["period"]) == (
        "2026-09-16", 48, "2026-09-17", 1)
    # the three highest of the last five working days are the 200 kW ones
    assert (first["baselineKw"], first["deliveredKw"], second["deliveredKw"]) == (
        "200", "50", "50")
    used = {record["dispatchRef"]: record for record in row.document["baselines"]}
    assert used["NIGHT-1"]["daysUsed"][:2] == ["2026-09-15", "2026-09-14"]


def test_a_run_that_dies_midway_leaves_whole_statements_and_a_rerun_completes_it(
        settled, monkeypatch):
    real = services.settle_month
    calls = []

    def dies_on_the_second_contract(**kwargs):
        calls.append(kwargs["contract"].identifier)
        if len(calls) == 2:
            raise RuntimeError("worker killed")
        return real(**kwargs)

    monkeypatch.setattr(services, "settle_month", dies_on_the_second_contract)
    with pytest.raises(RuntimeError):
        tasks.issue_monthly_statements.apply(args=["2026-09"]).get()
    first = Statement.objects.get()  # the first contract's statement, whole and issued
    assert first.contract.identifier == calls[0] and first.status == "issued"
    monkeypatch.setattr(services, "settle_month", real)
    results = tasks.issue_monthly_statements.apply(args=["2026-09"]).get()
    assert {r["contract"] for r in results} == set(
        Contract.objects.values_list("identifier", flat=True))
    first.refresh_from_db()
    assert first.version == 1 and first.status == "issued"  # not recomputed into a new one
    assert Statement.objects.filter(contract=first.contract).count() == 1
