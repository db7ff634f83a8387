"""Revisions: monotonic numbers, full immutable history, stop and emergency stop."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction

from dispatch import services
from dispatch.models import DispatchRevision, ImmutableError
from tests.fixtures.dispatch import timing
from vtn.api.problems import BadRequest, Conflict
from vtn.models import Event

pytestmark = pytest.mark.django_db


def test_each_change_is_a_new_revision_with_history(issue):
    dispatch = issue(status="pre-notify", urgency="advisory")
    services.revise_dispatch(dispatch=dispatch, status="run", urgency="warning")
    services.revise_dispatch(dispatch=dispatch, timings=[
        timing(dispatch.service_start, 300)])
    services.stop_dispatch(dispatch=dispatch)
    dispatch.refresh_from_db()
    revisions = list(dispatch.revisions.order_by("number"))
    assert [r.number for r in revisions] == [1, 2, 3, 4]
    assert [r.status for r in revisions] == ["pre-notify", "run", "run", "stop"]
    assert [r.document["revision"] for r in revisions] == [1, 2, 3, 4]
    assert revisions[2].document["serviceTimings"][0]["volume"] == 300
    assert revisions[0].document["serviceTimings"][0]["volume"] == 250  # history kept
    assert revisions[3].document["serviceTimings"] == []
    assert dispatch.revision == 4 and dispatch.status == "stop"
    assert Event.objects.filter(program=dispatch.event.program).count() == 1  # updated in place


def test_emergency_stop_is_final_and_most_urgent(issue):
    dispatch = issue(urgency="advisory")
    revision = services.stop_dispatch(dispatch=dispatch, emergency=True, reason="fault")
    assert revision.status == "emergency-stop" and revision.urgency == "emergency"
    assert revision.document["status"] == "EMERGENCY_STOP"
    dispatch.refresh_from_db()
    assert dispatch.event.priority == 0
    with pytest.raises(Conflict, match="ended with emergency-stop"):
        services.revise_dispatch(dispatch=dispatch, urgency="warning")
    with pytest.raises(Conflict):
        services.stop_dispatch(dispatch=dispatch)


def test_revise_cannot_stop(issue):
    with pytest.raises(BadRequest, match="use stop"):
        services.revise_dispatch(dispatch=issue(), status="stop")


def test_run_cannot_go_back_to_pre_notify(issue):
    with pytest.raises(BadRequest) as caught:
        services.revise_dispatch(dispatch=issue(), status="pre-notify")
    assert "status pre-notify cannot follow run" in caught.value.errors


def test_a_refused_revision_leaves_no_trace(issue):
    dispatch = issue()
    with pytest.raises(BadRequest):
        services.revise_dispatch(dispatch=dispatch, timings=[timing(dispatch.service_start,
                                                                    9999)])
    dispatch.refresh_from_db()
    assert dispatch.revision == 1 and dispatch.revisions.count() == 1


def test_expected_revision_guards_concurrent_edits(issue):
    dispatch = issue()
    services.revise_dispatch(dispatch=dispatch, urgency="warning", expected_revision=1)
    with pytest.raises(Conflict, match="at revision 2, not 1"):
        services.revise_dispatch(dispatch=dispatch, urgency="advisory", expected_revision=1)


def test_revision_numbers_are_never_reused(issue):
    dispatch = issue()
    first = dispatch.revisions.get()
    with pytest.raises(IntegrityError), transaction.atomic():
        DispatchRevision.objects.create(
            instruction=dispatch, number=1, status="run", urgency="warning",
            instruction_time=first.instruction_time, service_start=first.service_start,
            service_end=first.service_end, document={}, signature="x",
            signing_key=first.signing_key)


def test_revisions_are_immutable(issue):
    revision = issue().revisions.get()
    revision.reason = "edited"
    with pytest.raises(ImmutableError):
        revision.save()
    with pytest.raises(ImmutableError):
        revision.delete()
    with pytest.raises(ImmutableError):
        DispatchRevision.objects.all().update(reason="x")


def test_setpoints_inside_the_notice_period_are_frozen(issue):
    dispatch = issue()
    start = dispatch.service_start
    # Instructed 5 minutes before the start: the 15-minute notice covers the first setpoint.
    with pytest.raises(BadRequest) as caught:
        services.revise_dispatch(dispatch=dispatch, now=start - timedelta(minutes=5),
                                 timings=[timing(start, 200), timing(start + timedelta(hours=1),
                                                                     100)])
    assert any("cannot be changed" in e for e in caught.value.errors)
    revision = services.revise_dispatch(
        dispatch=dispatch, now=start - timedelta(minutes=5),
        timings=[timing(start, 250), timing(start + timedelta(hours=1), 50)])
    assert revision.number == 2
