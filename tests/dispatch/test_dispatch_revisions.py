"""Revisions: monotonic numbers, full immutable history, stop and emergency stop."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction

from dispatch import issuing, onboarding, programs, rules, selectors
from dispatch.models import DispatchRevision
from tests.fixtures.dispatch import hour, timing
from vtn.append_only import AppendOnlyError
from vtn.errors import BadRequest, Conflict
from vtn.models import Event

pytestmark = pytest.mark.django_db


def test_each_change_is_a_new_revision_with_history(issue):
    dispatch = issue(status="pre-notify", urgency="advisory")
    issuing.revise_dispatch(dispatch=dispatch, status="run", urgency="warning")
    issuing.revise_dispatch(dispatch=dispatch, timings=[
        timing(dispatch.service_start, 300)])
    issuing.stop_dispatch(dispatch=dispatch)
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


def test_the_issue_check_returns_the_draft_or_its_violations_and_writes_nothing(gb):
    from dispatch.models import AuditEntry, DispatchInstruction, SigningKey

    unit, product = selectors.find_unit("acme/bat1"), programs.find_product("DYNAMIC")
    start = hour(2)
    fine = issuing.check_issue(unit=unit, product=product, service_start=start,
                               service_end=start + timedelta(hours=1),
                               timings=[timing(start, 250)], reference="CHECK-1")
    assert fine.violations == ()
    assert fine.draft.revision == 1 and fine.draft.reference == "CHECK-1"
    assert fine.draft.document()["serviceTimings"][0]["volume"] == 250
    too_much = issuing.check_issue(unit=unit, product=product, service_start=start,
                                   service_end=start + timedelta(hours=1),
                                   timings=[timing(start, 9999)])
    assert too_much.violations and any("capacity" in v for v in too_much.violations)
    with pytest.raises(BadRequest) as refused:
        too_much.raise_violations()
    assert list(refused.value.errors) == list(too_much.violations)
    assert not DispatchInstruction.objects.exists()
    assert not AuditEntry.objects.exists() and not SigningKey.objects.exists()


def test_the_revision_check_sees_what_the_revision_would_break(issue):
    dispatch = issue()
    checked = issuing.check_revision(dispatch=dispatch, timings=[
        timing(dispatch.service_start, 9999)])
    assert checked.draft.revision == 2 and checked.violations
    with pytest.raises(Conflict):
        issuing.check_revision(dispatch=dispatch, expected_revision=5)
    assert dispatch.revisions.count() == 1


def test_emergency_stop_is_final_and_most_urgent(issue):
    dispatch = issue(urgency="advisory")
    revision = issuing.stop_dispatch(dispatch=dispatch, emergency=True, reason="fault")
    assert revision.status == "emergency-stop" and revision.urgency == "emergency"
    assert revision.document["status"] == "EMERGENCY_STOP"
    dispatch.refresh_from_db()
    assert dispatch.event.priority == 0
    with pytest.raises(Conflict, match="ended with emergency-stop"):
        issuing.revise_dispatch(dispatch=dispatch, urgency="warning")
    with pytest.raises(Conflict):
        issuing.stop_dispatch(dispatch=dispatch)


def test_revise_cannot_stop(issue):
    with pytest.raises(BadRequest, match="use stop"):
        issuing.revise_dispatch(dispatch=issue(), status="stop")


def test_run_cannot_go_back_to_pre_notify(issue):
    with pytest.raises(BadRequest) as caught:
        issuing.revise_dispatch(dispatch=issue(), status="pre-notify")
    assert "status pre-notify cannot follow run" in caught.value.errors


def test_a_refused_revision_leaves_no_trace(issue):
    dispatch = issue()
    with pytest.raises(BadRequest):
        issuing.revise_dispatch(dispatch=dispatch, timings=[timing(dispatch.service_start,
                                                                   9999)])
    dispatch.refresh_from_db()
    assert dispatch.revision == 1 and dispatch.revisions.count() == 1


def test_expected_revision_guards_concurrent_edits(issue):
    dispatch = issue()
    issuing.revise_dispatch(dispatch=dispatch, urgency="warning", expected_revision=1)
    with pytest.raises(Conflict, match="at revision 2, not 1"):
        issuing.revise_dispatch(dispatch=dispatch, urgency="advisory", expected_revision=1)


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
    with pytest.raises(AppendOnlyError):
        revision.save()
    with pytest.raises(AppendOnlyError):
        revision.delete()
    with pytest.raises(AppendOnlyError):
        DispatchRevision.objects.all().update(reason="x")


def test_setpoints_inside_the_notice_period_are_frozen(issue):
    dispatch = issue()
    start = dispatch.service_start
    # Instructed 5 minutes before the start: the 15-minute notice covers the first setpoint.
    with pytest.raises(BadRequest) as caught:
        issuing.revise_dispatch(dispatch=dispatch, now=start - timedelta(minutes=5),
                                timings=[timing(start, 200), timing(start + timedelta(hours=1),
                                                                    100)])
    assert any("cannot be changed" in e for e in caught.value.errors)
    revision = issuing.revise_dispatch(
        dispatch=dispatch, now=start - timedelta(minutes=5),
        timings=[timing(start, 250), timing(start + timedelta(hours=1), 50)])
    assert revision.number == 2


# A placed instruction is binding: whatever the product's notice, a revision changes only
# the future (from its instruction time, or from the freeze horizon if later).
PRODUCTS = {  # product: (unit, setpoint type)
    "SUSTAIN": ("acme/hp1", "delta"), "SECURE": ("acme/bat1", "delta"),
    "DYNAMIC": ("acme/bat1", "delta"), "RESTORE": ("acme/bat1", "absolute"),
    "MW_DISPATCH": ("acme/bat1", "absolute")}


@pytest.fixture
def binding(gb):
    """``binding(code)``: a run dispatch of ``code`` issued well ahead of its start, with
    two setpoints of 100 kW an hour apart over two hours."""
    for code in ("SUSTAIN", "SECURE", "RESTORE"):
        onboarding.create_contract(operator="ENWL", identifier=f"C-{code}", fsp="acme",
                                   product=code, units=[PRODUCTS[code][0].split("/")[1]])

    def do(code: str):
        unit, kind = PRODUCTS[code]
        start = hour(24 * 8)
        return issuing.issue_dispatch(
            unit=selectors.find_unit(unit), product=programs.find_product(code),
            service_start=start, service_end=start + timedelta(hours=2),
            timings=[timing(start, 100, kind), timing(start + timedelta(hours=1), 100, kind)],
            issued_by="test")

    return do


@pytest.mark.parametrize("code", list(PRODUCTS))
def test_a_revision_never_changes_a_past_setpoint(binding, code):
    dispatch = binding(code)
    start, kind = dispatch.service_start, PRODUCTS[code][1]
    later = start + timedelta(minutes=30)  # the first setpoint is 30 minutes in the past
    with pytest.raises(BadRequest) as caught:
        issuing.revise_dispatch(dispatch=dispatch, now=later, timings=[
            timing(start, 0, kind), timing(start + timedelta(hours=1), 0, kind)])
    assert any(f"setpoints before {rules.iso(later)}" in e or "setpoints before" in e
               for e in caught.value.errors), caught.value.errors
    for moved in ({"service_start": start + timedelta(minutes=45)},
                  {"service_end": start + timedelta(minutes=20)}):
        with pytest.raises(BadRequest) as caught:
            issuing.revise_dispatch(dispatch=dispatch, now=later, **moved)
        assert any("cannot be moved" in e for e in caught.value.errors), caught.value.errors
    dispatch.refresh_from_db()
    assert dispatch.revision == 1 and dispatch.revisions.count() == 1


@pytest.mark.parametrize("code", ["RESTORE", "MW_DISPATCH"])
def test_zero_notice_products_may_still_change_the_future(binding, code):
    dispatch = binding(code)
    start, kind = dispatch.service_start, PRODUCTS[code][1]
    later = start + timedelta(minutes=30)
    volume = 100 if code == "MW_DISPATCH" else 40  # MW Dispatch has a fixed quantity
    revision = issuing.revise_dispatch(
        dispatch=dispatch, now=later, service_end=start + timedelta(hours=3),
        timings=[timing(start, 100, kind), timing(start + timedelta(hours=1), volume, kind)])
    assert revision.number == 2
    assert [t["volume"] for t in revision.document["serviceTimings"]] == [100, volume]
    # a setpoint added between the past one and now is a change of the past too
    with pytest.raises(BadRequest):
        issuing.revise_dispatch(dispatch=dispatch, now=later, timings=[
            timing(start, 100, kind), timing(start + timedelta(minutes=10), 100, kind),
            timing(start + timedelta(hours=1), volume, kind)])


@pytest.mark.parametrize("code", ["SUSTAIN", "SECURE", "DYNAMIC"])
def test_noticed_products_freeze_until_the_notice_horizon(binding, code):
    dispatch = binding(code)
    start, kind = dispatch.service_start, PRODUCTS[code][1]
    later = start + timedelta(minutes=30)
    # a setpoint 10 minutes ahead is in the future but inside the notice period
    with pytest.raises(BadRequest) as caught:
        issuing.revise_dispatch(dispatch=dispatch, now=later, timings=[
            timing(start, 100, kind), timing(later + timedelta(minutes=10), 100, kind),
            timing(start + timedelta(hours=1), 100, kind)])
    assert any("notice" in e for e in caught.value.errors), caught.value.errors
