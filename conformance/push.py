"""Push notifications in the sandbox: the evidence the ``webhook`` and ``mqtt`` scenarios
grade (docs/conformance.md, section 3).

* MQTT topic discovery is recorded when a dispatch site's VEN client asks for its ven's
  topics (``vtn.signals.topics_discovered``): one row per client, ven and kind, with the
  last time.
* Webhooks: the VEN's own subscriptions with callbacks for EVENT changes, the VTN's echo
  check run again on each callback, and the outbox rows (``WebhookDelivery``) the VTN
  queued for them.
* A decoy: an event in the dispatch's program targeted at a label no VEN holds, so the
  privacy checks have another VEN's object to stay silent about.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime

from django.db import IntegrityError
from django.utils import timezone

from conformance.checks import DeliveryRecord, EchoRecord
from conformance.models import TopicDiscovery
from dispatch.identity import PROFILE_CALLER
from dispatch.models import FspSite
from vtn import services as vtn_services
from vtn import webhooks
from vtn.errors import Problem
from vtn.models import Event, Subscription, WebhookDelivery
from vtn.wire.v31 import Wire31

logger = logging.getLogger(__name__)
_WIRE = Wire31()


def on_topics_discovered(sender, *, client_id: str, ven_id: str, object_type: str | None,
                         **kwargs) -> None:
    """Record (upsert) a dispatch site VEN's request for its topics; never fails the
    request over it."""
    try:
        if not FspSite.objects.filter(ven__client_id=client_id).exists():
            return
        kind = object_type or ""
        updated = TopicDiscovery.objects.filter(client_id=client_id, ven_id=ven_id,
                                                object_type=kind).update(at=timezone.now())
        if not updated:
            try:
                TopicDiscovery.objects.create(client_id=client_id, ven_id=ven_id,
                                              object_type=kind, at=timezone.now())
            except IntegrityError:  # a concurrent first request of the same kind
                pass
    except Exception:
        logger.exception("could not record a topic discovery of %s", client_id)


def discoveries(client_id: str, ven_id: str) -> list[tuple[str, datetime]]:
    return list(TopicDiscovery.objects.filter(client_id=client_id, ven_id=ven_id)
                .order_by("at").values_list("object_type", "at"))


def event_subscriptions(client_id: str) -> list[Subscription]:
    """The client's subscriptions with at least one callback for EVENT changes."""
    return [s for s in Subscription.objects.filter(client_id=client_id).order_by("created")
            if any("EVENT" in entry.get("objects", []) and entry.get("callbackUrl")
                   for entry in s.object_operations)]


def echo_checks(subscriptions: list[Subscription]) -> list[EchoRecord]:
    """The VTN's own echo check (``vtn.webhooks.verify_callback``), once per callback."""
    callbacks: dict[str, str | None] = {}
    for subscription in subscriptions:
        for entry in subscription.object_operations:
            if "EVENT" in entry.get("objects", []) and entry.get("callbackUrl"):
                callbacks.setdefault(entry["callbackUrl"], entry.get("bearerToken"))
    records = []
    for url, token in callbacks.items():
        try:
            webhooks.verify_callback(url, token)
            records.append(EchoRecord(url, ""))
        except Problem as exc:
            records.append(EchoRecord(url, str(exc.detail)))
    return records


def deliveries(subscriptions: list[Subscription], since: datetime) -> list[DeliveryRecord]:
    rows = WebhookDelivery.objects.filter(
        subscription__in=subscriptions, created__gte=since).order_by("created", "id")
    return [DeliveryRecord(
        subscription_id=row.subscription_id, callback_url=row.callback_url,
        object_type=str(row.body.get("objectType", "")),
        operation=str(row.body.get("operation", "")),
        object_id=str((row.body.get("object") or {}).get("id", "")), state=row.state,
        created=row.created, delivered_at=row.delivered_at, attempts=row.attempts,
        last_error=row.last_error) for row in rows]


def create_decoy(program_id: str) -> Event:
    """An event in ``program_id`` for a label no VEN holds: another VEN's object."""
    label = f"conformance-decoy-{secrets.token_hex(6)}"
    return vtn_services.save_event(caller=PROFILE_CALLER, data=_WIRE.event_in({
        "programID": program_id, "eventName": label, "targets": [label],
        "intervals": [{"id": 0, "payloads": [{"type": "SIMPLE", "values": [0]}]}]}))


def delete_decoy(event: Event) -> None:
    vtn_services.delete_event(caller=PROFILE_CALLER, event=event)
