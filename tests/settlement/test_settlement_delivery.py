"""Delivered flexibility: delta and absolute orders, import and export units, partial,
over- and wrong-way delivery, proration of partly covered periods, midnight and clock
changes, missing data. Power in kW, consumption positive."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from settlement.calc.delivery import (
    DeficiencyRule,
    DeliveryStatus,
    Direction,
    DispatchOrder,
    PeriodDelivery,
    SetpointType,
    delivered_flexibility,
)

D = Decimal
START = datetime(2026, 12, 16, 17, tzinfo=UTC)
END = datetime(2026, 12, 16, 17, 30, tzinfo=UTC)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def one_period(*, baseline: str, actual: str, direction: Direction, quantity: str,
               setpoint_type: SetpointType = SetpointType.DELTA,
               pay_over_delivery: bool = False,
               deficiency_rule: DeficiencyRule = DeficiencyRule.SHORTFALL) -> PeriodDelivery:
    order = DispatchOrder(START, END, direction, D(quantity), setpoint_type)
    result = delivered_flexibility(order, baseline_kw={START: D(baseline)},
                                   actual_kw={START: D(actual)},
                                   pay_over_delivery=pay_over_delivery,
                                   deficiency_rule=deficiency_rule)
    assert result.status is DeliveryStatus.ASSESSED
    (period,) = result.periods
    return period


# --- delta orders, import unit --------------------------------------------------------

def test_full_delivery_of_a_demand_turn_down():
    p = one_period(baseline="1000", actual="0", direction=Direction.DOWN, quantity="1000")
    assert (p.realized_kw, p.delivered_kw, p.deficiency_kw, p.performance) == (
        D(1000), D(1000), D(0), D(1))
    assert p.delivered_kwh == D(500)


def test_partial_delivery_leaves_a_deficiency():
    p = one_period(baseline="1000", actual="400", direction=Direction.DOWN, quantity="1000")
    assert (p.delivered_kw, p.deficiency_kw, p.performance) == (D(600), D(400), D("0.6"))
    assert (p.ordered_kwh, p.delivered_kwh, p.deficiency_kwh) == (D(500), D(300), D(200))
    assert p.adjusted_baseline_kw == D(0)
    assert p.baseline_deviation_kw == D(400)


def test_over_delivery_is_capped_and_reported_separately():
    p = one_period(baseline="1000", actual="-200", direction=Direction.DOWN, quantity="1000")
    assert (p.realized_kw, p.delivered_kw, p.over_delivery_kw) == (D(1200), D(1000), D(200))
    assert (p.deficiency_kw, p.performance) == (D(0), D(1))
    assert p.over_delivery_kwh == D(100)


def test_over_delivery_is_paid_when_the_contract_says_so():
    p = one_period(baseline="1000", actual="-200", direction=Direction.DOWN, quantity="1000",
                   pay_over_delivery=True)
    assert (p.delivered_kw, p.over_delivery_kw, p.performance) == (D(1200), D(200), D(1))


def test_wrong_way_delivery_delivers_nothing_and_falls_short_by_the_order():
    p = one_period(baseline="1000", actual="1300", direction=Direction.DOWN, quantity="1000")
    assert (p.realized_kw, p.delivered_kw, p.deficiency_kw, p.performance) == (
        D(-300), D(0), D(1000), D(0))
    assert p.baseline_deviation_kw == D(1300)


def test_wrong_way_delivery_under_the_usef_rule_counts_the_whole_excess():
    p = one_period(baseline="1000", actual="1300", direction=Direction.DOWN, quantity="1000",
                   deficiency_rule=DeficiencyRule.ADJUSTED_BASELINE)
    assert (p.delivered_kw, p.deficiency_kw) == (D(0), D(1300))


def test_demand_turn_up_is_measured_upward():
    p = one_period(baseline="200", actual="500", direction=Direction.UP, quantity="500")
    assert (p.realized_kw, p.delivered_kw, p.deficiency_kw) == (D(300), D(300), D(200))
    assert p.adjusted_baseline_kw == D(700)


def test_nothing_ordered_means_full_performance():
    p = one_period(baseline="1000", actual="900", direction=Direction.DOWN, quantity="0")
    assert (p.ordered_kw, p.delivered_kw, p.over_delivery_kw, p.performance) == (
        D(0), D(0), D(100), D(1))


def test_delta_quantity_must_be_a_magnitude():
    with pytest.raises(ValueError):
        DispatchOrder(START, END, Direction.DOWN, D(-5))


# --- export units (export is negative power) ------------------------------------------

def test_generator_asked_to_export_2_mw_more_delivers_part():
    p = one_period(baseline="-3000", actual="-4500", direction=Direction.DOWN, quantity="2000")
    assert (p.realized_kw, p.delivered_kw, p.deficiency_kw, p.performance) == (
        D(1500), D(1500), D(500), D("0.75"))
    assert p.adjusted_baseline_kw == D(-5000)


def test_generator_asked_to_export_less_moves_toward_import():
    p = one_period(baseline="-3000", actual="-1000", direction=Direction.UP, quantity="2000")
    assert (p.delivered_kw, p.deficiency_kw) == (D(2000), D(0))


def test_generator_exporting_less_when_asked_for_more_is_wrong_way():
    p = one_period(baseline="-3000", actual="-2500", direction=Direction.DOWN, quantity="2000")
    assert (p.realized_kw, p.delivered_kw, p.deficiency_kw) == (D(-500), D(0), D(2000))


# --- absolute setpoints ---------------------------------------------------------------

def test_absolute_setpoint_orders_the_gap_from_baseline():
    p = one_period(baseline="1000", actual="500", direction=Direction.DOWN, quantity="300",
                   setpoint_type=SetpointType.ABSOLUTE)
    assert (p.ordered_kw, p.delivered_kw, p.deficiency_kw) == (D(700), D(500), D(200))
    assert p.instructed_kw == D(300)
    assert p.adjusted_baseline_kw == D(300)


def test_absolute_setpoint_overshoot_is_over_delivery():
    p = one_period(baseline="1000", actual="100", direction=Direction.DOWN, quantity="300",
                   setpoint_type=SetpointType.ABSOLUTE)
    assert (p.delivered_kw, p.over_delivery_kw) == (D(700), D(200))


def test_absolute_export_setpoint_for_a_generator():
    # exporting 1 MW, told to export 3 MW, reaches 2.5 MW
    p = one_period(baseline="-1000", actual="-2500", direction=Direction.DOWN, quantity="-3000",
                   setpoint_type=SetpointType.ABSOLUTE)
    assert (p.ordered_kw, p.delivered_kw, p.deficiency_kw) == (D(2000), D(1500), D(500))


def test_absolute_setpoint_beyond_baseline_in_the_other_direction_orders_nothing():
    p = one_period(baseline="300", actual="300", direction=Direction.DOWN, quantity="500",
                   setpoint_type=SetpointType.ABSOLUTE)
    assert (p.ordered_kw, p.delivered_kw, p.deficiency_kw, p.performance) == (
        D(0), D(0), D(0), D(1))


# --- cutting a dispatch into periods --------------------------------------------------

def test_partly_covered_period_prorates_the_order_by_the_covered_fraction():
    order = DispatchOrder(utc(2026, 12, 16, 10, 15), utc(2026, 12, 16, 11), Direction.DOWN,
                          D(1000))
    baseline = {utc(2026, 12, 16, 10): D(1000), utc(2026, 12, 16, 10, 30): D(1000)}
    actual = {utc(2026, 12, 16, 10): D(600), utc(2026, 12, 16, 10, 30): D(0)}
    first, second = delivered_flexibility(order, baseline_kw=baseline, actual_kw=actual).periods
    assert (first.overlap_hours, first.overlap_fraction) == (D("0.25"), D("0.5"))
    assert (first.ordered_kw, first.delivered_kw, first.deficiency_kw) == (D(500), D(400), D(100))
    assert first.ordered_kwh == D(250)  # 1000 kW for the 0.25 h of overlap
    assert first.delivered_kwh == D(200)
    assert (second.overlap_fraction, second.ordered_kw, second.delivered_kw) == (
        D(1), D(1000), D(1000))


def test_dispatch_spanning_midnight_covers_periods_of_both_days():
    order = DispatchOrder(utc(2026, 12, 16, 23), utc(2026, 12, 17, 1), Direction.DOWN, D(100))
    starts = [utc(2026, 12, 16, 23), utc(2026, 12, 16, 23, 30), utc(2026, 12, 17, 0),
              utc(2026, 12, 17, 0, 30)]
    result = delivered_flexibility(order, baseline_kw=dict.fromkeys(starts, D(300)),
                                   actual_kw=dict.fromkeys(starts, D(250)))
    assert [(p.day, p.number) for p in result.periods] == [
        (date(2026, 12, 16), 47), (date(2026, 12, 16), 48),
        (date(2026, 12, 17), 1), (date(2026, 12, 17), 2)]
    assert (result.ordered_kwh, result.delivered_kwh, result.deficiency_kwh) == (
        D(200), D(100), D(100))


def test_dispatch_over_the_autumn_repeated_hour_settles_four_half_hours():
    # 01:00-02:00 local happens twice on 25 October 2026: 00:00-02:00 UTC
    order = DispatchOrder(utc(2026, 10, 25, 0), utc(2026, 10, 25, 2), Direction.DOWN, D(100))
    starts = [utc(2026, 10, 25, 0), utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1),
              utc(2026, 10, 25, 1, 30)]
    result = delivered_flexibility(order, baseline_kw=dict.fromkeys(starts, D(300)),
                                   actual_kw=dict.fromkeys(starts, D(200)))
    assert [p.number for p in result.periods] == [3, 4, 5, 6]
    assert result.delivered_kwh == D(200)  # 100 kW for 2 hours


def test_15_minute_periods_cut_an_hour_into_four():
    order = DispatchOrder(utc(2026, 12, 16, 10), utc(2026, 12, 16, 11), Direction.DOWN, D(100))
    starts = [utc(2026, 12, 16, 10, m) for m in (0, 15, 30, 45)]
    result = delivered_flexibility(order, baseline_kw=dict.fromkeys(starts, D(300)),
                                   actual_kw=dict.fromkeys(starts, D(200)), minutes=15)
    assert [p.period_hours for p in result.periods] == [D("0.25")] * 4
    assert result.delivered_kwh == D(100)


# --- missing data ---------------------------------------------------------------------

def test_missing_actual_holds_the_dispatch_naming_the_period():
    order = DispatchOrder(utc(2026, 12, 16, 10), utc(2026, 12, 16, 11), Direction.DOWN, D(100))
    baseline = {utc(2026, 12, 16, 10): D(300), utc(2026, 12, 16, 10, 30): D(300)}
    actual = {utc(2026, 12, 16, 10): D(200), utc(2026, 12, 16, 10, 30): None}
    result = delivered_flexibility(order, baseline_kw=baseline, actual_kw=actual)
    assert result.status is DeliveryStatus.HELD_MISSING_DATA
    assert result.missing_periods_utc == (utc(2026, 12, 16, 10, 30),)
    assert result.periods == ()
    assert result.reason.startswith("held: missing")


def test_missing_baseline_holds_the_dispatch():
    order = DispatchOrder(utc(2026, 12, 16, 10), utc(2026, 12, 16, 10, 30), Direction.DOWN,
                          D(100))
    result = delivered_flexibility(order, baseline_kw={},
                                   actual_kw={utc(2026, 12, 16, 10): D(0)})
    assert result.missing_periods_utc == (utc(2026, 12, 16, 10),)


def test_proration_over_a_third_of_an_hour_is_exact():
    order = DispatchOrder(utc(2026, 12, 16, 17, 10), utc(2026, 12, 16, 17, 30), Direction.DOWN,
                          D(300))
    (period,) = delivered_flexibility(order, baseline_kw={utc(2026, 12, 16, 17): D(500)},
                                      actual_kw={utc(2026, 12, 16, 17): D(300)}).periods
    assert (period.ordered_kw, period.delivered_kw, period.deficiency_kw) == (D(200), D(200), 0)
    assert period.ordered_kwh == D(100)  # 300 kW for 20 minutes
