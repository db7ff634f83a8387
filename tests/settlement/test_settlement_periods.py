"""Settlement periods: London days of 46/48/50 half-hours, numbering, ranges, months."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from settlement.calc.periods import (
    LONDON,
    day_start_utc,
    hours_between,
    overlap_hours,
    period_containing,
    periods_between,
    periods_of_day,
    periods_of_month,
    settlement_period_number,
)

SPRING_FORWARD = date(2026, 3, 29)
FALL_BACK = date(2026, 10, 25)
ORDINARY = date(2026, 6, 10)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(("day", "minutes", "count"), [
    (ORDINARY, 30, 48),
    (SPRING_FORWARD, 30, 46),
    (FALL_BACK, 30, 50),
    (ORDINARY, 15, 96),
    (SPRING_FORWARD, 15, 92),
    (FALL_BACK, 15, 100),
])
def test_day_has_the_number_of_periods_its_length_allows(day, minutes, count):
    assert len(periods_of_day(day, minutes)) == count


def test_summer_day_starts_at_2300_utc_the_evening_before():
    periods = periods_of_day(ORDINARY)
    assert periods[0].start_utc == utc(2026, 6, 9, 23)
    assert periods[-1].end_utc == utc(2026, 6, 10, 23)


def test_winter_day_starts_at_midnight_utc():
    assert day_start_utc(date(2026, 12, 1)) == utc(2026, 12, 1, 0)


def test_periods_are_contiguous_and_numbered_from_one():
    periods = periods_of_day(FALL_BACK)
    assert [p.number for p in periods] == list(range(1, 51))
    assert all(a.end_utc == b.start_utc for a, b in zip(periods, periods[1:], strict=False))
    assert all(p.hours == Decimal("0.5") for p in periods)


def test_fall_back_day_has_two_periods_starting_at_0100_local():
    periods = periods_of_day(FALL_BACK)
    at_one = [p for p in periods if p.local_start.hour == 1 and p.local_start.minute == 0]
    assert [p.number for p in at_one] == [3, 5]
    assert [p.start_utc for p in at_one] == [utc(2026, 10, 25, 0), utc(2026, 10, 25, 1)]


def test_spring_forward_day_skips_from_0030_to_0200_local():
    periods = periods_of_day(SPRING_FORWARD)
    assert periods[1].local_start.time().isoformat() == "00:30:00"
    assert periods[2].local_start.time().isoformat() == "02:00:00"
    assert periods[2].number == 3


def test_period_number_counts_from_local_midnight():
    assert settlement_period_number(utc(2026, 6, 9, 23)) == 1
    assert settlement_period_number(utc(2026, 6, 10, 22, 30)) == 48
    assert settlement_period_number(utc(2026, 12, 1, 0, 30)) == 2


def test_last_period_of_fall_back_day_is_number_50():
    # The day runs 23:00 UTC on the 24th (BST) to 00:00 UTC on the 26th (GMT).
    assert settlement_period_number(utc(2026, 10, 26) - timedelta(minutes=30)) == 50


def test_period_number_with_15_minute_periods():
    assert settlement_period_number(utc(2026, 12, 1, 0, 45), minutes=15) == 4


def test_period_number_refuses_a_time_that_is_not_a_period_start():
    with pytest.raises(ValueError):
        settlement_period_number(utc(2026, 12, 1, 0, 10))


def test_period_length_must_divide_the_hour():
    with pytest.raises(ValueError):
        periods_of_day(ORDINARY, minutes=7)


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError):
        period_containing(datetime(2026, 6, 10, 12, 0))


def test_period_containing_an_instant_gives_its_day_and_number():
    period = period_containing(utc(2026, 6, 10, 11, 47))
    assert (period.start_utc, period.end_utc) == (utc(2026, 6, 10, 11, 30), utc(2026, 6, 10, 12))
    assert (period.day, period.number) == (ORDINARY, 26)


def test_range_includes_partly_covered_periods_at_both_ends():
    periods = periods_between(utc(2026, 12, 1, 10, 10), utc(2026, 12, 1, 11, 5))
    assert [p.start_utc for p in periods] == [
        utc(2026, 12, 1, 10), utc(2026, 12, 1, 10, 30), utc(2026, 12, 1, 11)]


def test_range_across_midnight_restarts_numbering_on_the_new_day():
    periods = periods_between(utc(2026, 12, 1, 23), utc(2026, 12, 2, 1))
    assert [(p.day, p.number) for p in periods] == [
        (date(2026, 12, 1), 47), (date(2026, 12, 1), 48),
        (date(2026, 12, 2), 1), (date(2026, 12, 2), 2)]


def test_range_across_the_autumn_clock_change_numbers_the_repeated_hour():
    periods = periods_between(utc(2026, 10, 25, 0), utc(2026, 10, 25, 2))
    assert [p.number for p in periods] == [3, 4, 5, 6]
    assert [p.local_start.hour for p in periods] == [1, 1, 1, 1]


def test_empty_range_has_no_periods():
    assert periods_between(utc(2026, 12, 1, 10), utc(2026, 12, 1, 10)) == []


def test_range_periods_match_day_periods():
    day = periods_of_day(FALL_BACK)
    assert periods_between(day[0].start_utc, day[-1].end_utc) == day


def test_month_with_both_clock_changes_counted_correctly():
    assert len(periods_of_month(2026, 10)) == 31 * 48 + 2
    assert len(periods_of_month(2026, 3)) == 31 * 48 - 2
    assert len(periods_of_month(2026, 12, minutes=15)) == 31 * 96


def test_month_starts_at_local_midnight_of_the_first():
    periods = periods_of_month(2026, 7)
    assert periods[0].start_utc == utc(2026, 6, 30, 23)
    assert periods[-1].end_utc == utc(2026, 7, 31, 23)
    assert periods[-1].start_utc.astimezone(LONDON).day == 31


def test_overlap_hours_of_a_partly_covered_period():
    period = period_containing(utc(2026, 12, 1, 10))
    assert overlap_hours(period, utc(2026, 12, 1, 10, 10), utc(2026, 12, 1, 12)) == (
        Decimal(20) / Decimal(60))
    assert overlap_hours(period, utc(2026, 12, 1, 11), utc(2026, 12, 1, 12)) == 0


def test_hours_between_is_exact_decimal():
    assert hours_between(utc(2026, 1, 1), utc(2026, 1, 1, 0, 15)) == Decimal("0.25")
