"""Celery tasks of the dispatch profile (scheduled with django-celery-beat)."""

from __future__ import annotations

from celery import shared_task

from dispatch import alerts, comms, retention

CHECK_COMMS = "dispatch.tasks.check_comms"
PURGE_RETAINED = "dispatch.tasks.purge_retained"


@shared_task(name=CHECK_COMMS)
def check_comms() -> list[dict]:
    """Mark sites comms lost or restored, then send the operators' alerts that are due
    (new ones and retries); the changes made."""
    changes = [{"site": str(change.site), "from": change.from_state, "to": change.to_state,
                "at": change.at.isoformat()} for change in comms.check_comms()]
    alerts.deliver_due()
    return changes


@shared_task(name=PURGE_RETAINED)
def purge_retained() -> dict[str, int]:
    """Delete heartbeats, security log lines and meter readings past their retention."""
    return retention.purge()
