"""Delivered flexibility per dispatch and settlement period (the USEF approach).

Conventions: power in kW and energy in kWh as ``Decimal``; power positive = consumption
(import), negative = export (UFTP). Baseline and actual are the *average* power over a
settlement period, keyed by the period's UTC start. ``None`` or an absent key is missing
data: the whole dispatch is then HELD_MISSING_DATA, naming the periods; it is never zero.

Direction is in consumption terms: ``DOWN`` moves power toward export (less import or more
export), ``UP`` moves it toward import (more import or less export). A generator asked to
export 2 MW more is ``DOWN`` 2000 kW; a demand turn-up is ``UP``.

Per period, with ``s = +1`` for DOWN and ``-1`` for UP:

* ``realized = s * (baseline - actual)`` - the movement in the ordered direction (negative
  when the unit moved the wrong way);
* delta order: ``ordered = quantity``; absolute setpoint: ``ordered = max(0, s * (baseline -
  setpoint))``, nothing being ordered when the setpoint lies on the wrong side of baseline;
* ``delivered = min(max(realized, 0), ordered)``; passive over-delivery ``max(realized -
  ordered, 0)`` is reported and paid only with ``pay_over_delivery``;
* ``deficiency = ordered - min(delivered, ordered)`` (rule SHORTFALL, at most ``ordered``),
  or ``max(ordered - realized, 0)`` (rule ADJUSTED_BASELINE, USEF: the excess over the
  adjusted baseline ``baseline - s * ordered``, which can exceed ``ordered`` when the unit
  moves the wrong way);
* ``performance = min(delivered, ordered) / ordered``, and 1 when nothing was ordered.

Partial periods: a dispatch window [start, end) is cut into the settlement periods it
overlaps. A half-hourly meter cannot say when inside the period the response happened, so
all kW figures of a period are period averages and the order is prorated to the
overlapped fraction ``f``: ``ordered = quantity * f``. Energy is ``kW * period hours``, so
ordered energy is the instruction times the hours of overlap.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from settlement.calc.periods import (
    DEFAULT_PERIOD_MINUTES,
    hours_between,
    overlap_microseconds,
    periods_between,
    require_utc,
)

Readings = Mapping[datetime, Decimal | None]
_ZERO = Decimal(0)
_ONE = Decimal(1)
_MICROSECONDS_PER_HOUR = Decimal(3_600_000_000)


class Direction(StrEnum):
    DOWN = "down"  # toward export: reduce consumption or increase export
    UP = "up"  # toward import: increase consumption or reduce export


class SetpointType(StrEnum):
    DELTA = "delta"  # quantity = the change from baseline, a magnitude >= 0
    ABSOLUTE = "absolute"  # quantity = the target power, signed (consumption positive)


class DeficiencyRule(StrEnum):
    SHORTFALL = "shortfall"  # ordered - delivered, never more than ordered
    ADJUSTED_BASELINE = "adjusted_baseline"  # USEF: actual beyond the adjusted baseline


class DeliveryStatus(StrEnum):
    ASSESSED = "assessed"
    HELD_MISSING_DATA = "held_missing_data"


@dataclass(frozen=True, slots=True)
class DispatchOrder:
    """What was instructed: a window [start_utc, end_utc), a direction and a quantity.

    For DELTA ``quantity_kw`` is the change from baseline (>= 0); for ABSOLUTE it is the
    power to be at, signed in the consumption convention (an export of 5 MW is -5000).
    """

    start_utc: datetime
    end_utc: datetime
    direction: Direction
    quantity_kw: Decimal
    setpoint_type: SetpointType = SetpointType.DELTA

    def __post_init__(self) -> None:
        require_utc(self.start_utc, "start_utc")
        require_utc(self.end_utc, "end_utc")
        if self.end_utc <= self.start_utc:
            raise ValueError("a dispatch must end after it starts")
        if self.setpoint_type is SetpointType.DELTA and self.quantity_kw < 0:
            raise ValueError("a delta quantity is a magnitude (>= 0); use direction for sign")


@dataclass(frozen=True, slots=True)
class PeriodDelivery:
    """Every number of one dispatch in one settlement period (kW are period averages)."""

    start_utc: datetime
    end_utc: datetime
    day: date  # London settlement day
    number: int  # settlement period number within ``day``
    period_hours: Decimal
    overlap_hours: Decimal
    overlap_fraction: Decimal
    direction: Direction
    setpoint_type: SetpointType
    instructed_kw: Decimal  # the order's quantity as given (delta or absolute setpoint)
    baseline_kw: Decimal
    actual_kw: Decimal
    ordered_kw: Decimal  # >= 0, prorated to the overlap
    adjusted_baseline_kw: Decimal  # baseline moved by the order
    realized_kw: Decimal  # signed movement in the ordered direction
    delivered_kw: Decimal
    over_delivery_kw: Decimal
    baseline_deviation_kw: Decimal  # ordered - realized: positive = short of the target
    deficiency_kw: Decimal
    performance: Decimal  # 0..1

    @property
    def ordered_kwh(self) -> Decimal:
        return self.ordered_kw * self.period_hours

    @property
    def delivered_kwh(self) -> Decimal:
        return self.delivered_kw * self.period_hours

    @property
    def over_delivery_kwh(self) -> Decimal:
        return self.over_delivery_kw * self.period_hours

    @property
    def deficiency_kwh(self) -> Decimal:
        return self.deficiency_kw * self.period_hours


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """All periods of one dispatch, or HELD_MISSING_DATA with the periods that lack data."""

    order: DispatchOrder
    status: DeliveryStatus
    periods: tuple[PeriodDelivery, ...] = ()
    missing_periods_utc: tuple[datetime, ...] = ()
    reason: str = ""

    @property
    def ordered_kwh(self) -> Decimal:
        return sum((p.ordered_kwh for p in self.periods), _ZERO)

    @property
    def delivered_kwh(self) -> Decimal:
        return sum((p.delivered_kwh for p in self.periods), _ZERO)

    @property
    def over_delivery_kwh(self) -> Decimal:
        return sum((p.over_delivery_kwh for p in self.periods), _ZERO)

    @property
    def deficiency_kwh(self) -> Decimal:
        return sum((p.deficiency_kwh for p in self.periods), _ZERO)


@dataclass(frozen=True, slots=True)
class Measured:
    """The period-level figures, before they are attached to a period."""

    ordered_kw: Decimal
    adjusted_baseline_kw: Decimal
    realized_kw: Decimal
    delivered_kw: Decimal
    over_delivery_kw: Decimal
    baseline_deviation_kw: Decimal
    deficiency_kw: Decimal
    performance: Decimal


def measure(*, baseline_kw: Decimal, actual_kw: Decimal, direction: Direction,
            quantity_kw: Decimal, setpoint_type: SetpointType = SetpointType.DELTA,
            overlap: tuple[int, int] | None = None, pay_over_delivery: bool = False,
            deficiency_rule: DeficiencyRule = DeficiencyRule.SHORTFALL) -> Measured:
    """Apply the delivery formulas (module docstring) to one period's averages.

    ``overlap`` is (time of the period covered by the order, length of the period), in the
    same integer unit, for a partly covered period; None when fully covered. Integers keep
    the proration exact: 300 kW over 20 of 30 minutes is 200 kW, not 199.999...
    """
    down = direction is Direction.DOWN
    if setpoint_type is SetpointType.DELTA:
        full_kw = quantity_kw
    else:
        gap = baseline_kw - quantity_kw if down else quantity_kw - baseline_kw
        full_kw = gap if gap > 0 else _ZERO
    ordered = full_kw if overlap is None else full_kw * overlap[0] / overlap[1]
    realized = baseline_kw - actual_kw if down else actual_kw - baseline_kw
    moved = realized if realized > 0 else _ZERO
    within = moved if moved < ordered else ordered
    over = moved - within
    deviation = ordered - realized
    if deficiency_rule is DeficiencyRule.SHORTFALL:
        deficiency = ordered - within
    else:
        deficiency = deviation if deviation > 0 else _ZERO
    return Measured(
        ordered_kw=ordered,
        adjusted_baseline_kw=baseline_kw - ordered if down else baseline_kw + ordered,
        realized_kw=realized,
        delivered_kw=moved if pay_over_delivery else within,
        over_delivery_kw=over,
        baseline_deviation_kw=deviation,
        deficiency_kw=deficiency,
        performance=within / ordered if ordered else _ONE,
    )


def delivered_flexibility(order: DispatchOrder, *, baseline_kw: Readings, actual_kw: Readings,
                          minutes: int = DEFAULT_PERIOD_MINUTES, pay_over_delivery: bool = False,
                          deficiency_rule: DeficiencyRule = DeficiencyRule.SHORTFALL
                          ) -> DeliveryResult:
    """Cut ``order`` into the settlement periods it overlaps and measure each one.

    ``baseline_kw`` and ``actual_kw`` map period start (UTC) to average kW. Any missing
    baseline or actual in an overlapped period holds the whole dispatch.
    """
    periods = periods_between(order.start_utc, order.end_utc, minutes)
    missing = tuple(p.start_utc for p in periods
                    if baseline_kw.get(p.start_utc) is None or actual_kw.get(p.start_utc) is None)
    if missing:
        return DeliveryResult(order=order, status=DeliveryStatus.HELD_MISSING_DATA,
                              missing_periods_utc=missing,
                              reason=f"held: missing baseline or metered data in "
                                     f"{len(missing)} period(s)")
    period_hours = hours_between(periods[0].start_utc, periods[0].end_utc)
    period_us = minutes * 60_000_000
    lines = []
    for period in periods:
        overlap: tuple[int, int] | None = None
        if order.start_utc <= period.start_utc and period.end_utc <= order.end_utc:
            covered, fraction = period_hours, _ONE
        else:  # only the first and last periods can be partly covered
            covered_us = overlap_microseconds(period, order.start_utc, order.end_utc)
            overlap = (covered_us, period_us)
            covered = Decimal(covered_us) / _MICROSECONDS_PER_HOUR
            fraction = Decimal(covered_us) / period_us
        baseline = baseline_kw[period.start_utc]
        actual = actual_kw[period.start_utc]
        assert baseline is not None and actual is not None  # checked above
        m = measure(baseline_kw=baseline, actual_kw=actual, direction=order.direction,
                    quantity_kw=order.quantity_kw, setpoint_type=order.setpoint_type,
                    overlap=overlap, pay_over_delivery=pay_over_delivery,
                    deficiency_rule=deficiency_rule)
        lines.append(PeriodDelivery(
            start_utc=period.start_utc, end_utc=period.end_utc, day=period.day,
            number=period.number, period_hours=period_hours, overlap_hours=covered,
            overlap_fraction=fraction, direction=order.direction,
            setpoint_type=order.setpoint_type, instructed_kw=order.quantity_kw,
            baseline_kw=baseline, actual_kw=actual, ordered_kw=m.ordered_kw,
            adjusted_baseline_kw=m.adjusted_baseline_kw, realized_kw=m.realized_kw,
            delivered_kw=m.delivered_kw, over_delivery_kw=m.over_delivery_kw,
            baseline_deviation_kw=m.baseline_deviation_kw, deficiency_kw=m.deficiency_kw,
            performance=m.performance))
    return DeliveryResult(order=order, status=DeliveryStatus.ASSESSED, periods=tuple(lines))
