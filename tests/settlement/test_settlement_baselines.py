"""Baselines: High X of Y, average of Y, meter before, nominated; eligibility and missing data.

Target day in most tests is Wednesday 2026-12-16; the working days before it are
Tue 15, Mon 14, Fri 11, Thu 10, Wed 9, Tue 8, Mon 7, ...
"""

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from settlement.calc.baselines import (
    BaselineStatus,
    ExclusionReason,
    average_of_y_baseline,
    high_x_of_y_baseline,
    is_working_day,
    meter_before_baseline,
    nominated_baseline,
    select_history_days,
)
from settlement.calc.periods import LONDON, SettlementPeriod, periods_of_day

TARGET = date(2026, 12, 16)
D = Decimal


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def history(levels: dict[date, Decimal | None | Callable[[SettlementPeriod], Decimal | None]]
            ) -> dict[datetime, Decimal | None]:
    """Readings for whole days: a flat kW level, None for every period, or a function."""
    readings: dict[datetime, Decimal | None] = {}
    for day, level in levels.items():
        for period in periods_of_day(day):
            readings[period.start_utc] = level(period) if callable(level) else level
    return readings


def days_back(n: int, start: date = TARGET) -> list[date]:
    return [start - timedelta(days=i) for i in range(1, n + 1)]


def flat_history(n: int = 40) -> dict[datetime, Decimal | None]:
    return history({day: D(100) for day in days_back(n)})


# --- day selection --------------------------------------------------------------------

def test_working_day_is_monday_to_friday_except_holidays():
    assert is_working_day(date(2026, 12, 24))
    assert not is_working_day(date(2026, 12, 25), holidays={date(2026, 12, 25)})
    assert not is_working_day(date(2026, 12, 19))


def test_history_days_are_the_most_recent_of_the_same_day_type():
    selection = select_history_days(flat_history(), target_day=TARGET, y=5)
    assert selection.days_used == (date(2026, 12, 15), date(2026, 12, 14), date(2026, 12, 11),
                                   date(2026, 12, 10), date(2026, 12, 9))
    assert [(e.day, e.reason) for e in selection.days_excluded] == [
        (date(2026, 12, 13), ExclusionReason.OTHER_DAY_TYPE),
        (date(2026, 12, 12), ExclusionReason.OTHER_DAY_TYPE)]


def test_non_working_target_uses_weekends_and_holidays():
    target = date(2026, 12, 25)  # a Friday holiday
    holidays = {date(2026, 12, 25), date(2026, 12, 8)}
    selection = select_history_days(history({d: D(1) for d in days_back(40, target)}),
                                    target_day=target, y=5, holidays=holidays)
    assert selection.days_used == (date(2026, 12, 20), date(2026, 12, 19), date(2026, 12, 13),
                                   date(2026, 12, 12), date(2026, 12, 8))


def test_dispatched_days_are_excluded():
    selection = select_history_days(flat_history(), target_day=TARGET, y=5,
                                    dispatched_days={date(2026, 12, 14)})
    assert date(2026, 12, 14) not in selection.days_used
    assert selection.days_used[-1] == date(2026, 12, 8)
    assert (date(2026, 12, 14), ExclusionReason.DISPATCHED) in [
        (e.day, e.reason) for e in selection.days_excluded]


def test_a_day_with_one_missing_period_is_excluded_and_the_period_named():
    readings = flat_history()
    gap = periods_of_day(date(2026, 12, 15))[20].start_utc
    readings[gap] = None
    selection = select_history_days(readings, target_day=TARGET, y=5)
    assert date(2026, 12, 15) not in selection.days_used
    excluded = selection.days_excluded[0]
    assert (excluded.day, excluded.reason, excluded.missing_periods_utc) == (
        date(2026, 12, 15), ExclusionReason.INCOMPLETE_DATA, (gap,))


def test_an_absent_reading_counts_as_missing_not_zero():
    readings = flat_history()
    del readings[periods_of_day(date(2026, 12, 15))[0].start_utc]
    selection = select_history_days(readings, target_day=TARGET, y=5)
    assert date(2026, 12, 15) not in selection.days_used


def test_clock_change_days_are_not_used_as_history():
    target = date(2026, 11, 1)  # Sunday; Sunday 25 October is the fall-back day
    readings = history({d: D(1) for d in days_back(30, target)})
    selection = select_history_days(readings, target_day=target, y=3)
    assert selection.days_used == (date(2026, 10, 31), date(2026, 10, 24), date(2026, 10, 18))
    assert (date(2026, 10, 25), ExclusionReason.CLOCK_CHANGE) in [
        (e.day, e.reason) for e in selection.days_excluded]


# --- High X of Y ----------------------------------------------------------------------

def test_high_3_of_5_is_the_mean_of_the_three_highest_days():
    levels = {date(2026, 12, 15): D(10), date(2026, 12, 14): D(50), date(2026, 12, 11): D(20),
              date(2026, 12, 10): D(40), date(2026, 12, 9): D(30), date(2026, 12, 8): D(99)}
    result = high_x_of_y_baseline(history(levels), target_day=TARGET)
    assert result.status is BaselineStatus.COMPUTED
    assert set(result.values_kw().values()) == {D(40)}  # (50 + 40 + 30) / 3
    assert len(result.periods) == 48


def test_high_x_of_y_cites_the_periods_it_averaged():
    levels = {date(2026, 12, 15): D(10), date(2026, 12, 14): D(50), date(2026, 12, 11): D(20),
              date(2026, 12, 10): D(40), date(2026, 12, 9): D(30)}
    result = high_x_of_y_baseline(history(levels), target_day=TARGET)
    first = result.periods[0]
    assert first.start_utc == utc(2026, 12, 16, 0)
    assert first.source_starts_utc == (utc(2026, 12, 14), utc(2026, 12, 10), utc(2026, 12, 9))
    assert result.days_used == tuple(levels)


def test_high_x_of_y_ranks_each_period_separately():
    def morning_peak_on_the_15th(period: SettlementPeriod) -> Decimal:
        return D(100) if period.number == 1 else D(0)
    levels = {date(2026, 12, 15): morning_peak_on_the_15th, date(2026, 12, 14): D(10),
              date(2026, 12, 11): D(10), date(2026, 12, 10): D(1), date(2026, 12, 9): D(1)}
    values = list(high_x_of_y_baseline(history(levels), target_day=TARGET).values_kw().values())
    assert values[0] == D(40)  # (100 + 10 + 10) / 3
    assert values[1] == D(7)  # (10 + 10 + 1) / 3


def test_high_x_of_y_breaks_ties_toward_the_more_recent_day():
    levels = {day: D(5) for day in days_back(7)}
    result = high_x_of_y_baseline(history(levels), target_day=TARGET, x=2, y=5)
    assert result.periods[0].source_starts_utc == (utc(2026, 12, 15), utc(2026, 12, 14))


def test_high_x_of_y_for_an_exporter_picks_the_days_of_least_export():
    levels = {date(2026, 12, 15): D(-10), date(2026, 12, 14): D(-50), date(2026, 12, 11): D(-20),
              date(2026, 12, 10): D(-40), date(2026, 12, 9): D(-30)}
    result = high_x_of_y_baseline(history(levels), target_day=TARGET)
    assert result.periods[0].baseline_kw == D(-20)  # (-10 - 20 - 30) / 3


def test_high_x_of_y_keeps_full_decimal_precision():
    levels = {date(2026, 12, 15): D(1), date(2026, 12, 14): D(1), date(2026, 12, 11): D(2),
              date(2026, 12, 10): D(0), date(2026, 12, 9): D(0)}
    result = high_x_of_y_baseline(history(levels), target_day=TARGET)
    assert result.periods[0].baseline_kw == D(4) / D(3)


def test_too_few_eligible_days_is_not_computable_and_says_why():
    levels = {date(2026, 12, 15): D(1), date(2026, 12, 14): D(1), date(2026, 12, 11): D(1),
              date(2026, 12, 10): D(1)}
    result = high_x_of_y_baseline(history(levels), target_day=TARGET)
    assert result.status is BaselineStatus.NOT_COMPUTABLE
    assert result.periods == ()
    assert "only 4 eligible day(s) of the 5 required" in result.reason
    assert len(result.days_used) == 4


def test_look_back_is_bounded():
    readings = flat_history()
    for day in days_back(12):  # wipe the last 12 days; older complete days remain
        readings.update(history({day: None}))
    assert not high_x_of_y_baseline(readings, target_day=TARGET, lookback_days=14).computed
    assert high_x_of_y_baseline(readings, target_day=TARGET, lookback_days=30).computed


def test_autumn_target_gives_both_0100_periods_the_0100_history_value():
    target = date(2026, 10, 25)  # Sunday, 50 periods

    def by_wall_clock(period: SettlementPeriod) -> Decimal:
        local = period.start_utc.astimezone(LONDON)
        return D(local.hour * 100 + local.minute)
    readings = history({d: by_wall_clock for d in days_back(40, target)})
    result = high_x_of_y_baseline(readings, target_day=target)
    assert len(result.periods) == 50
    values = [p.baseline_kw for p in result.periods]
    assert values[2] == values[4] == D(100)  # periods 3 and 5 both start 01:00 local
    assert values[3] == values[5] == D(130)
    assert values[6] == D(200)


def test_spring_target_matches_its_0200_period_to_the_0200_history_period():
    target = date(2026, 3, 29)  # Sunday, 46 periods

    def by_wall_clock(period: SettlementPeriod) -> Decimal:
        local = period.start_utc.astimezone(LONDON)
        return D(local.hour * 100 + local.minute)
    readings = history({d: by_wall_clock for d in days_back(40, target)})
    result = high_x_of_y_baseline(readings, target_day=target)
    assert len(result.periods) == 46
    assert result.periods[2].start_utc == utc(2026, 3, 29, 1)  # 02:00 BST
    assert result.periods[2].baseline_kw == D(200)
    assert result.periods[2].source_starts_utc[0] == utc(2026, 3, 28, 2)  # 02:00 GMT


# --- Average of Y ---------------------------------------------------------------------

def test_average_of_y_is_the_mean_of_all_y_days():
    levels = {date(2026, 12, 15): D(10), date(2026, 12, 14): D(50), date(2026, 12, 11): D(20),
              date(2026, 12, 10): D(40), date(2026, 12, 9): D(30)}
    result = average_of_y_baseline(history(levels), target_day=TARGET)
    assert result.method == "average_of_y"
    assert set(result.values_kw().values()) == {D(30)}
    assert len(result.periods[0].source_starts_utc) == 5


def test_average_of_y_with_too_few_days_is_not_computable():
    levels = {date(2026, 12, 15): D(10)}
    result = average_of_y_baseline(history(levels), target_day=TARGET, y=2)
    assert result.status is BaselineStatus.NOT_COMPUTABLE


# --- Meter before ---------------------------------------------------------------------

def test_meter_before_is_the_mean_of_the_n_periods_before_the_dispatch():
    readings = {utc(2026, 12, 16, 9): D(10), utc(2026, 12, 16, 9, 30): D(20),
                utc(2026, 12, 16, 10): D(30), utc(2026, 12, 16, 10, 30): D(1000)}
    result = meter_before_baseline(readings, start_utc=utc(2026, 12, 16, 10, 30),
                                   end_utc=utc(2026, 12, 16, 11, 30), n_periods=3)
    assert result.values_kw() == {utc(2026, 12, 16, 10, 30): D(20), utc(2026, 12, 16, 11): D(20)}
    assert result.periods[0].source_starts_utc == (
        utc(2026, 12, 16, 9), utc(2026, 12, 16, 9, 30), utc(2026, 12, 16, 10))


def test_meter_before_skips_the_period_the_dispatch_starts_inside():
    readings = {utc(2026, 12, 16, 9, 30): D(20), utc(2026, 12, 16, 10): D(30),
                utc(2026, 12, 16, 10, 30): D(1000)}
    result = meter_before_baseline(readings, start_utc=utc(2026, 12, 16, 10, 40),
                                   end_utc=utc(2026, 12, 16, 11), n_periods=2)
    assert result.values_kw() == {utc(2026, 12, 16, 10, 30): D(25)}


def test_meter_before_with_a_missing_period_is_held_naming_it():
    readings = {utc(2026, 12, 16, 9): D(10), utc(2026, 12, 16, 9, 30): None}
    result = meter_before_baseline(readings, start_utc=utc(2026, 12, 16, 10),
                                   end_utc=utc(2026, 12, 16, 11), n_periods=2)
    assert result.status is BaselineStatus.HELD_MISSING_DATA
    assert result.missing_periods_utc == (utc(2026, 12, 16, 9, 30),)
    assert result.reason.startswith("held: missing data")
    assert result.periods == ()


def test_meter_before_looks_back_across_midnight():
    readings = {utc(2026, 12, 15, 23, 30): D(8), utc(2026, 12, 16, 0): D(12)}
    result = meter_before_baseline(readings, start_utc=utc(2026, 12, 16, 0, 30),
                                   end_utc=utc(2026, 12, 16, 1), n_periods=2)
    assert result.values_kw() == {utc(2026, 12, 16, 0, 30): D(10)}


# --- Nominated ------------------------------------------------------------------------

NOMINATION = {utc(2026, 12, 16, 17): D(400), utc(2026, 12, 16, 17, 30): D(420)}


def test_nomination_before_gate_closure_is_the_baseline():
    result = nominated_baseline(NOMINATION, received_at_utc=utc(2026, 12, 16, 12),
                                gate_closure_utc=utc(2026, 12, 16, 13),
                                start_utc=utc(2026, 12, 16, 17), end_utc=utc(2026, 12, 16, 18))
    assert result.status is BaselineStatus.COMPUTED
    assert result.values_kw() == NOMINATION


def test_nomination_received_exactly_at_gate_closure_is_accepted():
    result = nominated_baseline(NOMINATION, received_at_utc=utc(2026, 12, 16, 13),
                                gate_closure_utc=utc(2026, 12, 16, 13),
                                start_utc=utc(2026, 12, 16, 17), end_utc=utc(2026, 12, 16, 18))
    assert result.computed


def test_nomination_after_gate_closure_is_rejected():
    result = nominated_baseline(NOMINATION, received_at_utc=utc(2026, 12, 16, 13, 0, 1),
                                gate_closure_utc=utc(2026, 12, 16, 13),
                                start_utc=utc(2026, 12, 16, 17), end_utc=utc(2026, 12, 16, 18))
    assert result.status is BaselineStatus.REJECTED
    assert "after gate closure" in result.reason
    assert result.periods == ()


def test_nomination_lacking_a_period_is_held_naming_it():
    result = nominated_baseline(NOMINATION, received_at_utc=utc(2026, 12, 16, 12),
                                gate_closure_utc=utc(2026, 12, 16, 13),
                                start_utc=utc(2026, 12, 16, 17), end_utc=utc(2026, 12, 16, 18, 30))
    assert result.status is BaselineStatus.HELD_MISSING_DATA
    assert result.missing_periods_utc == (utc(2026, 12, 16, 18),)


def test_only_the_periods_asked_for_are_worked_out_with_the_same_days_and_values():
    readings = history({day: (lambda p, d=day: D(d.day * 10 + p.number) / 3)
                        for day in days_back(40)})
    wanted = {utc(2026, 12, 16, 17, 0), utc(2026, 12, 16, 17, 30)}
    for method in (high_x_of_y_baseline, average_of_y_baseline):
        whole = method(readings, target_day=TARGET, dispatched_days={date(2026, 12, 11)})
        part = method(readings, target_day=TARGET, dispatched_days={date(2026, 12, 11)},
                      only=wanted)
        assert [p.start_utc for p in part.periods] == sorted(wanted)
        assert part.periods == tuple(p for p in whole.periods if p.start_utc in wanted)
        assert (part.days_used, part.days_excluded) == (whole.days_used, whole.days_excluded)


def test_autumn_target_asked_for_its_second_0100_period_gets_the_0100_value():
    target = date(2026, 10, 25)
    second = utc(2026, 10, 25, 1, 0)  # period 5: 01:00 local, winter time

    def by_wall_clock(period: SettlementPeriod) -> Decimal:
        local = period.start_utc.astimezone(LONDON)
        return D(local.hour * 100 + local.minute)
    readings = history({d: by_wall_clock for d in days_back(40, target)})
    result = high_x_of_y_baseline(readings, target_day=target, only={second})
    assert [(p.start_utc, p.baseline_kw) for p in result.periods] == [(second, D(100))]
