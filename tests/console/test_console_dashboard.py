"""Operator console dashboard: sites online and comms-lost, dispatches running and coming
up, acknowledgements outstanding, certificates near expiry and alerts, in a fragment the
page refreshes every 10 seconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from console import charts
from dispatch.models import FspSite
from tests.fixtures.dispatch import hour, timing


def test_the_dashboard_page_refreshes_its_fragment(console, gb):
    page = console("viewer").get("/console/").content.decode()
    assert 'data-refresh-url="/console/fragments/dashboard"' in page
    assert 'data-refresh-seconds="10"' in page
    assert '<html lang="en-GB">' in page and "<nav" in page and '<main id="main"' in page
    assert "/static/console/console.js" in page and "/static/console/console.css" in page


def test_dispatches_running_and_coming_up_and_acknowledgements_owed(console, issue, gb):
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    running = issue("acme/hp1", product=None, contract="C-DYN", reference="RUN-1",
                    service_start=start, service_end=start + timedelta(hours=1),
                    timings=[timing(start, 50)], now=start - timedelta(hours=1))
    upcoming = issue(reference="NEXT-1", service_start=hour(3))
    fragment = console("viewer").get("/console/fragments/dashboard").content.decode()
    assert "<html" not in fragment
    running_section = fragment.split('id="h-running"')[1].split('id="h-upcoming"')[0]
    upcoming_section = fragment.split('id="h-upcoming"')[1].split('id="h-acks"')[0]
    acks_section = fragment.split('id="h-acks"')[1].split('id="h-sites"')[0]
    assert running.reference in running_section and upcoming.reference not in running_section
    assert upcoming.reference in upcoming_section
    assert running.reference in acks_section and "received, actioned" in acks_section


def test_sites_with_comms_lost_are_counted_and_alerted(console, gb):
    FspSite.objects.filter(name="north").update(comms_state="comms_lost")
    fragment = console("viewer").get("/console/fragments/dashboard").content.decode()
    alerts = fragment.split('id="h-alerts"')[1].split("</section>")[0]
    assert "comms lost" in alerts and "ENWL/acme/north" in alerts


def test_certificates_near_expiry_are_listed(console, gb, settings):
    from vtn.models import IssuedCertificate

    now = datetime.now(UTC)
    IssuedCertificate.objects.create(serial="abc1", sha256="a" * 64, kind="client",
                                     subject="CN=north,O=acme", not_before=now,
                                     not_after=now + timedelta(days=5))
    IssuedCertificate.objects.create(serial="abc2", sha256="b" * 64, kind="client",
                                     subject="CN=far,O=acme", not_before=now,
                                     not_after=now + timedelta(days=300))
    fragment = console("viewer").get("/console/fragments/dashboard").content.decode()
    certs = fragment.split('id="h-certs"')[1]
    assert "abc1" in certs and "abc2" not in certs


def test_the_vtns_own_outages_are_listed_as_such(console, gb):
    """A gap between the web tier's serving periods is shown as a VTN outage, the
    current one as ongoing; a silence shorter than three beats is not one."""
    from vtn.models import ServingPeriod

    now = datetime.now(UTC).replace(microsecond=0)
    ServingPeriod.objects.create(started=now - timedelta(hours=3),
                                 last_beat=now - timedelta(hours=2, minutes=30))
    ServingPeriod.objects.create(started=now - timedelta(hours=2), last_beat=now - timedelta(
        hours=1, minutes=59, seconds=50))
    ServingPeriod.objects.create(started=now - timedelta(hours=1, minutes=59, seconds=40),
                                 last_beat=now - timedelta(minutes=10))
    fragment = console("viewer").get("/console/fragments/dashboard").content.decode()
    outages = fragment.split('id="h-outages"')[1].split("</section>")[0]
    assert '<span class="count">2</span>' in outages, outages
    rows = outages.split("<tbody>")[1].split("</tbody>")[0].split("<tr>")[1:]
    assert "ongoing" in rows[0] and "10.0" in rows[0]  # since the last beat, newest first
    assert "30.0" in rows[1] and "ongoing" not in rows[1]
    assert (now - timedelta(hours=2, minutes=30)).strftime("%Y-%m-%d %H:%M:%S") in rows[1]


def test_the_chart_draws_the_target_in_the_orders_direction():
    down = {"baselineKw": "200", "orderedKw": "100", "direction": "down"}
    up = {"baselineKw": "-300", "orderedKw": "100", "direction": "up"}
    assert charts.target_kw(down) == 100 and charts.target_kw(up) == -200
    svg = charts.dispatch_chart("R-1", [
        {"periodStart": "2026-09-16T17:00:00Z", "actualKw": "120", "deliveredKw": "80"} | down])
    assert svg.startswith("<svg") and "<title" in svg and "<desc" in svg


def test_refused_and_invalid_acknowledgements_are_alerts(
        console, issue, gb, django_capture_on_commit_callbacks):
    from tests.dispatch.test_dispatch_acks import FspAgent

    agent = FspAgent(gb.acme)
    assert agent.register()[0] == 201
    refused = issue(reference="REF-1")
    mismatched = issue(reference="BAD-1")
    agent.report(refused, [agent.read_back(refused.revisions.get(), stage="REFUSED",
                                           reason="battery offline")],
                 capture=django_capture_on_commit_callbacks)
    agent.report(mismatched, [agent.read_back(mismatched.revisions.get(), status="STOP")],
                 capture=django_capture_on_commit_callbacks)
    fragment = console("viewer").get("/console/fragments/dashboard").content.decode()
    alerts = fragment.split('id="h-alerts"')[1].split("</section>")[0]
    assert "<strong>refused</strong>" in alerts and "battery offline" in alerts
    assert "acknowledgement read back mismatch" in alerts and "ENWL/BAD-1" in alerts
    outstanding = fragment.split('id="h-acks"')[1].split('id="h-sites"')[0]
    assert "BAD-1" in outstanding and "REF-1" not in outstanding


def test_the_forbidden_page_keeps_the_navigation(console, gb):
    response = console("viewer").get("/console/dispatches/new")
    assert response.status_code == 403
    page = response.content.decode()
    assert "<nav" in page and "(viewer)" in page and "Nothing was changed" in page
