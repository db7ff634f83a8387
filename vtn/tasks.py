"""Celery tasks of the VTN (scheduled with django-celery-beat).

Celery looks for an app's tasks in its ``tasks`` module. The webhook and MQTT tasks are
defined beside the code that queues them (a delivery retry queues its own task) and are
listed here; their names stay ``vtn.tasks.<name>``.
"""

from __future__ import annotations

from celery import shared_task

from vtn import idempotency
from vtn.mqtt import publish_mqtt
from vtn.webhooks import drain_subscription, notify_change, resume_webhook_deliveries

__all__ = ["PURGE_IDEMPOTENCY_KEYS", "drain_subscription", "notify_change", "publish_mqtt",
           "purge_idempotency_keys", "resume_webhook_deliveries"]

PURGE_IDEMPOTENCY_KEYS = "vtn.tasks.purge_idempotency_keys"


@shared_task(name=PURGE_IDEMPOTENCY_KEYS)
def purge_idempotency_keys() -> int:
    """Delete Idempotency-Key records past their retention; the number deleted."""
    return idempotency.purge_expired()
