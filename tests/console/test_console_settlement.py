"""Operator console settlement: statements list with filters, a statement with its lines,
totals and a chart per dispatch, and the lifecycle actions (settlement officer only)."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest

from settlement import services
from settlement.models import Statement
from tests.settlement.test_settlement_statements import (  # noqa: F401  (settled: a fixture)
    MONTH,
    T0,
    readings,
    settled,
)


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
    # The text alternative gives times in the console's one format, never raw RFC 3339.
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC: baseline 200 kW", svg)
    assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d", svg)
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


# --- the statement page for every kind of statement (built by the settlement services) ----

def test_a_statement_with_a_held_line_shows_the_line_and_why(console, settled):  # noqa: F811
    contract, _ = settled
    readings("hp1", T0 + timedelta(minutes=30), [None])  # one period of meter data missing
    row = services.settle_month(contract=contract, month=MONTH)
    assert row.held_lines == 1
    response = console("viewer").get(f"/console/statements/{row.pk}")
    assert response.status_code == 200
    page = response.content.decode()
    assert "1 held line" in page
    assert 'class="line-held"' in page
    assert "missing baseline or metered data" in page
    assert "missing: 2026-09-16 17:30:00 UTC" in page
    assert "Dispatch SET-1" in page and "<svg" not in page  # held: no chart yet
    assert "Held lines" in page and "heldLines" not in page


def test_a_statement_with_money_shows_its_figures_with_labels(console, statement):
    page = console("viewer").get(f"/console/statements/{statement.pk}").content.decode()
    lines = page[page.index('id="h-lines"'):]
    assert lines.count('class="line-utilisation"') == 2
    assert "2026-09-16 17:00:00 UTC" in lines and "11.50" in lines and "15.00" in lines
    totals = page[page.index('id="h-totals"'):page.index('id="h-charts"')]
    assert "Net (GBP)" in totals and "26.50" in totals
    assert "netGbp" not in totals and "Utilisation (GBP)" in totals


def test_a_disputed_statement_shows_the_dispute_and_offers_a_resolution(console, statement):
    services.issue(statement_id=statement.pk)
    services.dispute(statement_id=statement.pk, client_id="fsp", reason="meter was replaced",
                     lines=[{"line": 1, "reason": "reading too low"}])
    for role, offered in (("viewer", False), ("settlement officer", True)):
        response = console(role).get(f"/console/statements/{statement.pk}")
        assert response.status_code == 200
        page = response.content.decode()
        assert "disputed" in page and "meter was replaced" in page
        assert "line 1: reading too low" in page and "<strong>open</strong>" in page
        assert ("Resolve the disputes" in page) is offered


def test_a_statement_that_does_not_exist_is_a_styled_404(console, gb):
    response = console("viewer").get("/console/statements/999999")
    assert response.status_code == 404
    assert b"There is no statement 999999" in response.content
