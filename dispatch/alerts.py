"""Alerts to network operators: a site gone silent (comms lost), a site heard from again,
a dispatch issued to a site in comms loss.

Each alert is a row (:class:`OperatorAlert`, listed in the console) written in the
transaction of what caused it. When the operator configured a webhook
(:class:`OperatorAlertHook`, ``manage.py operator_alerts set-webhook``), the alert is
POSTed there as JSON after the commit, with the delivery rules of every webhook of the
VTN (``vtn.webhooks.send``: HTTPS only, the callback address policy, timeouts,
``X-OpenADR-Notification-Id`` for de-duplication) and its retry schedule
(``VTN_WEBHOOK_RETRY_DELAYS``, with jitter); after the last retry the alert is marked
``failed`` and the console shows it so. :func:`deliver_due` (run after every comms
check, so every ``DISPATCH_COMMS_CHECK_SECONDS``) sends what is due.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from dispatch.models import (
    CommsState,
    CommsTransition,
    DispatchInstruction,
    NetworkOperator,
    OperatorAlert,
    OperatorAlertHook,
)
from dispatch.rules import iso
from vtn import background, notifications, webhooks

logger = logging.getLogger("dispatch.alerts")
Delivery = OperatorAlert.Delivery


def raise_alert(*, operator: NetworkOperator, kind: str, body: dict, site=None,
                now: datetime | None = None) -> OperatorAlert:
    """Record an alert (in the caller's transaction) and, after the commit, send it to the
    operator's webhook when it has one."""
    now = now or timezone.now()
    hook = OperatorAlertHook.objects.filter(operator=operator, enabled=True).first()
    alert = OperatorAlert.objects.create(
        operator=operator, kind=kind, site=site, raised_at=now,
        body={"kind": kind, "networkOperator": operator.code, "raisedAt": iso(now), **body},
        delivery=Delivery.PENDING if hook else Delivery.NO_WEBHOOK,
        next_attempt_at=timezone.now() if hook else None)
    if hook is not None:
        transaction.on_commit(lambda: background.submit(deliver, alert.pk))
    return alert


def on_comms_transition(change: CommsTransition) -> OperatorAlert | None:
    """The alert of a site's comms change (lost, or back online after a loss)."""
    site = change.site
    if change.to_state == CommsState.COMMS_LOST:
        kind = OperatorAlert.Kind.COMMS_LOST
    elif change.from_state == CommsState.COMMS_LOST:
        kind = OperatorAlert.Kind.COMMS_RESTORED
    else:
        return None
    return raise_alert(operator=site.fsp.operator, kind=kind, site=site, now=change.at, body={
        "site": f"{site.fsp.operator.code}/{site.fsp.identifier}/{site.name}",
        "fsp": site.fsp.identifier, "units": sorted(site.units.values_list("reference",
                                                                         flat=True)),
        "lastSeen": iso(change.last_seen) if change.last_seen else None,
        "detail": change.detail})


def on_dispatch_in_comms_loss(dispatch: DispatchInstruction, *, issued_by: str
                              ) -> OperatorAlert:
    site = dispatch.unit.site
    return raise_alert(
        operator=dispatch.operator, kind=OperatorAlert.Kind.DISPATCH_IN_COMMS_LOSS, site=site,
        body={"dispatchRef": dispatch.reference, "unit": dispatch.unit.reference,
              "site": f"{dispatch.operator.code}/{site.fsp.identifier}/{site.name}",
              "issuedBy": issued_by,
              "lastSeen": iso(site.last_seen) if site.last_seen else None})


def deliver(alert_id: int) -> bool:
    """One attempt at sending a pending alert; True when it was delivered."""
    alert = OperatorAlert.objects.select_related("operator__alert_hook").filter(
        pk=alert_id, delivery=Delivery.PENDING).first()
    hook = getattr(alert.operator, "alert_hook", None) if alert else None
    if alert is None:
        return False
    if hook is None or not hook.enabled:
        OperatorAlert.objects.filter(pk=alert.pk).update(delivery=Delivery.NO_WEBHOOK,
                                                         next_attempt_at=None)
        return False
    error = webhooks.send(hook.url, alert.body, bearer_token=hook.bearer_token or None,
                          notification_id=str(alert.notification_id))
    now = timezone.now()
    attempts = alert.attempts + 1
    if error is None:
        OperatorAlert.objects.filter(pk=alert.pk).update(
            delivery=Delivery.DELIVERED, delivered_at=now, attempts=attempts,
            next_attempt_at=None, last_error="")
        return True
    delay = notifications.retry_delay(attempts, settings.VTN_WEBHOOK_RETRY_DELAYS)
    logger.warning("alert %s to %s failed (attempt %d): %s", alert.notification_id, hook.url,
                   attempts, error)
    OperatorAlert.objects.filter(pk=alert.pk).update(
        attempts=attempts, last_error=error[:webhooks.ERROR_LIMIT],
        delivery=Delivery.FAILED if delay is None else Delivery.PENDING,
        next_attempt_at=None if delay is None else now + timedelta(seconds=delay))
    return False


def deliver_due(now: datetime | None = None) -> int:
    """Attempt every pending alert whose time has come; the number delivered."""
    now = now or timezone.now()
    due = OperatorAlert.objects.filter(delivery=Delivery.PENDING, next_attempt_at__lte=now)
    return sum(deliver(pk) for pk in list(due.order_by("raised_at", "id").values_list(
        "pk", flat=True)))


def set_webhook(*, operator: str, url: str | None, bearer_token: str = "") -> dict:
    """Point ``operator``'s alerts at ``url`` (checked like every webhook callback), or
    stop sending them with ``url`` None."""
    found = NetworkOperator.objects.get(code=operator.upper())
    if url is None:
        OperatorAlertHook.objects.filter(operator=found).update(enabled=False)
    else:
        webhooks.check_callback_url(url, resolve=True)
        OperatorAlertHook.objects.update_or_create(
            operator=found, defaults={"url": url, "bearer_token": bearer_token,
                                      "enabled": True})
    return hook_as_dict(found)


def hook_as_dict(operator: NetworkOperator) -> dict:
    hook = OperatorAlertHook.objects.filter(operator=operator).first()
    return {"operator": operator.code, "url": hook.url if hook else None,
            "enabled": bool(hook and hook.enabled),
            "bearerToken": bool(hook and hook.bearer_token)}


def visible(operators) -> QuerySet[OperatorAlert]:
    """Alerts of ``operators``, newest first."""
    return OperatorAlert.objects.select_related("operator", "site__fsp").filter(
        Q(operator__code__in=operators))


def alert_as_dict(alert: OperatorAlert) -> dict:
    return alert.body | {"delivery": alert.delivery, "attempts": alert.attempts,
                         "deliveredAt": iso(alert.delivered_at) if alert.delivered_at
                         else None, "lastError": alert.last_error or None}
