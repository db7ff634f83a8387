"""Operator console settlement: statements list with filters, a statement with its lines,
totals and a chart per dispatch, and the lifecycle actions (settlement officer only)."""

from __future__ import annotations

import json

import pytest

from settlement import services
from settlement.models import Statement
from tests.test_settlement_statements import MONTH, settled  # noqa: F401  (fixture)


@pytest.fixture
def statement(settled):  # noqa: F811
    contract, _ = settled
    return services.settle_month(contract=contract, month=MONTH)


def test_the_statement_page_shows_lines_totals_and_a_chart(console, statement):
    response = console("viewer").get(f"/console/statements/{statement.pk}")
    assert response.status_code == 200
    page = response.content.decode()
    assert page.count("<svg") == 1
    svg = page[page.index("<svg"):page.index("</svg>")]
    assert 'role="img"' in svg
    assert "<title id=" in svg and "Dispatch SET-1" in svg
    assert "<desc id=" in svg and "baseline 200 kW" in svg
    for legend in ("Baseline", "Ordered target", "Actual", "Delivered (kW of flexibility)"):
        assert legend in svg
    assert "Power (kW, + import)" in svg and "Settlement period start (UTC)" in svg
    assert svg.count("<polyline") == 3
    assert "26.50" in page  # net total
    assert "Issue to the FSP" not in page  # a viewer is not offered actions


def test_the_list_filters_by_month_fsp_and_status(console, statement):
    client = console("viewer")
    assert f"/console/statements/{statement.pk}" in client.get(
        "/console/statements?month=2026-09&fsp=acme&status=draft").content.decode()
    for query in ("month=2026-10", "fsp=zeta", "status=issued"):
        assert f"/console/statements/{statement.pk}\"" not in client.get(
            f"/console/statements?{query}").content.decode(), query


def test_a_settlement_officer_computes_a_month(console, settled):  # noqa: F811
    contract, _ = settled
    response = console("settlement officer").post("/console/statements/compute", {
        "contract": contract.identifier, "operator": "ENWL", "month": "2026-09"})
    assert response.status_code == 302
    row = Statement.objects.get()
    assert response["Location"] == f"/console/statements/{row.pk}"
    assert row.document["totals"]["netGbp"] == "26.50"


def test_compute_shows_the_services_error(console, gb):
    response = console("settlement officer").post("/console/statements/compute", {
        "contract": "C-NONE", "operator": "", "month": "2026-09"})
    assert response.status_code == 400
    assert b"no contract" in response.content


def test_issue_resolve_and_finalise(console, statement):
    client = console("settlement officer")
    base = f"/console/statements/{statement.pk}"
    assert client.post(f"{base}/issue").status_code == 302
    statement.refresh_from_db()
    assert statement.status == "issued"
    services.dispute(statement_id=statement.pk, client_id="fsp", reason="too low", lines=[])
    assert b"Resolve the disputes" in client.get(base).content
    assert client.post(f"{base}/resolve", {"resolution": "meter data confirmed"}).status_code \
        == 302
    assert client.post(f"{base}/finalise").status_code == 302
    statement.refresh_from_db()
    assert statement.status == "final"
    assert statement.disputes.get().resolution == "meter data confirmed"


def test_an_action_that_does_not_fit_the_state_is_reported(console, statement):
    client = console("settlement officer")
    response = client.post(f"/console/statements/{statement.pk}/finalise", follow=True)
    assert b"it cannot be finalised" in response.content
    statement.refresh_from_db()
    assert statement.status == "draft"


def test_exports_download_the_apis_formats(console, statement):
    client = console("settlement officer")
    as_json = client.get(f"/console/statements/{statement.pk}/export.json")
    assert as_json.status_code == 200
    assert json.loads(as_json.content)["totals"]["netGbp"] == "26.50"
    assert "attachment" in as_json["Content-Disposition"]
    as_csv = client.get(f"/console/statements/{statement.pk}/export.csv")
    assert as_csv.content.startswith(b"line,kind,")
    assert client.get(f"/console/statements/{statement.pk}/export.pdf").status_code == 404


@pytest.mark.parametrize("role", ["viewer", "dispatcher"])
def test_only_settlement_officers_act_on_statements(console, statement, role):
    client = console(role)
    base = f"/console/statements/{statement.pk}"
    assert client.post(f"{base}/issue").status_code == 403
    assert client.post("/console/statements/compute", {
        "contract": "C-DYN", "operator": "ENWL", "month": "2026-09"}).status_code == 403
    assert client.get(f"{base}/export.csv").status_code == 403
    statement.refresh_from_db()
    assert statement.status == "draft" and Statement.objects.count() == 1
