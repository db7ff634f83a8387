"""Settlement periods: fixed-length [start, end) intervals in UTC, grouped into London days.

A settlement day is a Europe/London calendar day, from local midnight to the next local
midnight. Periods are ``minutes`` long (30 by default, 15 for 15-minute ISPs); the length
must divide 60 so that every period boundary falls on the UTC grid and on local midnight.
A day therefore has 48 half-hours normally, 46 on the spring-forward day (23 hours) and
50 on the autumn fall-back day (25 hours). Periods are numbered from 1 within their day,
as GB settlement periods are, so the two 01:00 local half-hours of the autumn day are
periods 3 and 5 (both start at 01:00 wall-clock, one in BST and one in GMT).

Everything returned here is timezone-aware UTC; local time appears only in
:attr:`SettlementPeriod.local_start` and in the day boundaries.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import lru_cache
from zoneinfo import ZoneInfo

LONDON = ZoneInfo("Europe/London")
DEFAULT_PERIOD_MINUTES = 30
_MICROSECOND = timedelta(microseconds=1)
_MICROSECONDS_PER_HOUR = Decimal(3_600_000_000)


@lru_cache(maxsize=65536)
def utc_text(value: datetime) -> str:
    """An aware datetime as ISO 8601 in UTC to the second (``2026-01-31T17:30:00Z``): the
    one timestamp format of settlement's documents, API and exports. Kept for the
    instants asked again (a statement names the same period starts many times; equal
    datetimes are the same instant, so they have the same text)."""
    if value.utcoffset():
        value = value.astimezone(UTC)
    # strftime("%Y-%m-%dT%H:%M:%SZ") writes the same, at a tenth of the speed
    return (f"{value.year}-{value.month:02d}-{value.day:02d}T{value.hour:02d}:"
            f"{value.minute:02d}:{value.second:02d}Z")


@dataclass(frozen=True, slots=True)
class SettlementPeriod:
    """One settlement period [start_utc, end_utc) of the London day ``day``."""

    start_utc: datetime
    end_utc: datetime
    day: date
    number: int  # 1-based position within ``day``

    @property
    def hours(self) -> Decimal:
        return hours_between(self.start_utc, self.end_utc)

    @property
    def local_start(self) -> datetime:
        """Start in Europe/London (its ``fold`` tells the two autumn 01:xx periods apart)."""
        return self.start_utc.astimezone(LONDON)


def check_period_minutes(minutes: int) -> None:
    """Raise ``ValueError`` unless ``minutes`` is a whole divisor of 60."""
    if minutes <= 0 or 60 % minutes:
        raise ValueError(f"a settlement period must divide the hour; got {minutes} minutes")


def require_utc(value: datetime, name: str = "time") -> datetime:
    """Return ``value`` in UTC; naive datetimes are refused rather than guessed."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    return value.astimezone(UTC)


def hours_between(start: datetime, end: datetime) -> Decimal:
    """Length of [start, end) in hours (exact whenever it is a whole number of seconds
    that divides evenly, e.g. 0.5 or 0.25; 20 minutes is 0.333... to 28 digits)."""
    return Decimal((end - start) // _MICROSECOND) / _MICROSECONDS_PER_HOUR


@lru_cache(maxsize=8192)
def day_start_utc(day: date) -> datetime:
    """The UTC instant of local midnight at the start of London day ``day``."""
    return datetime.combine(day, time(0), tzinfo=LONDON).astimezone(UTC)


def london_day(instant: datetime) -> date:
    """The London calendar day an instant falls in."""
    return require_utc(instant).astimezone(LONDON).date()


def periods_of_day(day: date, minutes: int = DEFAULT_PERIOD_MINUTES) -> list[SettlementPeriod]:
    """All settlement periods of London day ``day`` (48/46/50 for half-hours)."""
    return list(_periods_of_day(day, minutes))


@lru_cache(maxsize=1024)
def _periods_of_day(day: date, minutes: int) -> tuple[SettlementPeriod, ...]:
    # Cached: settling many units asks for the same few days over and over.
    check_period_minutes(minutes)
    start = day_start_utc(day)
    end = day_start_utc(day + timedelta(days=1))
    step = timedelta(minutes=minutes)
    periods: list[SettlementPeriod] = []
    number = 1
    while start < end:
        nxt = start + step
        periods.append(SettlementPeriod(start, nxt, day, number))
        start = nxt
        number += 1
    return tuple(periods)


def periods_of_days(first: date, last: date,
                    minutes: int = DEFAULT_PERIOD_MINUTES) -> Iterator[SettlementPeriod]:
    """Periods of every London day from ``first`` to ``last`` inclusive, in order."""
    day = first
    while day <= last:
        yield from periods_of_day(day, minutes)
        day += timedelta(days=1)


def periods_of_month(year: int, month: int,
                     minutes: int = DEFAULT_PERIOD_MINUTES) -> list[SettlementPeriod]:
    """All settlement periods of a London calendar month."""
    first = date(year, month, 1)
    following = date(year + (month == 12), month % 12 + 1, 1)
    return list(periods_of_days(first, following - timedelta(days=1), minutes))


def period_start_containing(instant: datetime,
                            minutes: int = DEFAULT_PERIOD_MINUTES) -> datetime:
    """Start (UTC) of the settlement period that contains ``instant``."""
    check_period_minutes(minutes)
    utc = require_utc(instant)
    # Period boundaries sit on the UTC grid because the length divides the hour and
    # London is always a whole number of hours from UTC.
    floored_minute = utc.minute - utc.minute % minutes
    return utc.replace(minute=floored_minute, second=0, microsecond=0)


def period_containing(instant: datetime,
                      minutes: int = DEFAULT_PERIOD_MINUTES) -> SettlementPeriod:
    """The settlement period (with its day and number) that contains ``instant``."""
    start = period_start_containing(instant, minutes)
    day = start.astimezone(LONDON).date()
    number = settlement_period_number(start, minutes)
    return SettlementPeriod(start, start + timedelta(minutes=minutes), day, number)


def settlement_period_number(start_utc: datetime,
                             minutes: int = DEFAULT_PERIOD_MINUTES) -> int:
    """1-based number, within its London day, of the period starting at ``start_utc``."""
    check_period_minutes(minutes)
    start = require_utc(start_utc, "start_utc")
    since_midnight = start - day_start_utc(start.astimezone(LONDON).date())
    seconds = since_midnight.days * 86_400 + since_midnight.seconds
    if since_midnight.microseconds or seconds % (minutes * 60):
        raise ValueError(f"{start.isoformat()} is not the start of a {minutes}-minute period")
    return seconds // (minutes * 60) + 1


def periods_between(start_utc: datetime, end_utc: datetime,
                    minutes: int = DEFAULT_PERIOD_MINUTES) -> list[SettlementPeriod]:
    """Every settlement period that overlaps [start_utc, end_utc), in order.

    The first and last periods may be only partly covered by the range; use
    :func:`overlap_hours` to measure by how much.
    """
    start = require_utc(start_utc, "start_utc")
    end = require_utc(end_utc, "end_utc")
    if end <= start:
        return []
    first = period_start_containing(start, minutes)
    day = first.astimezone(LONDON).date()
    number = settlement_period_number(first, minutes)
    next_midnight = day_start_utc(day + timedelta(days=1))
    step = timedelta(minutes=minutes)
    periods: list[SettlementPeriod] = []
    current = first
    while current < end:
        if current >= next_midnight:
            day += timedelta(days=1)
            number = 1
            next_midnight = day_start_utc(day + timedelta(days=1))
        nxt = current + step
        periods.append(SettlementPeriod(current, nxt, day, number))
        current = nxt
        number += 1
    return periods


def overlap_microseconds(period: SettlementPeriod, start_utc: datetime, end_utc: datetime) -> int:
    """Whole microseconds of ``period`` inside [start_utc, end_utc) (zero if disjoint)."""
    start = max(period.start_utc, start_utc)
    end = min(period.end_utc, end_utc)
    if end <= start:
        return 0
    return (end - start) // _MICROSECOND


def overlap_hours(period: SettlementPeriod, start_utc: datetime, end_utc: datetime) -> Decimal:
    """Hours of ``period`` that fall inside [start_utc, end_utc) (zero if disjoint)."""
    return Decimal(overlap_microseconds(period, start_utc, end_utc)) / _MICROSECONDS_PER_HOUR
