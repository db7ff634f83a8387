"""Money: utilisation and availability payments, penalties, performance scaling, rounding."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from settlement.calc.delivery import (
    DeliveryResult,
    Direction,
    DispatchOrder,
    PeriodDelivery,
    delivered_flexibility,
)
from settlement.calc.money import (
    AvailabilityDeclaration,
    PenaltyBasis,
    PerformanceScaling,
    PriceBasis,
    UtilisationTerms,
    availability_lines,
    price_periods,
    round_money,
    settle_period,
    settlement_totals,
)

D = Decimal


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def half_hour(*, ordered_kw: int, delivered_kw: int, start_hour: int = 17) -> PeriodDelivery:
    """One fully covered half-hour of a turn-down from a 1000 kW baseline."""
    start = utc(2026, 12, 16, start_hour)
    order = DispatchOrder(start, utc(2026, 12, 16, start_hour, 30), Direction.DOWN,
                          D(ordered_kw))
    result = delivered_flexibility(order, baseline_kw={start: D(1000)},
                                   actual_kw={start: D(1000 - delivered_kw)})
    return result.periods[0]


@pytest.mark.parametrize(("amount", "rounded"), [
    ("0.005", "0.01"), ("0.015", "0.02"), ("2.675", "2.68"), ("2.674999", "2.67"),
    ("-0.005", "-0.01"), ("10", "10.00"),
])
def test_money_rounds_half_up_to_the_penny(amount, rounded):
    assert round_money(D(amount)) == D(rounded)
    assert str(round_money(D(amount))) == rounded


def test_utilisation_payment_is_price_per_mwh_times_delivered_energy():
    line = settle_period(half_hour(ordered_kw=1000, delivered_kw=600),
                         UtilisationTerms(price_gbp=D(250)))
    assert line.paid_quantity == D("0.3")  # 600 kW for 0.5 h
    assert line.gross_payment_gbp == D("75.00")
    assert line.net_gbp == D("75.00")


def test_utilisation_payment_per_mw_per_period_ignores_the_period_length():
    terms = UtilisationTerms(price_gbp=D(10), price_basis=PriceBasis.PER_MW_PER_PERIOD)
    line = settle_period(half_hour(ordered_kw=1000, delivered_kw=600), terms)
    assert (line.paid_quantity, line.gross_payment_gbp) == (D("0.6"), D("6.00"))


def test_performance_below_the_scaling_threshold_scales_the_payment():
    terms = UtilisationTerms(price_gbp=D(200), scaling=PerformanceScaling())
    line = settle_period(half_hour(ordered_kw=1000, delivered_kw=700), terms)
    assert line.payment_factor == D("0.7")
    assert line.gross_payment_gbp == D("70.00")  # 0.35 MWh x 200
    assert line.performance_reduction_gbp == D("21.00")
    assert line.utilisation_payment_gbp == D("49.00")
    assert line.net_gbp == D("49.00")


def test_performance_exactly_at_the_threshold_is_not_scaled():
    terms = UtilisationTerms(price_gbp=D(200), scaling=PerformanceScaling())
    line = settle_period(half_hour(ordered_kw=1000, delivered_kw=800), terms)
    assert (line.payment_factor, line.performance_reduction_gbp) == (D(1), D(0))


def test_performance_below_the_floor_pays_nothing():
    terms = UtilisationTerms(price_gbp=D(200), scaling=PerformanceScaling())
    line = settle_period(half_hour(ordered_kw=1000, delivered_kw=400), terms)
    assert line.payment_factor == D(0)
    assert (line.gross_payment_gbp, line.performance_reduction_gbp) == (D("40.00"), D("40.00"))
    assert line.utilisation_payment_gbp == D("0.00")


def test_scaling_thresholds_are_parameters():
    terms = UtilisationTerms(price_gbp=D(200), scaling=PerformanceScaling(
        scale_below=D("0.95"), nothing_below=None))
    line = settle_period(half_hour(ordered_kw=1000, delivered_kw=400), terms)
    assert line.payment_factor == D("0.4")


def test_penalty_per_mw_per_hour_is_per_mwh_of_deficiency():
    terms = UtilisationTerms(price_gbp=D(0), penalty_rate_gbp=D(50))
    line = settle_period(half_hour(ordered_kw=1000, delivered_kw=600), terms)
    assert line.penalty_quantity == D("0.2")  # 400 kW short for 0.5 h
    assert line.deficiency_penalty_gbp == D("10.00")
    assert line.net_gbp == D("-10.00")


def test_penalty_per_mw_per_period_uses_the_average_shortfall():
    terms = UtilisationTerms(price_gbp=D(0), penalty_rate_gbp=D(50),
                             penalty_basis=PenaltyBasis.PER_MW_PER_PERIOD)
    line = settle_period(half_hour(ordered_kw=1000, delivered_kw=600), terms)
    assert (line.penalty_quantity, line.deficiency_penalty_gbp) == (D("0.4"), D("20.00"))


def test_flat_penalty_applies_once_to_any_period_with_a_deficiency():
    terms = UtilisationTerms(price_gbp=D(0), penalty_rate_gbp=D(25),
                             penalty_basis=PenaltyBasis.FLAT_PER_PERIOD)
    short = settle_period(half_hour(ordered_kw=1000, delivered_kw=999), terms)
    full = settle_period(half_hour(ordered_kw=1000, delivered_kw=1000), terms)
    assert (short.deficiency_penalty_gbp, full.deficiency_penalty_gbp) == (D("25.00"), D("0.00"))


def test_net_is_payment_less_reduction_less_penalty():
    terms = UtilisationTerms(price_gbp=D(200), penalty_rate_gbp=D(100),
                             scaling=PerformanceScaling())
    line = settle_period(half_hour(ordered_kw=1000, delivered_kw=700), terms)
    # 70.00 gross, 21.00 reduction, 0.15 MWh short x 100 = 15.00 penalty
    assert line.net_gbp == D("70.00") - D("21.00") - D("15.00")


def test_line_keeps_the_delivery_figures_for_the_statement():
    period = half_hour(ordered_kw=1000, delivered_kw=600)
    line = settle_period(period, UtilisationTerms(price_gbp=D(250)))
    assert line.delivery is period
    assert (line.delivery.baseline_kw, line.delivery.actual_kw) == (D(1000), D(400))


def test_totals_are_sums_of_rounded_lines():
    terms = UtilisationTerms(price_gbp=D(1), price_basis=PriceBasis.PER_MW_PER_PERIOD)
    lines = [settle_period(half_hour(ordered_kw=1000, delivered_kw=335, start_hour=h), terms)
             for h in (10, 11, 12)]
    assert [line.gross_payment_gbp for line in lines] == [D("0.34")] * 3  # 0.335 each
    assert settlement_totals(lines).gross_utilisation_gbp == D("1.02")  # not round(1.005)


def test_a_held_dispatch_cannot_be_priced():
    order = DispatchOrder(utc(2026, 12, 16, 17), utc(2026, 12, 16, 17, 30), Direction.DOWN,
                          D(1))
    held: DeliveryResult = delivered_flexibility(order, baseline_kw={}, actual_kw={})
    with pytest.raises(ValueError, match="held_missing_data"):
        price_periods(held, UtilisationTerms(price_gbp=D(1)))


def test_pricing_a_dispatch_gives_one_line_per_period():
    order = DispatchOrder(utc(2026, 12, 16, 17), utc(2026, 12, 16, 18), Direction.DOWN, D(1000))
    starts = [utc(2026, 12, 16, 17), utc(2026, 12, 16, 17, 30)]
    result = delivered_flexibility(order, baseline_kw=dict.fromkeys(starts, D(1000)),
                                   actual_kw=dict.fromkeys(starts, D(0)))
    lines = price_periods(result, UtilisationTerms(price_gbp=D(100)))
    assert [line.gross_payment_gbp for line in lines] == [D("50.00"), D("50.00")]


# --- availability ---------------------------------------------------------------------

def test_availability_pays_only_hours_inside_service_windows():
    declaration = AvailabilityDeclaration(utc(2026, 12, 16, 16), utc(2026, 12, 16, 20), D(2000))
    windows = [(utc(2026, 12, 16, 17), utc(2026, 12, 16, 19)),
               (utc(2026, 12, 16, 19, 30), utc(2026, 12, 16, 21))]
    lines = availability_lines([declaration], windows, price_gbp_per_mw_h=D(5))
    assert [(line.hours, line.payment_gbp) for line in lines] == [
        (D(2), D("20.00")), (D("0.5"), D("5.00"))]
    assert lines[0].declared_mw == D(2)


def test_overlapping_service_windows_do_not_pay_an_hour_twice():
    declaration = AvailabilityDeclaration(utc(2026, 12, 16, 16), utc(2026, 12, 16, 20), D(1000))
    windows = [(utc(2026, 12, 16, 17), utc(2026, 12, 16, 19)),
               (utc(2026, 12, 16, 18), utc(2026, 12, 16, 20))]
    (line,) = availability_lines([declaration], windows, price_gbp_per_mw_h=D(5))
    assert (line.hours, line.payment_gbp) == (D(3), D("15.00"))


def test_availability_outside_every_window_earns_nothing():
    declaration = AvailabilityDeclaration(utc(2026, 12, 16, 8), utc(2026, 12, 16, 9), D(1000))
    windows = [(utc(2026, 12, 16, 17), utc(2026, 12, 16, 19))]
    assert availability_lines([declaration], windows, price_gbp_per_mw_h=D(5)) == ()


def test_overlapping_declarations_are_refused():
    first = AvailabilityDeclaration(utc(2026, 12, 16, 8), utc(2026, 12, 16, 10), D(1))
    second = AvailabilityDeclaration(utc(2026, 12, 16, 9), utc(2026, 12, 16, 11), D(1))
    with pytest.raises(ValueError):
        availability_lines([first, second], [], price_gbp_per_mw_h=D(1))


def test_totals_net_availability_payments_and_penalties():
    availability = availability_lines(
        [AvailabilityDeclaration(utc(2026, 12, 16, 17), utc(2026, 12, 16, 18), D(1000))],
        [(utc(2026, 12, 16, 17), utc(2026, 12, 16, 18))], price_gbp_per_mw_h=D(10))
    terms = UtilisationTerms(price_gbp=D(200), penalty_rate_gbp=D(100))
    utilisation = [settle_period(half_hour(ordered_kw=1000, delivered_kw=600), terms)]
    totals = settlement_totals(utilisation, availability)
    # 10.00 availability + 60.00 utilisation - 20.00 penalty (0.2 MWh short x 100)
    assert (totals.availability_gbp, totals.gross_utilisation_gbp,
            totals.deficiency_penalty_gbp) == (D("10.00"), D("60.00"), D("20.00"))
    assert totals.net_gbp == D("50.00")
