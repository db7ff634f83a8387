"""Operator console dispatches: the issue form checks the product's rules and confirms
before issuing exactly one dispatch; the dispatch page shows revisions and
acknowledgements; revise, stop and emergency stop make revisions; viewers cannot."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from dispatch.models import (
    Acknowledgement,
    DispatchInstruction,
    DispatchRevision,
    DispatchUnit,
    Product,
)
from tests.dispatch.test_dispatch_acks import FspAgent
from tests.fixtures.dispatch import hour


def form(**overrides) -> dict:
    start = hour(2)
    bat1 = DispatchUnit.objects.get(reference="bat1")
    return {"unit": bat1.pk, "product": "DYNAMIC", "start": f"{start:%Y-%m-%d %H:%M}",
            "end": f"{start + timedelta(hours=1):%Y-%m-%d %H:%M}", "kw": "250",
            "setpoint_type": "delta", "status": "run", "urgency": "", "reference": "",
            "reason": "evening peak", "step": "check"} | overrides


def confirm_fields(page: str) -> dict:
    """The hidden fields of the confirmation form, as the browser would send them."""
    import re

    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page))
    fields.pop("csrfmiddlewaretoken", None)
    return fields


def test_check_then_confirm_issues_exactly_one_dispatch(console, gb):
    client = console("dispatcher")
    assert client.get("/console/dispatches/new").status_code == 200
    checked = client.post("/console/dispatches/new", form())
    assert checked.status_code == 200
    page = checked.content.decode()
    assert "Confirm and issue" in page
    assert not DispatchInstruction.objects.exists()  # the check issued nothing
    fields = confirm_fields(page)
    assert fields["step"] == "confirm" and fields["reference"]
    confirmed = client.post("/console/dispatches/new", fields)
    assert confirmed.status_code == 302
    dispatch = DispatchInstruction.objects.get()
    assert confirmed["Location"] == f"/console/dispatches/ENWL/{dispatch.reference}"
    assert dispatch.reference == fields["reference"]
    revision = dispatch.revisions.get()
    assert revision.issued_by == "console:dispatcher"
    assert revision.document["serviceTimings"][0]["volume"] == 250
    again = client.post("/console/dispatches/new", fields)  # a double submit
    assert again.status_code == 400
    assert b"already has a dispatch" in again.content
    assert DispatchInstruction.objects.count() == 1


def _writes_during(action) -> list[str]:
    """The statements ``action`` sends that write (or open a transaction to undo)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        action()
    writes = ("INSERT", "UPDATE", "DELETE", "SAVEPOINT", "ROLLBACK")
    return [q["sql"] for q in queries.captured_queries
            if q["sql"].lstrip().upper().startswith(writes)
            and "django_session" not in q["sql"] and "last_login" not in q["sql"]]


def test_the_issue_check_writes_nothing(console, gb):
    client = console("dispatcher")
    client.get("/console/dispatches/new")
    pages = []
    assert _writes_during(lambda: pages.append(client.post("/console/dispatches/new",
                                                           form()))) == []
    assert "Confirm and issue" in pages[0].content.decode()


def test_the_revise_check_writes_nothing(console, issue):
    dispatch = issue()
    client = console("dispatcher")
    base = f"/console/dispatches/ENWL/{dispatch.reference}"
    pages = []
    assert _writes_during(lambda: pages.append(client.post(
        f"{base}/revise", {"step": "check", "revision": "1", "kw": "120"}))) == []
    assert pages[0].status_code == 200


def test_rule_violations_are_all_shown_and_nothing_is_issued(console, gb):
    soon = datetime.now(UTC) + timedelta(minutes=5)
    response = console("dispatcher").post("/console/dispatches/new", form(
        kw="1600", start=f"{soon:%Y-%m-%d %H:%M}", end=f"{soon:%Y-%m-%d %H:%M}"))
    assert response.status_code == 400
    page = response.content.decode()
    assert "serviceEnd must be after serviceStart" in page
    assert "needs 15 minute(s) notice" in page
    assert "exceeds the unit&#x27;s capacity of 1500" in page
    assert 'role="alert"' in page
    assert not DispatchInstruction.objects.exists()


def test_the_products_setpoint_types_are_checked_before_sending(console, gb):
    soon = hour(0) + timedelta(hours=1, minutes=1)
    response = console("dispatcher").post("/console/dispatches/new", form(
        product="MW_DISPATCH", setpoint_type="delta",
        start=f"{soon:%Y-%m-%d %H:%M}", end=f"{soon + timedelta(minutes=30):%Y-%m-%d %H:%M}"))
    assert response.status_code == 400
    assert b"takes absolute setpoints, not delta" in response.content
    assert not DispatchInstruction.objects.exists()


def test_a_viewer_cannot_dispatch(console, gb):
    client = console("viewer")
    assert client.get("/console/dispatches/new").status_code == 403
    assert client.post("/console/dispatches/new", form()).status_code == 403
    assert client.post("/console/dispatches/new", form(step="confirm",
                                                       reference="X-1")).status_code == 403
    assert not DispatchInstruction.objects.exists()
    assert b"Issue a dispatch" not in client.get("/console/dispatches").content


@pytest.mark.parametrize("role", ["viewer", "settlement officer"])
def test_only_dispatchers_stop_or_revise(console, issue, role):
    dispatch = issue()
    client = console(role)
    base = f"/console/dispatches/ENWL/{dispatch.reference}"
    assert client.get(base).status_code == 200
    for action in ("stop", "emergency-stop", "revise"):
        assert client.get(f"{base}/{action}").status_code == 403
        assert client.post(f"{base}/{action}", {"kw": "10", "step": "confirm"}).status_code \
            == 403
    assert DispatchRevision.objects.count() == 1


def test_stop_asks_for_confirmation_then_makes_a_revision(console, issue):
    dispatch = issue()
    client = console("dispatcher")
    base = f"/console/dispatches/ENWL/{dispatch.reference}"
    asked = client.get(f"{base}/stop")
    assert asked.status_code == 200 and b"Confirm stop" in asked.content
    assert DispatchRevision.objects.count() == 1
    done = client.post(f"{base}/stop", {"revision": "1", "reason": "no longer needed"})
    assert done.status_code == 302
    dispatch.refresh_from_db()
    assert (dispatch.status, dispatch.revision) == ("stop", 2)
    last = dispatch.revisions.get(number=2)
    assert last.issued_by == "console:dispatcher"
    assert last.reason == "no longer needed"
    page = client.get(base).content.decode()
    assert "Revision 2: stop" in page
    assert "/stop\"" not in page  # no more actions on a final dispatch


def test_emergency_stop_makes_an_emergency_revision(console, issue):
    dispatch = issue()
    client = console("dispatcher")
    base = f"/console/dispatches/ENWL/{dispatch.reference}"
    assert b"Confirm emergency stop" in client.get(f"{base}/emergency-stop").content
    assert client.post(f"{base}/emergency-stop", {"revision": "1"}).status_code == 302
    dispatch.refresh_from_db()
    assert (dispatch.status, dispatch.urgency, dispatch.revision) == (
        "emergency-stop", "emergency", 2)


def test_a_stale_stop_is_refused(console, issue):
    dispatch = issue()
    client = console("dispatcher")
    base = f"/console/dispatches/ENWL/{dispatch.reference}"
    client.post(f"{base}/stop", {"revision": "1"})
    again = client.post(f"{base}/emergency-stop", {"revision": "1"})
    assert again.status_code == 409
    assert DispatchRevision.objects.count() == 2


def test_revise_checks_then_confirms_a_new_volume(console, issue):
    dispatch = issue()
    client = console("dispatcher")
    base = f"/console/dispatches/ENWL/{dispatch.reference}"
    assert client.get(f"{base}/revise").status_code == 200
    checked = client.post(f"{base}/revise", {"step": "check", "revision": "1", "kw": "120"})
    assert checked.status_code == 200, checked.content.decode()
    assert b"Confirm and issue the revision" in checked.content
    assert DispatchRevision.objects.count() == 1
    fields = confirm_fields(checked.content.decode())
    done = client.post(f"{base}/revise", fields)
    assert done.status_code == 302
    latest = dispatch.revisions.order_by("-number").first()
    assert latest.number == 2
    assert [t["volume"] for t in latest.document["serviceTimings"]] == [120]


def test_revise_shows_violations(console, issue):
    dispatch = issue()
    response = console("dispatcher").post(
        f"/console/dispatches/ENWL/{dispatch.reference}/revise",
        {"step": "check", "revision": "1", "kw": "5000"})
    assert response.status_code == 400
    assert b"exceeds the unit" in response.content
    assert DispatchRevision.objects.count() == 1


def test_the_dispatch_page_shows_revisions_and_acknowledgements(
        console, issue, gb, django_capture_on_commit_callbacks):
    agent = FspAgent(gb.acme)
    assert agent.register()[0] == 201
    dispatch = issue()
    revision = dispatch.revisions.get()
    agent.report(dispatch, [agent.read_back(revision, stage="RECEIVED")],
                 capture=django_capture_on_commit_callbacks)
    agent.report(dispatch, [agent.read_back(revision, stage="ACTIONED", outcome="ACCEPTED",
                                            status="STOP")],
                 capture=django_capture_on_commit_callbacks)
    assert sorted(Acknowledgement.objects.values_list("outcome", flat=True)) == [
        "accepted", "read_back_mismatch"]
    client = console("viewer")
    fragment = client.get(f"/console/dispatches/ENWL/{dispatch.reference}/timeline")
    assert fragment.status_code == 200
    text = fragment.content.decode()
    assert "<html" not in text  # a fragment, for the page's refresh
    assert "Revision 1: run" in text
    assert "RECEIVED" in text and "accepted" in text
    assert "read-back mismatch" in text
    page = client.get(f"/console/dispatches/ENWL/{dispatch.reference}").content.decode()
    assert 'data-refresh-url="/console/dispatches/ENWL/' in page


def test_acknowledgement_delays_count_from_the_instruction_time(
        console, issue, gb, django_capture_on_commit_callbacks):
    # A dispatch issued with a past instruction time (as the sandbox's demo history is):
    # the timeline says when it was issued and how long after that the site answered.
    agent = FspAgent(gb.acme)
    assert agent.register()[0] == 201
    past = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    dispatch = issue(now=past, service_start=past + timedelta(hours=2))
    revision = dispatch.revisions.get()
    agent.report(dispatch, [agent.read_back(revision, stage="RECEIVED")],
                 capture=django_capture_on_commit_callbacks)
    Acknowledgement.objects.filter(revision=revision).update(
        received_at=past + timedelta(seconds=60))

    text = console("viewer").get(
        f"/console/dispatches/ENWL/{dispatch.reference}/timeline").content.decode()

    assert "Issued 2026-11-02 09:00:00 UTC by test" in text
    assert "<td>60 s</td>" in text and not re.search(r"<td>-\d+ s</td>", text)


def test_an_unknown_dispatch_is_404(console, gb):
    assert console("viewer").get("/console/dispatches/ENWL/nope").status_code == 404


def test_the_confirm_page_shows_every_value_resolved(console, gb):
    start = hour(2)
    client = console("dispatcher")
    checked = client.post("/console/dispatches/new", form(urgency=""))
    assert checked.status_code == 200
    page = checked.content.decode()
    default = Product.objects.get(code="DYNAMIC").default_urgency
    assert f'id="confirm-urgency">{default} (the DYNAMIC product\'s default)' in page
    assert f'id="confirm-start">{start:%Y-%m-%d %H:%M}:00 UTC' in page
    assert f'id="confirm-end">{start + timedelta(hours=1):%Y-%m-%d %H:%M}:00 UTC' in page
    setpoint = page[page.index('<tr class="setpoint">'):]
    assert f"{start:%Y-%m-%d %H:%M}:00 UTC" in setpoint and "250 kW" in setpoint
    assert "delta" in setpoint and "real power" in setpoint
    chosen = client.post("/console/dispatches/new", form(urgency="advisory"))
    assert 'id="confirm-urgency">advisory</td>' in chosen.content.decode()
    assert not DispatchInstruction.objects.exists()


def test_time_inputs_are_utc_text_in_24_hour_form_not_the_browsers_locale(console, gb):
    client = console("dispatcher")
    page = client.get("/console/dispatches/new").content.decode()
    assert 'type="datetime-local"' not in page
    assert "Service start (UTC)" in page and "24-hour clock" in page
    assert 'placeholder="YYYY-MM-DD HH:MM"' in page
    wrong = client.post("/console/dispatches/new", form(start="11/29/2026 5:30 PM"))
    assert wrong.status_code == 400 and not DispatchInstruction.objects.exists()
