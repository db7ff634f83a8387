"""Reactive power: delivered against instructed (pure; docs/settlement.md, "Reactive power").

Units: reactive power in kVAr, reactive energy in kVArh, as ``Decimal``. Meter readings
(``GB_REACTIVE``) are signed at the meter: positive = absorbed from the network, negative
= supplied to it. A reactive setpoint is a magnitude in the unit's direction, as real
power is (docs/gb-dispatch-profile.md): an export unit supplies reactive power, an import
unit absorbs it. So the metered figures are first turned into the unit's direction
(:func:`in_direction`), where positive is what the instruction asks for.

Then the real-power formulas of :mod:`.delivery` apply unchanged, with direction ``UP``
(more of what was asked for is better):

* an **absolute** setpoint is a level to hold: measured from zero (baseline 0), so
  ``ordered = setpoint`` and ``realized = the mean reactive power in the unit's
  direction``;
* a **delta** setpoint is a change: measured from a baseline of the reactive readings in
  the unit's direction, by the contract's reactive baseline method (the caller's
  ``delta_baseline``); by default the mean of the ``BASELINE_PERIODS`` settlement periods
  before the setpoint started (a "meter before" baseline);
* ``delivered = min(max(realized, 0), ordered)`` and ``deficiency = ordered - delivered``
  per period, prorated to partly covered periods, exactly as for real power.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal

from settlement.calc import baselines
from settlement.calc.delivery import (
    DeficiencyRule,
    DeliveryResult,
    DeliveryStatus,
    Direction,
    DispatchOrder,
    Readings,
    SetpointType,
    delivered_flexibility,
)
from settlement.calc.periods import DEFAULT_PERIOD_MINUTES, periods_between

BASELINE_PERIODS = 4  # delta reactive setpoints by default: the mean of the 4 periods before
_ZERO = Decimal(0)

# How a delta setpoint's baseline is worked out from the directed reactive readings over
# [start, end): a baseline result (maybe not computed).
DeltaBaseline = Callable[[Readings, datetime, datetime], baselines.BaselineResult]


def meter_before(n_periods: int = BASELINE_PERIODS, minutes: int = DEFAULT_PERIOD_MINUTES
                 ) -> DeltaBaseline:
    """The default reactive baseline: the mean of the ``n_periods`` periods before."""
    def baseline(directed: Readings, start_utc: datetime, end_utc: datetime
                 ) -> baselines.BaselineResult:
        return baselines.meter_before_baseline(directed, start_utc=start_utc, end_utc=end_utc,
                                               n_periods=n_periods, minutes=minutes)
    return baseline


def in_direction(metered_kvar: Readings, direction: str) -> dict[datetime, Decimal | None]:
    """Period-average reactive power turned into the unit's direction (``import``: absorbed
    is positive; ``export``: supplied is positive). Missing stays missing."""
    sign = Decimal(1) if direction == "import" else Decimal(-1)
    return {start: None if value is None else sign * value
            for start, value in metered_kvar.items()}


def order(*, start_utc: datetime, end_utc: datetime, setpoint_type: str,
          volume_kvar: Decimal) -> DispatchOrder:
    """A reactive setpoint (a magnitude in the unit's direction) as a delivery order."""
    kind = SetpointType.ABSOLUTE if setpoint_type == "absolute" else SetpointType.DELTA
    return DispatchOrder(start_utc, end_utc, Direction.UP, volume_kvar, kind)


def baseline_kvar(directed_kvar: Readings, *, start_utc: datetime, end_utc: datetime,
                  setpoint_type: str, minutes: int = DEFAULT_PERIOD_MINUTES,
                  delta_baseline: DeltaBaseline | None = None
                  ) -> baselines.BaselineResult | dict[datetime, Decimal]:
    """What the reactive order is measured from over [start_utc, end_utc): zero in every
    period for an absolute setpoint (a plain map), ``delta_baseline`` (by default the
    meter-before baseline) of the reactive readings for a delta one (a baseline result,
    maybe not computed)."""
    if setpoint_type == "absolute":
        return {p.start_utc: _ZERO for p in periods_between(start_utc, end_utc, minutes)}
    method = delta_baseline or meter_before(minutes=minutes)
    return method(directed_kvar, start_utc, end_utc)


def delivered_reactive(*, start_utc: datetime, end_utc: datetime, setpoint_type: str,
                       volume_kvar: Decimal, metered_kvar: Mapping[datetime, Decimal | None],
                       direction: str, minutes: int = DEFAULT_PERIOD_MINUTES,
                       deficiency_rule: DeficiencyRule = DeficiencyRule.SHORTFALL,
                       delta_baseline: DeltaBaseline | None = None
                       ) -> tuple[DeliveryResult, baselines.BaselineResult | None]:
    """Delivered reactive power of one setpoint, period by period (kVAr figures in the
    result's ``*_kw`` fields), and the delta baseline it used (None for absolute;
    ``delta_baseline`` by default the mean of the ``BASELINE_PERIODS`` periods before).
    Missing readings hold it (HELD_MISSING_DATA), never zero."""
    directed = in_direction(metered_kvar, direction)
    placed = order(start_utc=start_utc, end_utc=end_utc, setpoint_type=setpoint_type,
                   volume_kvar=volume_kvar)
    base = baseline_kvar(directed, start_utc=start_utc, end_utc=end_utc,
                         setpoint_type=setpoint_type, minutes=minutes,
                         delta_baseline=delta_baseline)
    if isinstance(base, baselines.BaselineResult):
        if not base.computed:
            reason = (f"held: missing reactive readings in {len(base.missing_periods_utc)} "
                      "period(s) of the reactive baseline") if base.missing_periods_utc \
                else f"held: no reactive baseline ({base.reason})"
            return DeliveryResult(
                order=placed, status=DeliveryStatus.HELD_MISSING_DATA,
                missing_periods_utc=base.missing_periods_utc, reason=reason), base
        values: Mapping[datetime, Decimal | None] = base.values_kw()
    else:
        values = base
    result = delivered_flexibility(placed, baseline_kw=values, actual_kw=directed,
                                   minutes=minutes, deficiency_rule=deficiency_rule)
    if result.status is not DeliveryStatus.ASSESSED:
        result = DeliveryResult(order=placed, status=result.status,
                                missing_periods_utc=result.missing_periods_utc,
                                reason="held: missing reactive readings in "
                                       f"{len(result.missing_periods_utc)} period(s)")
    return result, base if isinstance(base, baselines.BaselineResult) else None
