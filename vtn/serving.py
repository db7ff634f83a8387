"""Whether the VTN itself was serving: the web tier's own heartbeat.

Each web process (``manage.py serve``) beats every ``VTN_SERVING_BEAT_SECONDS`` from a
background thread, extending the latest :class:`~vtn.models.ServingPeriod` or, after a
silence longer than three beats, opening a new one. A gap between periods is a span
when no web process was serving (stopped, crashed, or cut off from its database), so
nothing a VEN sent could have reached the VTN. The comms check (dispatch.comms) does not
count such gaps against FSP sites, and the operator console lists them as VTN outages.

Before the first period ever recorded nothing is known, and nothing is discounted.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, connections
from django.utils import timezone

from vtn.models import ServingPeriod

logger = logging.getLogger(__name__)
Span = tuple[datetime, datetime]


def beat_seconds() -> float:
    return float(getattr(settings, "VTN_SERVING_BEAT_SECONDS", 10))


def tolerance() -> timedelta:
    """The longest silence that is still one serving period (three beats)."""
    return timedelta(seconds=3 * beat_seconds())


def beat(now: datetime | None = None) -> None:
    """Record that the web tier is serving now (one UPDATE, or one INSERT after a gap)."""
    now = now or timezone.now()
    latest = ServingPeriod.objects.order_by("-last_beat").first()
    if latest is not None and now - latest.last_beat <= tolerance():
        ServingPeriod.objects.filter(pk=latest.pk, last_beat__lt=now).update(last_beat=now)
    else:
        ServingPeriod.objects.create(started=now, last_beat=now)


def outages(since: datetime, until: datetime) -> list[Span]:
    """The spans within [since, until] when no web process was serving, oldest first."""
    first = ServingPeriod.objects.order_by("started").values_list("started", flat=True).first()
    if first is None or until <= since:
        return []
    slack = tolerance()
    periods = ServingPeriod.objects.filter(
        last_beat__gte=since - slack, started__lte=until).order_by("started").values_list(
        "started", "last_beat")
    cursor = max(since, first)
    gaps: list[Span] = []
    for started, last_beat in periods:
        if started - cursor > slack:
            gaps.append((cursor, started))
        cursor = max(cursor, last_beat)
    if until - cursor > slack:
        gaps.append((cursor, until))
    return gaps


def overlap(spans: list[Span], since: datetime, until: datetime) -> timedelta:
    """How much of [since, until] the ``spans`` cover (pure)."""
    total = timedelta(0)
    for start, end in spans:
        start, end = max(start, since), min(end, until)
        if end > start:
            total += end - start
    return total


def _beat_forever(interval: float) -> None:
    while True:
        try:
            beat()
        except DatabaseError as exc:  # the database is down: that is an outage too
            logger.warning("serving heartbeat not recorded: %s", exc.__class__.__name__)
        finally:
            connections.close_all()  # this thread's own connections; reopened next beat
        time.sleep(interval)


def start_beating() -> threading.Thread:
    """Start this process's heartbeat thread (``manage.py serve`` calls it in each worker)."""
    thread = threading.Thread(target=_beat_forever, args=(beat_seconds(),),
                              name="vtn-serving-heartbeat", daemon=True)
    thread.start()
    return thread
