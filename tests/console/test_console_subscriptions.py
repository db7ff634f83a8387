"""Operator console subscriptions page: owners, callback hosts, delivery state, paging,
and an administrator's reset of a broken subscription."""

from __future__ import annotations

import re

from django.utils import timezone

from vtn.models import SecurityEvent, Subscription, WebhookDelivery


def subscription(name: str, *, url: str = "https://receiver.example:8443/cb",
                 broken: bool = False, pending: int = 0) -> Subscription:
    sub = Subscription.objects.create(
        client_id=f"client-{name}", client_name=name,
        object_operations=[{"objects": ["EVENT"], "operations": ["CREATE"], "callbackUrl": url,
                            "bearerToken": "do-not-show"}],
        broken_at=timezone.now() if broken else None, delivery_failures=5 if broken else 0,
        last_error="HTTP 500" if broken else "")
    WebhookDelivery.objects.bulk_create(
        WebhookDelivery(subscription=sub, callback_url=url, body={}) for _ in range(pending))
    return sub


def rows(html: str) -> list[str]:
    return re.findall(r'<tr class="subscription" id="subscription-([0-9a-f]+)">', html)


def test_the_page_shows_delivery_state_without_secrets(console, db):
    healthy = subscription("healthy", pending=2)
    broken = subscription("broken", url="https://other.example/cb", broken=True)
    viewer = console("viewer")
    html = viewer.get("/console/subscriptions").content.decode()
    assert rows(html) == [broken.id, healthy.id]  # broken first
    assert "receiver.example:8443" in html and "other.example" in html
    assert "HTTP 500" in html and "broken" in html
    assert "do-not-show" not in html
    assert "/reset" not in html  # a viewer sees no reset button
    only = viewer.get("/console/subscriptions?broken=1").content.decode()
    assert rows(only) == [broken.id]


def test_pages_of_fifty(console, db):
    for n in range(60):
        subscription(f"s{n}")
    client = console("viewer")
    assert len(rows(client.get("/console/subscriptions").content.decode())) == 50
    assert len(rows(client.get("/console/subscriptions?page=2").content.decode())) == 10
    assert client.get("/console/subscriptions?page=zzz").status_code == 200


def test_a_viewer_cannot_reset(console, db):
    broken = subscription("broken", broken=True)
    assert console("viewer").post(f"/console/subscriptions/{broken.id}/reset"
                                  ).status_code == 403
    broken.refresh_from_db()
    assert broken.broken_at is not None


def test_an_administrator_resets_and_it_is_logged(console, db):
    broken = subscription("broken", broken=True)
    url = f"/console/subscriptions/{broken.id}/reset"
    admin = console("administrator")
    assert "/reset" in admin.get("/console/subscriptions").content.decode()
    response = admin.post(url)
    assert response.status_code == 302 and response["Location"].endswith("reset=done")
    broken.refresh_from_db()
    assert broken.broken_at is None and broken.delivery_failures == 0
    event = SecurityEvent.objects.get(kind=SecurityEvent.Kind.WEBHOOK_RESET)
    assert broken.id in event.detail and event.client_id == "client-broken"
    assert admin.post(url)["Location"].endswith("reset=none")  # not broken any more
    assert admin.get(url).status_code == 405


def test_an_operators_staff_see_and_reset_only_their_operators_subscriptions(client, db):
    from tests.fixtures.console import create_staff, log_in
    from vtn import ownership

    ours = subscription("ours", broken=True)
    theirs = subscription("theirs", broken=True)
    shared = subscription("shared", broken=True)
    for sub, owners in ((ours, ["ENWL"]), (theirs, ["SPEN-D"]), (shared, ["ENWL", "SPEN-D"])):
        ownership.assign("SUBSCRIPTION", sub.id, owners)
    log_in(client, create_staff("enwl-admin", "administrator", operators=["ENWL"]))
    html = client.get("/console/subscriptions").content.decode()
    assert rows(html) == [ours.id]  # a subscription SPEN-D also owns is not ENWL's alone

    for other in (theirs, shared):
        response = client.post(f"/console/subscriptions/{other.id}/reset")
        assert response.status_code == 302 and response["Location"].endswith("reset=none")
        other.refresh_from_db()
        assert other.broken_at is not None
    events = SecurityEvent.objects.filter(kind=SecurityEvent.Kind.OUT_OF_SCOPE)
    assert [e.client_id for e in events] == ["console:enwl-admin"] * 2
    assert all("SPEN-D" in e.detail for e in events)
    missing = client.post("/console/subscriptions/0123456789abcdef/reset")
    assert missing["Location"].endswith("reset=none") and events.count() == 2

    assert client.post(f"/console/subscriptions/{ours.id}/reset")["Location"].endswith(
        "reset=done")
    ours.refresh_from_db()
    assert ours.broken_at is None


def test_staff_without_an_operator_see_no_subscription(client, db):
    from tests.fixtures.console import create_staff, log_in

    subscription("unowned")
    log_in(client, create_staff("nobody", "administrator", operators=[]))
    assert rows(client.get("/console/subscriptions").content.decode()) == []
