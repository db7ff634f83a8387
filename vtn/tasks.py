"""Celery tasks of the VTN (scheduled with django-celery-beat)."""

from __future__ import annotations

from celery import shared_task

from vtn import idempotency

PURGE_IDEMPOTENCY_KEYS = "vtn.tasks.purge_idempotency_keys"


@shared_task(name=PURGE_IDEMPOTENCY_KEYS)
def purge_idempotency_keys() -> int:
    """Delete Idempotency-Key records past their retention; the number deleted."""
    return idempotency.purge_expired()


@shared_task(name="vtn.tasks.notify_change")
def notify_change(change: dict) -> int:
    """Fan one committed change out to the webhook subscriptions that may see it."""
    from vtn import webhooks

    return webhooks.fan_out(change)


@shared_task(name="vtn.tasks.drain_subscription")
def drain_subscription(subscription_id: str) -> None:
    """Deliver one subscription's due notifications (a retry's wake-up)."""
    from vtn import webhooks

    webhooks.submit(webhooks.drain, subscription_id)


@shared_task(name="vtn.tasks.resume_webhook_deliveries")
def resume_webhook_deliveries() -> int:
    """Beat, every minute: resume due deliveries a stopped worker left behind."""
    from vtn import webhooks

    return webhooks.resume_due()


@shared_task(name="vtn.tasks.publish_mqtt")
def publish_mqtt(change: dict) -> int:
    """Publish one committed change on the MQTT broker (BL and per-VEN topics)."""
    from vtn import mqtt

    return mqtt.publish_change(change)
