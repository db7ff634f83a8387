"""Incoming reports are classified once, by the event they are on, and recorded by the
one handler of their kind."""

from __future__ import annotations

import pytest

from dispatch import report_routing
from dispatch.models import HeartbeatRecord, ReportIntake
from dispatch.report_routing import ReportKind
from vtn.models import Event, Program, Report


def report_on(event: Event, client_id: str = "someone") -> Report:
    return Report(event=event, program=event.program, client_id=client_id,
                  client_name="agent", resources=[])


@pytest.mark.parametrize(("key", "kind"), [
    ("heartbeat_event_id", ReportKind.HEARTBEAT),
    ("availability_event_id", ReportKind.AVAILABILITY),
    ("metering_event_id", ReportKind.METERING),
])
def test_a_report_on_a_standing_event_is_of_that_events_kind(gb, key, kind):
    event = Event.objects.get(pk=gb.acme.onboarding[key])
    assert report_routing.classify(report_on(event)) == kind


def test_a_report_on_a_dispatchs_event_is_an_acknowledgement(issue):
    dispatch = issue()
    assert report_routing.classify(report_on(dispatch.event)) == ReportKind.ACKNOWLEDGEMENT


def test_a_report_on_any_other_event_is_left_alone(gb):
    program = Program.objects.create(program_name="someone-elses")
    event = Event.objects.create(program=program, event_name="other")
    report = report_on(event)
    assert report_routing.classify(report) is None
    assert report_routing.route(report) == (None, None)


def test_each_kind_reaches_only_its_own_handler(gb):
    site_client = gb.acme.onboarding["client_id"]
    heartbeat = Event.objects.get(pk=gb.acme.onboarding["heartbeat_event_id"])
    report = report_on(heartbeat, client_id=site_client)
    report.save()
    kind, record = report_routing.route(report)
    assert kind == ReportKind.HEARTBEAT and isinstance(record, HeartbeatRecord)
    assert not ReportIntake.objects.exists()  # no declaration or reading handler ran
