"""Baselines: what a unit would have drawn (kW, per settlement period) had it not been dispatched.

Conventions: power in kW as ``Decimal``, positive = consumption/import from the network,
negative = export (UFTP). Readings are ``Mapping[period_start_utc, Decimal | None]``: the
average power over the settlement period starting at that UTC instant; ``None`` or an
absent key means missing or flagged and is never read as zero.

Every function returns a :class:`BaselineResult` carrying the per-period values *and* the
inputs used (days, source periods, exclusions) so that a statement can cite them, or an
explicit status saying why no baseline exists:

* ``NOT_COMPUTABLE`` - too few eligible history days (day-based methods);
* ``HELD_MISSING_DATA`` - a required reading is missing (named in ``missing_periods_utc``);
* ``REJECTED`` - a nomination received after gate closure.

Day-based methods (:func:`high_x_of_y_baseline`, :func:`average_of_y_baseline`) match the
target period to history by its Europe/London wall-clock start time. Clock-change days
(23 or 25 hours) are never used as history days, so every wall-clock time occurs exactly
once in each history day. When the target is the spring-forward day its 01:00-01:59
periods do not exist and need no baseline; when it is the autumn day, both periods that
start at 01:00 (and both at 01:30) get the baseline of the single 01:00 (01:30) period of
the history days.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache
from typing import cast

from settlement.calc.periods import (
    DEFAULT_PERIOD_MINUTES,
    LONDON,
    check_period_minutes,
    day_start_utc,
    period_start_containing,
    periods_between,
    periods_of_day,
    require_utc,
)

Readings = Mapping[datetime, Decimal | None]

DEFAULT_LOOKBACK_DAYS = 30
_DAY = timedelta(days=1)


class BaselineStatus(StrEnum):
    COMPUTED = "computed"
    NOT_COMPUTABLE = "not_computable"
    HELD_MISSING_DATA = "held_missing_data"
    REJECTED = "rejected"


class ExclusionReason(StrEnum):
    OTHER_DAY_TYPE = "other day type"
    DISPATCHED = "dispatched"
    CLOCK_CHANGE = "clock-change day"
    INCOMPLETE_DATA = "incomplete data"


@dataclass(frozen=True, slots=True)
class BaselinePeriod:
    """Baseline of one target period and the readings (by period start) it was made from."""

    start_utc: datetime
    baseline_kw: Decimal
    source_starts_utc: tuple[datetime, ...]


@dataclass(frozen=True, slots=True)
class ExcludedDay:
    day: date
    reason: ExclusionReason
    missing_periods_utc: tuple[datetime, ...] = ()


@dataclass(frozen=True, slots=True)
class BaselineResult:
    """Outcome of a baseline method. ``periods`` is empty unless ``status`` is COMPUTED."""

    method: str
    status: BaselineStatus
    periods: tuple[BaselinePeriod, ...] = ()
    days_used: tuple[date, ...] = ()
    days_excluded: tuple[ExcludedDay, ...] = ()
    missing_periods_utc: tuple[datetime, ...] = ()
    reason: str = ""
    parameters: Mapping[str, object] = field(default_factory=dict)

    @property
    def computed(self) -> bool:
        return self.status is BaselineStatus.COMPUTED

    def values_kw(self) -> dict[datetime, Decimal]:
        """Baseline by period start (UTC), ready to feed :mod:`settlement.calc.delivery`."""
        return {p.start_utc: p.baseline_kw for p in self.periods}


def is_working_day(day: date, holidays: Collection[date] = frozenset()) -> bool:
    """Monday to Friday and not one of ``holidays``."""
    return day.weekday() < 5 and day not in holidays


def is_clock_change_day(day: date) -> bool:
    """True for the London days that last 23 or 25 hours."""
    return day_start_utc(day + _DAY) - day_start_utc(day) != _DAY


def mean(values: Sequence[Decimal]) -> Decimal:
    return sum(values, Decimal(0)) / len(values)


def _present(readings_kw: Readings, starts: Sequence[datetime]) -> list[Decimal]:
    """Readings already checked to be present (a None here is a programming error)."""
    values = [readings_kw[s] for s in starts]
    if any(v is None for v in values):
        raise ValueError("a reading checked as present is missing")
    return cast(list[Decimal], values)


@dataclass(frozen=True, slots=True)
class DaySelection:
    """The history days chosen for a day-based baseline, most recent first."""

    days_used: tuple[date, ...]
    days_excluded: tuple[ExcludedDay, ...]


def select_history_days(readings_kw: Readings, *, target_day: date, y: int,
                        lookback_days: int = DEFAULT_LOOKBACK_DAYS,
                        holidays: Collection[date] = frozenset(),
                        dispatched_days: Collection[date] = frozenset(),
                        minutes: int = DEFAULT_PERIOD_MINUTES) -> DaySelection:
    """Up to ``y`` most recent eligible days before ``target_day``, looking back at most
    ``lookback_days`` days. Eligible: same day type (working/non-working) as the target,
    not dispatched, not a clock-change day, every period present. Every day examined and
    not used is listed with its reason; the search stops once ``y`` days are found."""
    check_period_minutes(minutes)
    if y < 1:
        raise ValueError("y must be at least 1")
    working = is_working_day(target_day, holidays)
    used: list[date] = []
    excluded: list[ExcludedDay] = []
    for back in range(1, lookback_days + 1):
        day = target_day - timedelta(days=back)
        if is_working_day(day, holidays) != working:
            excluded.append(ExcludedDay(day, ExclusionReason.OTHER_DAY_TYPE))
        elif day in dispatched_days:
            excluded.append(ExcludedDay(day, ExclusionReason.DISPATCHED))
        elif is_clock_change_day(day):
            excluded.append(ExcludedDay(day, ExclusionReason.CLOCK_CHANGE))
        else:
            missing = _missing_in_day(readings_kw, day, minutes)
            if missing:
                excluded.append(ExcludedDay(day, ExclusionReason.INCOMPLETE_DATA, missing))
            else:
                used.append(day)
                if len(used) == y:
                    break
    return DaySelection(tuple(used), tuple(excluded))


def _missing_in_day(readings_kw: Readings, day: date, minutes: int) -> tuple[datetime, ...]:
    starts = _day_starts(day, minutes)
    # A mapping that can tell which periods lack a value without making the values (the
    # metered arrays, calc.metering.MeteredKw) says so itself.
    lacking = getattr(readings_kw, "lacking", None)
    if lacking is not None:
        return cast(tuple[datetime, ...], lacking(starts))
    return tuple(s for s in starts if readings_kw.get(s) is None)


@lru_cache(maxsize=4096)
def _day_starts(day: date, minutes: int) -> tuple[datetime, ...]:
    """The period starts of a 24-hour London day (history days are never 23 or 25 hours)."""
    start = day_start_utc(day)
    step = timedelta(minutes=minutes)
    return tuple(start + step * i for i in range(24 * 60 // minutes))


def _history_starts(target_day: date, days: Sequence[date], minutes: int,
                    only: Collection[datetime] | None = None
                    ) -> list[tuple[datetime, tuple[datetime, ...]]]:
    """For each target period (each of ``only`` when given): (its start, the same
    wall-clock period start on each day)."""
    midnights = [day_start_utc(day) for day in days]
    # History days are 24-hour days, so a wall-clock time is a fixed offset from midnight.
    return [(start, tuple(m + since_midnight for m in midnights))
            for start, since_midnight in _wall_clock_offsets(target_day, minutes)
            if only is None or start in only]


@lru_cache(maxsize=1024)
def _wall_clock_offsets(day: date, minutes: int) -> tuple[tuple[datetime, timedelta], ...]:
    """(period start UTC, local wall-clock time as an offset from midnight) for each period."""
    rows = []
    for period in periods_of_day(day, minutes):
        wall = period.start_utc.astimezone(LONDON)
        rows.append((period.start_utc, timedelta(hours=wall.hour, minutes=wall.minute)))
    return tuple(rows)


def _not_enough_days(method: str, selection: DaySelection, y: int,
                     parameters: Mapping[str, object]) -> BaselineResult:
    return BaselineResult(
        method=method, status=BaselineStatus.NOT_COMPUTABLE,
        days_used=selection.days_used, days_excluded=selection.days_excluded,
        reason=(f"only {len(selection.days_used)} eligible day(s) of the {y} required "
                f"within the look-back window"),
        parameters=parameters)


def high_x_of_y_baseline(readings_kw: Readings, *, target_day: date, x: int = 3, y: int = 5,
                         lookback_days: int = DEFAULT_LOOKBACK_DAYS,
                         holidays: Collection[date] = frozenset(),
                         dispatched_days: Collection[date] = frozenset(),
                         minutes: int = DEFAULT_PERIOD_MINUTES,
                         only: Collection[datetime] | None = None) -> BaselineResult:
    """High X of Y: per period of ``target_day``, the mean of the ``x`` highest readings of
    that wall-clock period among the ``y`` days chosen by :func:`select_history_days`.

    "Highest" is by signed value (consumption positive), so for an exporting unit the
    chosen days are those with the least export. Ties are broken toward the more recent
    day. NOT_COMPUTABLE when fewer than ``y`` eligible days exist. With ``only`` (period
    starts of the target day), just those periods are worked out: a dispatch needs the
    baseline of the periods it covers, not of the whole day.
    """
    if not 1 <= x <= y:
        raise ValueError("need 1 <= x <= y")
    method = "high_x_of_y"
    parameters = {"x": x, "y": y, "lookback_days": lookback_days, "minutes": minutes}
    selection = select_history_days(readings_kw, target_day=target_day, y=y,
                                    lookback_days=lookback_days, holidays=holidays,
                                    dispatched_days=dispatched_days, minutes=minutes)
    if len(selection.days_used) < y:
        return _not_enough_days(method, selection, y, parameters)
    periods = []
    for start, sources in _history_starts(target_day, selection.days_used, minutes, only):
        values = _present(readings_kw, sources)
        # sorted() is stable and sources run most recent first: ties favour recent days.
        ranked = sorted(range(len(sources)), key=values.__getitem__, reverse=True)[:x]
        periods.append(BaselinePeriod(start, mean([values[i] for i in ranked]),
                                      tuple(sources[i] for i in ranked)))
    return BaselineResult(method=method, status=BaselineStatus.COMPUTED, periods=tuple(periods),
                          days_used=selection.days_used, days_excluded=selection.days_excluded,
                          parameters=parameters)


def average_of_y_baseline(readings_kw: Readings, *, target_day: date, y: int = 5,
                          lookback_days: int = DEFAULT_LOOKBACK_DAYS,
                          holidays: Collection[date] = frozenset(),
                          dispatched_days: Collection[date] = frozenset(),
                          minutes: int = DEFAULT_PERIOD_MINUTES,
                          only: Collection[datetime] | None = None) -> BaselineResult:
    """Average of Y: per period of ``target_day`` (each of ``only`` when given), the mean
    of that wall-clock period over the ``y`` days chosen by :func:`select_history_days`.
    NOT_COMPUTABLE when fewer than ``y`` eligible days exist."""
    method = "average_of_y"
    parameters = {"y": y, "lookback_days": lookback_days, "minutes": minutes}
    selection = select_history_days(readings_kw, target_day=target_day, y=y,
                                    lookback_days=lookback_days, holidays=holidays,
                                    dispatched_days=dispatched_days, minutes=minutes)
    if len(selection.days_used) < y:
        return _not_enough_days(method, selection, y, parameters)
    periods = tuple(
        BaselinePeriod(start, mean(_present(readings_kw, sources)), sources)
        for start, sources in _history_starts(target_day, selection.days_used, minutes,
                                              only))
    return BaselineResult(method=method, status=BaselineStatus.COMPUTED, periods=periods,
                          days_used=selection.days_used, days_excluded=selection.days_excluded,
                          parameters=parameters)


def meter_before_baseline(readings_kw: Readings, *, start_utc: datetime, end_utc: datetime,
                          n_periods: int, minutes: int = DEFAULT_PERIOD_MINUTES) -> BaselineResult:
    """Meter before: the mean of the ``n_periods`` whole settlement periods that end at or
    before the dispatch start ``start_utc``, applied flat to every period overlapping
    [start_utc, end_utc). A period the dispatch starts inside is not "before" and is not
    used. HELD_MISSING_DATA (naming the periods) unless all ``n_periods`` are present."""
    if n_periods < 1:
        raise ValueError("n_periods must be at least 1")
    method = "meter_before"
    parameters = {"n_periods": n_periods, "minutes": minutes,
                  "dispatch_start_utc": require_utc(start_utc, "start_utc")}
    last_end = period_start_containing(start_utc, minutes)
    step = timedelta(minutes=minutes)
    sources = tuple(last_end - step * k for k in range(n_periods, 0, -1))
    missing = tuple(s for s in sources if readings_kw.get(s) is None)
    if missing:
        return BaselineResult(method=method, status=BaselineStatus.HELD_MISSING_DATA,
                              missing_periods_utc=missing, parameters=parameters,
                              reason=f"held: missing data in {len(missing)} period(s) before "
                                     "the dispatch")
    value = mean(_present(readings_kw, sources))
    periods = tuple(BaselinePeriod(p.start_utc, value, sources)
                    for p in periods_between(start_utc, end_utc, minutes))
    return BaselineResult(method=method, status=BaselineStatus.COMPUTED, periods=periods,
                          parameters=parameters)


def nominated_baseline(profile_kw: Readings, *, received_at_utc: datetime,
                       gate_closure_utc: datetime, start_utc: datetime, end_utc: datetime,
                       minutes: int = DEFAULT_PERIOD_MINUTES) -> BaselineResult:
    """Nominated: the FSP's own profile for the periods overlapping [start_utc, end_utc).

    REJECTED if it was received after ``gate_closure_utc`` (at exactly gate closure is in
    time); HELD_MISSING_DATA if it lacks any of the periods."""
    method = "nominated"
    received = require_utc(received_at_utc, "received_at_utc")
    gate = require_utc(gate_closure_utc, "gate_closure_utc")
    parameters = {"received_at_utc": received, "gate_closure_utc": gate, "minutes": minutes}
    if received > gate:
        return BaselineResult(method=method, status=BaselineStatus.REJECTED,
                              parameters=parameters,
                              reason=f"nomination received {received.isoformat()}, after gate "
                                     f"closure {gate.isoformat()}")
    starts = [p.start_utc for p in periods_between(start_utc, end_utc, minutes)]
    missing = tuple(s for s in starts if profile_kw.get(s) is None)
    if missing:
        return BaselineResult(method=method, status=BaselineStatus.HELD_MISSING_DATA,
                              missing_periods_utc=missing, parameters=parameters,
                              reason=f"held: nomination lacks {len(missing)} period(s)")
    periods = tuple(BaselinePeriod(s, v, (s,)) for s, v in zip(starts, _present(profile_kw, starts),
                                                                strict=True))
    return BaselineResult(method=method, status=BaselineStatus.COMPUTED, periods=periods,
                          parameters=parameters)
