"""Celery tasks of the VTN (scheduled with django-celery-beat)."""

from __future__ import annotations

from celery import shared_task

from vtn import idempotency

PURGE_IDEMPOTENCY_KEYS = "vtn.tasks.purge_idempotency_keys"


@shared_task(name=PURGE_IDEMPOTENCY_KEYS)
def purge_idempotency_keys() -> int:
    """Delete Idempotency-Key records past their retention; the number deleted."""
    return idempotency.purge_expired()
