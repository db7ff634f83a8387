"""Retention: heartbeats, security log lines and raw meter readings do not grow without
bound. Each kind has its own period (settings ``RETENTION_*_DAYS``; 0 keeps it forever),
and :func:`purge` (scheduled daily, ``dispatch.tasks.purge_retained``) deletes what is
older, never anything a statement or the audit chain needs:

- **heartbeats**: :class:`HeartbeatRecord` rows and the OpenADR heartbeat reports they
  were recorded from. A site's last-seen time and comms transitions are kept.
- **security log**: :class:`vtn.models.SecurityEvent` lines (append-only otherwise).
- **meter readings**: raw :class:`MeterReading` rows, except those a kept statement was
  or may be computed from: every reading of a contracted unit from the baseline
  look-back before a statement's month to its end, for every statement that is not
  superseded (draft, issued, accepted, disputed or final). Settlement says which
  (``settlement/retention.py``, registered through :func:`keep_readings`), so dispatch
  needs no knowledge of statements.

The dispatch audit chain (revisions, acknowledgements, audit entries) is never purged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from dispatch.models import HeartbeatRecord, MeterReading
from vtn.models import Report, SecurityEvent

# Conditions on MeterReading that must survive a purge (see keep_readings).
_reading_keepers: list[Callable[[], Q]] = []


@dataclass(frozen=True)
class Policy:
    heartbeat_days: int
    security_log_days: int
    meter_reading_days: int

    @classmethod
    def from_settings(cls) -> Policy:
        return cls(heartbeat_days=settings.RETENTION_HEARTBEAT_DAYS,
                   security_log_days=settings.RETENTION_SECURITY_LOG_DAYS,
                   meter_reading_days=settings.RETENTION_METER_READING_DAYS)


def _cutoff(now: datetime, days: int) -> datetime | None:
    return now - timedelta(days=days) if days > 0 else None


def keep_readings(rule: Callable[[], Q]) -> None:
    """Register ``rule``: the raw meter readings its condition matches are never purged.
    Apps above dispatch that compute from raw readings register one when they start
    (settlement: every reading a kept statement was or may be computed from)."""
    _reading_keepers.append(rule)


def _kept_readings() -> Q:
    kept = Q(pk__in=[])
    for rule in _reading_keepers:
        kept |= rule()
    return kept


@transaction.atomic
def purge(*, now: datetime | None = None, policy: Policy | None = None) -> dict[str, int]:
    """Delete what the policy no longer keeps; the number of rows deleted per kind."""
    now, policy = now or timezone.now(), policy or Policy.from_settings()
    done = {"heartbeats": 0, "heartbeat_reports": 0, "security_events": 0,
            "meter_readings": 0}
    if (cutoff := _cutoff(now, policy.heartbeat_days)) is not None:
        old = HeartbeatRecord.objects.filter(received_at__lt=cutoff)
        report_ids = list(old.values_list("report_id", flat=True))
        done["heartbeats"] = old.delete()[0]
        for start in range(0, len(report_ids), 5000):
            done["heartbeat_reports"] += Report.objects.filter(
                pk__in=report_ids[start:start + 5000]).delete()[0]
    if (cutoff := _cutoff(now, policy.security_log_days)) is not None:
        # the log is append-only for everyone else: only retention removes lines
        done["security_events"] = models.QuerySet.delete(
            SecurityEvent.objects.filter(time__lt=cutoff))[0]
    if (cutoff := _cutoff(now, policy.meter_reading_days)) is not None:
        done["meter_readings"] = MeterReading.objects.filter(start__lt=cutoff).exclude(
            _kept_readings()).delete()[0]
    return done
