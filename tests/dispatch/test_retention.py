"""Retention: heartbeats, security log lines and raw meter readings past their period are
purged by the scheduled task; what a kept statement needs stays, as does the audit chain."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.test import override_settings

from dispatch import retention, tasks
from dispatch.models import AuditEntry, DispatchRevision, HeartbeatRecord, MeterReading
from settlement import services as settlement_services
from tests.settlement.test_settlement_statements import MONTH, T0, readings
from tests.settlement.test_settlement_statements import settled as settled  # noqa: F401 (fixture)
from vtn.append_only import AppendOnlyError
from vtn.models import Report, SecurityEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def heartbeat(gb, django_capture_on_commit_callbacks):
    """``heartbeat()``: acme's VEN posts a real heartbeat report (recorded on commit)."""
    def do() -> None:
        with django_capture_on_commit_callbacks(execute=True):
            post(gb)

    return do


def post(gb) -> None:
    event_id = gb.acme.onboarding["heartbeat_event_id"]
    event = gb.acme.api("3.1.0").get(f"/events/{event_id}")
    reply = gb.acme.api("3.1.0").post("/reports", {
        "programID": event.json["programID"], "eventID": event_id, "clientName": "agent",
        "reportName": "heartbeat", "resources": [
            {"resourceName": "bat1", "intervals": [{"id": 0, "payloads": []}]}]})
    assert reply.status == 201, reply.json


def test_heartbeats_and_their_reports_go_after_their_period(gb, heartbeat):
    heartbeat()
    (record,) = HeartbeatRecord.objects.all()
    policy = retention.Policy(heartbeat_days=90, security_log_days=0, meter_reading_days=0)
    now = datetime.now(UTC)
    assert retention.purge(now=now + timedelta(days=89), policy=policy)["heartbeats"] == 0
    assert Report.objects.filter(pk=record.report_id).exists()
    done = retention.purge(now=now + timedelta(days=91), policy=policy)
    assert (done["heartbeats"], done["heartbeat_reports"]) == (1, 1)
    assert not HeartbeatRecord.objects.exists()
    assert not Report.objects.filter(pk=record.report_id).exists()
    assert retention.purge(now=now + timedelta(days=1000),
                           policy=retention.Policy(0, 0, 0))["heartbeats"] == 0


def test_security_log_lines_go_only_through_retention(gb):
    old = SecurityEvent.objects.create(kind="auth_failed", client_id="x",
                                       time=datetime.now(UTC) - timedelta(days=800))
    kept = SecurityEvent.objects.count() - 1
    with pytest.raises(AppendOnlyError):
        SecurityEvent.objects.filter(pk=old.pk).delete()
    done = retention.purge(policy=retention.Policy(0, 730, 0))
    assert done["security_events"] == 1
    assert not SecurityEvent.objects.filter(pk=old.pk).exists()
    assert SecurityEvent.objects.count() == kept > 0


def test_readings_a_statement_needs_are_kept_and_the_audit_chain_is_never_purged(settled):
    contract, dispatch = settled
    readings("z1", T0 - timedelta(hours=1), [10, 10])  # zeta: no statement for them
    settlement_services.settle_month(contract=contract, month=MONTH)
    hp1 = MeterReading.objects.filter(unit__reference="hp1").count()
    revisions, audit = DispatchRevision.objects.count(), AuditEntry.objects.count()
    done = retention.purge(now=T0 + timedelta(days=3000),
                           policy=retention.Policy(1, 1, 2557))
    assert done["meter_readings"] == 2
    assert not MeterReading.objects.filter(unit__reference="z1").exists()
    assert MeterReading.objects.filter(unit__reference="hp1").count() == hp1 == 4
    assert (DispatchRevision.objects.count(), AuditEntry.objects.count()) == (revisions, audit)
    # the statement still computes to the same document
    again = settlement_services.settle_month(contract=contract, month=MONTH)
    assert again.version == 1


@override_settings(RETENTION_HEARTBEAT_DAYS=0, RETENTION_SECURITY_LOG_DAYS=1,
                   RETENTION_METER_READING_DAYS=0)
def test_the_task_reads_the_settings_and_is_scheduled_daily(gb, heartbeat):
    from django_celery_beat.models import PeriodicTask

    SecurityEvent.objects.create(kind="auth_failed", client_id="x",
                                 time=datetime.now(UTC) - timedelta(days=2))
    heartbeat()
    done = tasks.purge_retained.apply().get()
    assert done == {"heartbeats": 0, "heartbeat_reports": 0, "security_events": 1,
                    "meter_readings": 0}
    assert HeartbeatRecord.objects.count() == 1
    scheduled = PeriodicTask.objects.get(task=tasks.PURGE_RETAINED)
    assert scheduled.enabled and (scheduled.crontab.hour, scheduled.crontab.minute) == (
        "3", "30")
