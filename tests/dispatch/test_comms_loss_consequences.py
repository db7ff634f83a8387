"""What follows when an FSP site goes silent: an alert to the operator's own webhook (a
real HTTPS receiver on loopback) and in the console, an entry in the audit chain, a
dispatch that needs an explicit confirmation (API and console), and availability that
the contract does not pay while the site is comms lost (unless it says otherwise)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from dispatch import alerts, tasks
from dispatch.models import (
    AuditEntry,
    AvailabilityDeclaration,
    CommsState,
    CommsTransition,
    Contract,
    DispatchUnit,
    FspSite,
    OperatorAlert,
    ReportIntake,
)
from tests.dispatch.test_dispatch_api import Api, body
from tests.dispatch.test_dispatch_comms import Clock, poll
from tests.fixtures.api import new_actor
from tests.fixtures.console import create_staff, log_in
from tests.fixtures.dispatch import hour
from tests.fixtures.receiver import WebhookReceiver

pytestmark = pytest.mark.django_db


@pytest.fixture
def clock(monkeypatch) -> Clock:
    return Clock(monkeypatch)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A development CA whose server certificate names 127.0.0.1."""
    directory = tmp_path_factory.mktemp("pki")
    call_command("pki", "init", "--dir", str(directory), stdout=StringIO())
    return directory


@pytest.fixture
def receiver(pki, settings):
    """A real HTTPS receiver on loopback with the development CA's server certificate."""
    settings.VTN_CALLBACK_ALLOW_PRIVATE = True
    settings.VTN_WEBHOOK_CA_BUNDLE = str(pki / "ca.pem")
    settings.VTN_WEBHOOK_RETRY_DELAYS = [0, 0]
    server = WebhookReceiver(pki / "server.pem", pki / "server.key").start()
    yield server
    server.stop()


def lose_north(gb, clock) -> None:
    poll(gb.acme)
    clock.at(91)
    tasks.check_comms.apply().get()
    assert FspSite.objects.get(name="north").comms_state == CommsState.COMMS_LOST


def test_comms_loss_is_pushed_to_the_operators_webhook_audited_and_shown(
        gb, clock, receiver, client):
    out = StringIO()
    call_command("operator_alerts", "set-webhook", "--operator", "ENWL", "--url",
                 receiver.url("/ok/enwl-alerts"), "--bearer-token", "s3cret", stdout=out)
    assert json.loads(out.getvalue())["enabled"] is True
    lose_north(gb, clock)

    posted = receiver.wait_for("/ok/enwl-alerts")
    assert posted[0].body["kind"] == "comms_lost"
    assert posted[0].body["site"] == "ENWL/acme/north"
    assert posted[0].body["units"] == ["bat1", "hp1"]
    assert posted[0].headers["Authorization"] == "Bearer s3cret"
    assert posted[0].headers["X-OpenADR-Notification-Id"]
    alert = OperatorAlert.objects.get(kind=OperatorAlert.Kind.COMMS_LOST)
    assert alert.delivery == OperatorAlert.Delivery.DELIVERED and alert.attempts == 1

    entry = AuditEntry.objects.get(kind=AuditEntry.Kind.COMMS_CHANGED)
    assert entry.operator_code == "ENWL" and entry.subject["site"] == "north"
    assert entry.payload["to"] == CommsState.COMMS_LOST

    log_in(client, create_staff("enwl-viewer", "viewer", operators=["ENWL"]))
    page = client.get("/console/").content.decode()
    assert "Alerts to your systems" in page and "ENWL/acme/north" in page
    assert "delivered" in page

    clock.at(130)
    poll(gb.acme)  # heard from again: restored, alerted, audited
    alerts.deliver_due()
    restored = receiver.wait_for("/ok/enwl-alerts", count=2)[1]
    assert restored.body["kind"] == "comms_restored"
    assert AuditEntry.objects.filter(kind=AuditEntry.Kind.COMMS_CHANGED).count() == 2


def test_an_undeliverable_alert_is_retried_then_marked_failed(gb, clock, receiver,
                                                               client):
    call_command("operator_alerts", "set-webhook", "--operator", "ENWL", "--url",
                 receiver.url("/fail/enwl"), stdout=StringIO())
    lose_north(gb, clock)
    alerts.deliver_due()
    alerts.deliver_due()
    alert = OperatorAlert.objects.get(kind=OperatorAlert.Kind.COMMS_LOST)
    assert alert.delivery == OperatorAlert.Delivery.FAILED
    assert alert.attempts == 3 and alert.last_error == "HTTP 500"
    assert len(receiver.posts("/fail/enwl")) == 3
    log_in(client, create_staff("enwl-viewer", "viewer", operators=["ENWL"]))
    assert "HTTP 500" in client.get("/console/").content.decode()


def test_without_a_webhook_the_alert_is_shown_in_the_console_only(gb, clock):
    lose_north(gb, clock)
    alert = OperatorAlert.objects.get()
    assert alert.delivery == OperatorAlert.Delivery.NO_WEBHOOK


def test_a_webhook_that_the_callback_policy_refuses_is_not_configured(gb):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="https"):
        call_command("operator_alerts", "set-webhook", "--operator", "ENWL", "--url",
                     "http://alerts.example/x", stdout=StringIO())


def test_a_dispatch_to_a_site_in_comms_loss_needs_confirmation(gb, clock):
    lose_north(gb, clock)
    operator = Api(new_actor("operator", "bl", "3.1.0").token)
    status, refused, _ = operator.post("/dispatches", body())
    assert status == 409, refused
    assert "ENWL/acme/north" in refused["detail"] and "confirmCommsLoss" in refused["detail"]
    assert not AuditEntry.objects.filter(kind=AuditEntry.Kind.REVISION_ISSUED).exists()

    status, issued, _ = operator.post("/dispatches", body(confirmCommsLoss=True))
    assert status == 201, issued
    status, export, _ = operator.get("/dispatches/ENWL/API-1/audit-export")
    kinds = [e["kind"] for e in export["entries"]]
    assert kinds == ["revision_issued", "comms_loss_confirmed"]
    assert export["entries"][1]["payload"]["sitesInCommsLoss"] == ["ENWL/acme/north"]
    alert = OperatorAlert.objects.get(kind=OperatorAlert.Kind.DISPATCH_IN_COMMS_LOSS)
    assert alert.body["dispatchRef"] == "API-1"

    # Online sites need no confirmation.
    start = body()["serviceStart"]
    status, made, _ = operator.post("/dispatches", body(
        unit="zeta/z1", reference="API-2",
        serviceTimings=[{"setpointTime": start, "volume": 5}]))
    assert status == 201, made


def test_the_console_asks_for_the_comms_loss_checkbox(gb, clock, client):
    lose_north(gb, clock)
    log_in(client, create_staff("enwl-dispatcher", "dispatcher", operators=["ENWL"]))
    unit = DispatchUnit.objects.get(reference="hp1")
    start = hour(2)
    form = {"unit": unit.pk, "product": "DYNAMIC",
            "start": start.strftime("%Y-%m-%dT%H:%M"),
            "end": (start + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"), "kw": "20",
            "setpoint_type": "delta", "status": "run", "step": "check"}
    checked = client.post("/console/dispatches/new", form)
    assert checked.status_code == 400
    assert "comms loss" in checked.content.decode()
    confirmed_page = client.post("/console/dispatches/new", form | {"confirm_comms_loss": "on"})
    assert confirmed_page.status_code == 200, confirmed_page.content.decode()[:3000]
    reference = confirmed_page.context["reference"]
    done = client.post("/console/dispatches/new", form | {
        "confirm_comms_loss": "on", "step": "confirm", "reference": reference})
    assert done.status_code == 302
    assert AuditEntry.objects.filter(kind=AuditEntry.Kind.COMMS_LOSS_CONFIRMED,
                                     dispatch_ref=reference).exists()


# --- availability in comms loss ---------------------------------------------------------------

DAY = datetime(2026, 9, 10, tzinfo=UTC)


def _availability_statement(comms_loss: str):
    from settlement import services

    contract = Contract.objects.get(identifier="C-DYN")
    contract.availability_price = Decimal("10")
    contract.comms_loss_availability = comms_loss
    contract.save()
    unit = DispatchUnit.objects.get(reference="hp1")
    intake = ReportIntake.objects.create(site=unit.site, kind="availability", report_id="a",
                                         client_id="test", received_at=DAY)
    AvailabilityDeclaration.objects.create(
        unit=unit, start=DAY + timedelta(hours=8), end=DAY + timedelta(hours=12),
        available_kw=Decimal(100), declared_at=DAY, intake=intake)
    site = unit.site
    for at, before, after in ((DAY + timedelta(hours=9), "online", "comms_lost"),
                              (DAY + timedelta(hours=10, minutes=30), "comms_lost", "online")):
        CommsTransition.objects.create(site=site, from_state=before, to_state=after, at=at)
    return services.settle_month(contract=contract, month=services.Month.parse("2026-09"))


def _availability_hours(row) -> Decimal:
    return sum((Decimal(line["hours"]) for line in row.document["lines"]
                if line["kind"] == "availability" and line["unit"] == "hp1"), Decimal(0))


def test_availability_is_not_paid_while_the_site_is_comms_lost_by_default(gb):
    row = _availability_statement("unavailable")
    assert _availability_hours(row) == Decimal("2.5")  # 4 h declared less 1.5 h lost
    assert row.document["terms"]["commsLossAvailability"] == "unavailable"
    lost = ("2026-09-10T09:00:00Z", "2026-09-10T10:30:00Z")
    assert {(c["unit"], c["start"], c["end"]) for c in row.document["inputs"]["commsLost"]} \
        == {("bat1", *lost), ("hp1", *lost)}


def test_a_contract_may_pay_availability_as_declared_during_comms_loss(gb):
    row = _availability_statement("as_declared")
    assert _availability_hours(row) == Decimal("4")
