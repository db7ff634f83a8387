"""Pure time arithmetic for OpenADR interval periods (no ORM).

OpenADR carries instants as RFC 3339 date-times and spans as ISO 8601 durations.
Calendar units have no fixed length; for deciding whether an event has transpired
a year counts 365 days and a month 30 days, and ``P9999Y`` means "open-ended".
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from functools import lru_cache

DURATION_RE = re.compile(
    r"^(-?)P(?=\d|T\d)(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)([DW]))?"
    r"(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$"
)
INFINITE_YEARS = 9999
# Longest span we treat as finite; anything longer is open-ended for filtering.
MAX_FINITE = timedelta(days=365 * 1000)
NOW_SENTINEL_YEAR = 1


@lru_cache(maxsize=1024)  # a report repeats one duration (PT30M) in every interval
def parse_duration(text: str) -> timedelta | None:
    """Return the duration as a timedelta, or None when it means infinity (P9999Y).

    Raises ValueError when ``text`` is not an ISO 8601 duration of the documents' form.
    """
    match = DURATION_RE.match(text)
    if not match:
        raise ValueError(f"not an ISO 8601 duration: {text!r}")
    sign, years, months, days_or_weeks, dw_unit, hours, minutes, seconds = match.groups()
    if years and int(years) >= INFINITE_YEARS:
        return None
    days = int(years or 0) * 365 + int(months or 0) * 30
    if days_or_weeks:
        days += int(days_or_weeks) * (7 if dw_unit == "W" else 1)
    try:
        delta = timedelta(
            days=days,
            hours=int(hours or 0),
            minutes=int(minutes or 0),
            seconds=float(seconds or 0),
        )
    except OverflowError:
        return None
    if delta > MAX_FINITE:
        return None
    return -delta if sign else delta


# Sane limits of what a client may send: date-times (other than the "now" sentinel year 1)
# between these years, durations no longer than P9999Y (the "infinite" convention).
EARLIEST_YEAR = 1970
LATEST_YEAR = 2200
LONGEST = timedelta(days=366 * INFINITE_YEARS)


def check_duration(text: str) -> None:
    """Raise ValueError unless ``text`` is a duration of the documents' form no longer
    than P9999Y (which means "infinite"); each number has at most 12 digits."""
    match = DURATION_RE.match(text)
    if not match:
        raise ValueError(f"not an ISO 8601 duration: {text[:40]!r}")
    sign, years, months, days_or_weeks, _, hours, minutes, seconds = match.groups()
    numbers = [n for n in (years, months, days_or_weeks, hours, minutes, seconds) if n]
    if any(len(n.split(".")[0]) > 12 for n in numbers) or int(years or 0) > INFINITE_YEARS:
        raise ValueError(f"duration {text[:40]!r} is longer than P{INFINITE_YEARS}Y")
    if years and int(years) == INFINITE_YEARS:
        return
    days = int(years or 0) * 366 + int(months or 0) * 31 + int(days_or_weeks or 0) * 7
    seconds_total = int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds or 0)
    if days + seconds_total / 86400 > LONGEST.days:
        raise ValueError(f"duration {text[:40]!r} is longer than P{INFINITE_YEARS}Y")


def check_datetime(text: str) -> None:
    """Raise ValueError unless ``text`` is an RFC 3339 date-time with a UTC offset, in
    the years EARLIEST_YEAR to LATEST_YEAR (or the "now" sentinel 0001-01-01)."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"not an RFC 3339 date-time: {text[:40]!r}") from exc
    if value.year == NOW_SENTINEL_YEAR:
        return
    if not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
        raise ValueError(f"date-time {text[:40]!r} is outside the years "
                         f"{EARLIEST_YEAR}-{LATEST_YEAR}")


def parse_datetime(text: str) -> datetime:
    """Parse an RFC 3339 date-time; naive values are taken as UTC."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def _period(period: dict | None) -> tuple[datetime | None, timedelta | None, bool]:
    """(start, duration, start_given) of an intervalPeriod; start 0001-01-01 means now."""
    if not period:
        return None, None, False
    start = None
    if period.get("start"):
        start = parse_datetime(period["start"])
        if start.year == NOW_SENTINEL_YEAR:
            start = None
    duration: timedelta | None = timedelta(0)
    if period.get("duration"):
        duration = parse_duration(period["duration"])
    return start, duration, bool(period.get("start"))


def event_span(
    interval_period: dict | None,
    intervals: Iterable[dict],
    now: datetime,
) -> tuple[datetime | None, datetime | None]:
    """The (start, end) of an event, UTC; ``None`` for an end means open-ended.

    Intervals without their own period follow each other from the event's period
    start, each lasting the event's default duration. A zero default duration with
    no interval periods means "until further notice" and is open-ended. Spans that run
    past the calendar's end (year 9999) are open-ended too.
    """
    try:
        return _event_span(interval_period, intervals, now)
    except OverflowError:
        return None, None


def _event_span(
    interval_period: dict | None,
    intervals: Iterable[dict],
    now: datetime,
) -> tuple[datetime | None, datetime | None]:
    default_start, default_duration, _ = _period(interval_period)
    cursor = default_start or now
    first: datetime | None = None
    last_end: datetime | None = cursor
    open_ended = False
    counted = False
    for interval in intervals:
        start, duration, start_given = _period(interval.get("intervalPeriod"))
        if not start_given:
            start = cursor
        elif start is None:
            start = now
        if interval.get("intervalPeriod", {}).get("duration") is None:
            duration = default_duration
        counted = True
        first = start if first is None else min(first, start)
        if duration is None or duration == timedelta(0):
            open_ended = True
            continue
        end = start + duration
        cursor = end
        last_end = end if last_end is None else max(last_end, end)
    if not counted:
        first = default_start
        if default_duration is None or default_duration == timedelta(0):
            return first, None
        last_end = cursor + default_duration
    if open_ended:
        return first, None
    return first, last_end
