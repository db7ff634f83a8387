"""The settlement example of USEF/UFTP section 2.6.2, row by row.

One ISP; initial baseline 10 MW; 2 MW of flexibility ordered (adjusted baseline 8 MW);
flex price 7 per MW and a single-sided baseline-deviation penalty of 11 per MW, both per
ISP (no hours involved). The example is in euro; the arithmetic is currency-blind.

It is expressed with the ordinary functions: a DOWN delta order of 2000 kW, prices on the
per-MW-per-period basis, and the USEF deficiency rule (deviation above the adjusted
baseline, not capped at the order). The table's "penalty raised" is the penalty with a
minus sign; "settlement" is our net.
"""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from settlement.calc.delivery import (
    DeficiencyRule,
    DeliveryStatus,
    Direction,
    DispatchOrder,
    delivered_flexibility,
)
from settlement.calc.money import (
    PenaltyBasis,
    PriceBasis,
    UtilisationTerms,
    price_periods,
    settlement_totals,
)

ISP_START = datetime(2026, 12, 16, 17, tzinfo=UTC)
ISP_END = datetime(2026, 12, 16, 17, 15, tzinfo=UTC)  # a 15-minute ISP
BASELINE_KW = Decimal(10_000)
ORDERED_KW = Decimal(2_000)
TERMS = UtilisationTerms(price_gbp=Decimal(7), price_basis=PriceBasis.PER_MW_PER_PERIOD,
                         penalty_rate_gbp=Decimal(11),
                         penalty_basis=PenaltyBasis.PER_MW_PER_PERIOD)
KW_PER_MW = Decimal(1000)

# allocation MW, flex realized MW, delivered MW, flex paid, baseline deviation MW,
# power deficiency MW, penalty raised, settlement
TABLE = [
    (7, 3, 2, 14, -1, 0, 0, 14),
    (8, 2, 2, 14, 0, 0, 0, 14),
    (9, 1, 1, 7, 1, 1, -11, -4),
    (10, 0, 0, 0, 2, 2, -22, -22),
    (11, -1, 0, 0, 3, 3, -33, -33),
]


@pytest.mark.parametrize(
    ("allocation", "flex_realized", "delivered", "flex_paid", "baseline_deviation",
     "power_deficiency", "penalty_raised", "settlement"),
    TABLE, ids=[f"allocation-{row[0]}MW" for row in TABLE])
def test_usef_settlement_example_row(allocation, flex_realized, delivered, flex_paid,
                                     baseline_deviation, power_deficiency, penalty_raised,
                                     settlement):
    order = DispatchOrder(ISP_START, ISP_END, Direction.DOWN, ORDERED_KW)
    result = delivered_flexibility(
        order, baseline_kw={ISP_START: BASELINE_KW},
        actual_kw={ISP_START: Decimal(allocation) * KW_PER_MW}, minutes=15,
        deficiency_rule=DeficiencyRule.ADJUSTED_BASELINE)
    assert result.status is DeliveryStatus.ASSESSED
    (line,) = price_periods(result, TERMS)
    period = line.delivery

    assert period.adjusted_baseline_kw / KW_PER_MW == 8
    assert period.actual_kw / KW_PER_MW == allocation
    assert period.realized_kw / KW_PER_MW == flex_realized
    assert period.delivered_kw / KW_PER_MW == delivered
    assert line.gross_payment_gbp == flex_paid
    assert period.baseline_deviation_kw / KW_PER_MW == baseline_deviation
    assert period.deficiency_kw / KW_PER_MW == power_deficiency
    assert -line.deficiency_penalty_gbp == penalty_raised
    assert line.net_gbp == settlement


def test_usef_example_totals_are_sums_of_the_rows():
    # The five realizations as five consecutive ISPs of one 2 MW order.
    starts = [ISP_START + timedelta(minutes=15 * i) for i in range(len(TABLE))]
    order = DispatchOrder(starts[0], starts[-1] + timedelta(minutes=15), Direction.DOWN,
                          ORDERED_KW)
    result = delivered_flexibility(
        order, baseline_kw=dict.fromkeys(starts, BASELINE_KW),
        actual_kw={s: Decimal(row[0]) * KW_PER_MW for s, row in zip(starts, TABLE, strict=True)},
        minutes=15, deficiency_rule=DeficiencyRule.ADJUSTED_BASELINE)
    totals = settlement_totals(price_periods(result, TERMS))
    assert sum(p.delivered_kw for p in result.periods) / KW_PER_MW == sum(r[2] for r in TABLE)
    assert sum(p.deficiency_kw for p in result.periods) / KW_PER_MW == sum(r[5] for r in TABLE)
    assert totals.net_gbp == sum(r[7] for r in TABLE)
