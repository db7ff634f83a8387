"""Operator console lists and pages: every list is filtered (django-filter) and paged with
no cap, conformance dispatches can be hidden, codes read as words, one timestamp format,
and errors answer with the console's styled pages (the API keeps its problems)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from django.test import Client, RequestFactory

from console.views import common
from dispatch.models import AuditEntry, HeartbeatRecord
from tests.fixtures.console import totp_code
from webserver import handlers

pytestmark = pytest.mark.django_db


def sequences(page: str) -> list[int]:
    return [int(n) for n in re.findall(r'<tr class="audit-entry">\s*<th scope="row">(\d+)<',
                                       page)]


def test_the_audit_log_pages_through_every_entry(console, issue, monkeypatch):
    monkeypatch.setattr(common, "PAGE_SIZE", 2)
    for n in range(5):
        issue(reference=f"PG-{n}")
    client = console("viewer")
    seen, number = [], 1
    while True:
        page = client.get(f"/console/audit?kind=revision_issued&page={number}").content.decode()
        rows = sequences(page)
        seen += rows
        if 'rel="next"' not in page:
            break
        assert f"?kind=revision_issued&amp;page={number + 1}" in page  # filters kept
        number += 1
    assert seen == sorted(AuditEntry.objects.values_list("sequence", flat=True),
                          reverse=True)
    assert number == 3 and "Entries 5–5 of 5" in page
    # a page number past the end, or not a number, shows the nearest page (never a 500)
    assert sequences(client.get("/console/audit?page=99").content.decode()) == seen[-1:]
    assert sequences(client.get("/console/audit?page=x").content.decode()) == seen[:2]


def test_bad_filters_show_a_message_and_nothing_else(console, issue):
    issue(reference="BAD-1")
    client = console("viewer")
    response = client.get("/console/audit?since=yesterday")
    assert response.status_code == 400
    assert b"check the filters" in response.content and not sequences(
        response.content.decode())
    assert client.get("/console/dispatches?status=flying").status_code == 400
    assert client.get("/console/registry?comms=sleepy").status_code == 400


def test_dispatches_filter_and_conformance_dispatches_can_be_hidden(console, issue):
    issue(reference="OPS-1")
    issue(reference="CONF-1", issued_by="conformance")
    client = console("viewer")

    def listed(query: str) -> set[str]:
        page = client.get(f"/console/dispatches?{query}").content.decode()
        return set(re.findall(r'href="/console/dispatches/ENWL/([^"/]+)"', page))

    assert listed("") == {"OPS-1", "CONF-1"}
    assert listed("conformance=hide") == {"OPS-1"}
    assert listed("conformance=only") == {"CONF-1"}
    assert listed("status=stop") == set()
    assert listed("status=run&fsp=acme&unit=bat1&product=dynamic") == {"OPS-1", "CONF-1"}
    assert listed("fsp=nobody") == set()
    assert listed("active_until=2000-01-01 00:00") == set()
    page = client.get("/console/dispatches").content.decode()
    assert "Conformance sandbox dispatches" in page


def test_the_registry_filters_every_list(console, gb):
    client = console("viewer")
    everything = client.get("/console/registry").content.decode()
    assert "ENWL/acme/bat1" in everything and "zeta" in everything
    narrowed = client.get("/console/registry?fsp=acme").content.decode()
    units = narrowed[narrowed.index('id="units"'):narrowed.index('id="contracts"')]
    assert "ENWL/acme/bat1" in units and "/zeta/" not in units
    none = client.get("/console/registry?comms=comms_lost").content.decode()
    sites = none[none.index('id="sites"'):none.index('id="units"')]
    assert "None." in sites


def test_codes_read_as_words_and_times_in_one_format(console, issue):
    dispatch = issue(reference="LBL-1")
    site = dispatch.unit.site
    HeartbeatRecord.objects.create(site=site, received_at=datetime(2026, 11, 29, 14, 30, 5,
                                                                   tzinfo=UTC),
                                   report_id="hb", client_id="x",
                                   units={"bat1": {}, "bat2": {"operatingState": "NORMAL",
                                                               "availableKw": "120"}})
    client = console("viewer")
    timeline = client.get("/console/dispatches/ENWL/LBL-1/timeline").content.decode()
    assert "2026-11-29 14:30:05 UTC · bat1: no state reported" in timeline
    assert "bat2: operating state NORMAL, 120 kW available" in timeline
    assert "{}" not in timeline and "{&#x27;" not in timeline
    assert " kW delta from " in timeline and " KW " not in timeline
    assert re.search(r"Issued \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC by test", timeline)
    assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d", timeline)  # no raw RFC 3339
    audit = client.get("/console/audit").content.decode()
    assert "revision issued" in audit and "revision_issued" not in audit.split("<table")[1]
    dashboard = client.get("/console/fragments/dashboard").content.decode()
    assert "comms_lost</span>" not in dashboard and "comms lost" in dashboard


def test_console_errors_are_styled_pages_and_api_errors_stay_problems(console, gb):
    client = console("viewer")
    missing = client.get("/console/no-such-page")
    assert missing.status_code == 404
    assert missing["Content-Type"].startswith("text/html")
    page = missing.content.decode()
    assert "console.css" in page and "<h1>Not found" in page
    assert "Log out" in page and 'aria-label="Main"' in page  # signed in: the navigation
    anonymous = Client().get("/console/no-such-page")
    assert anonymous.status_code == 404 and b"<h1>Not found" in anonymous.content
    assert b'aria-label="Main"' not in anonymous.content
    api = Client().get("/dispatch/api/v1/no-such-thing")
    assert api.status_code == 404 and api["Content-Type"] == "application/json"
    failed = handlers.server_error(RequestFactory().get("/console/statements/1"))
    assert failed.status_code == 500 and b"Server error" in failed.content
    assert b"console.css" in failed.content
    # Called directly, without the media-type middleware that negotiates the final type.
    assert handlers.server_error(RequestFactory().get("/openadr3/3.1.0/events")) \
        ["Content-Type"] == "application/problem+json"


def test_a_form_without_its_csrf_token_gets_the_styled_403(console_staff):
    browser = Client(enforce_csrf_checks=True)
    staff = console_staff("dispatcher")
    page = browser.get("/console/login").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    assert browser.post("/console/login", {
        "username": staff.username, "password": staff.password,
        "otp_token": totp_code(staff.device), "csrfmiddlewaretoken": token}).status_code == 302
    refused = browser.post("/console/dispatches/new", {"step": "check"})
    assert refused.status_code == 403
    assert b"Not allowed" in refused.content and b"console.css" in refused.content


def test_the_dashboard_lists_sites_needing_attention_first_and_links_the_rest(
        console, gb, monkeypatch):
    from console import selectors
    from dispatch.models import FspSite

    monkeypatch.setattr(selectors, "DASHBOARD_SITES", 1)
    FspSite.objects.filter(name="north").update(comms_state="online")
    FspSite.objects.filter(fsp__identifier="zeta").update(comms_state="comms_lost")
    page = console("viewer").get("/console/fragments/dashboard").content.decode()
    sites = page[page.index('id="h-sites"'):page.index('id="h-certs"')]
    assert "The 1 of 2 sites needing attention first" in sites
    assert "/zeta/" in sites and "ENWL/acme/north" not in sites
    assert 'href="/console/registry?comms=comms_lost#sites"' in sites
