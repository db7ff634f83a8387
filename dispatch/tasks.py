"""Celery tasks of the dispatch profile (scheduled with django-celery-beat)."""

from __future__ import annotations

from celery import shared_task

from dispatch import comms

CHECK_COMMS = "dispatch.tasks.check_comms"


@shared_task(name=CHECK_COMMS)
def check_comms() -> list[dict]:
    """Mark sites comms lost or restored; the changes made."""
    return [{"site": str(change.site), "from": change.from_state, "to": change.to_state,
             "at": change.at.isoformat()} for change in comms.check_comms()]
