"""Celery tasks of the conformance sandbox (scheduled with django-celery-beat)."""

from __future__ import annotations

from celery import shared_task

from conformance import onboarding

EXPIRE_SANDBOX_FSPS = "conformance.tasks.expire_sandbox_fsps"


@shared_task(name=EXPIRE_SANDBOX_FSPS)
def expire_sandbox_fsps() -> list[str]:
    """Expire self-service FSPs older than ``CONFORMANCE_FSP_TTL_HOURS``; their names."""
    return onboarding.expire_sandbox_fsps()
