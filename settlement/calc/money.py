"""Money: utilisation and availability payments, deficiency penalties, performance scaling.

Money is GBP as ``Decimal``. Quantities arrive in kW/kWh (see :mod:`.delivery`) and prices
are per MW or per MWh, so quantities are divided by 1000 before pricing. Rounding: each
money amount on a statement line is rounded to the penny, ROUND_HALF_UP, once; a line's
net is the sum of its rounded amounts and totals are sums of rounded lines (never a
re-rounding of unrounded sums), so a statement always adds up.

Utilisation line (one per dispatch and settlement period):

* ``gross = price * delivered``, delivered in MWh (PER_MWH) or as the period-average MW
  once per period (PER_MW_PER_PERIOD, the USEF example's "7 per MW");
* performance scaling (optional): below ``scale_below`` the payment is multiplied by the
  period's performance, below ``nothing_below`` it is zero; the cut is shown as
  ``performance_reduction``;
* deficiency penalty: ``rate * deficiency MW * period hours`` (PER_MW_PER_HOUR, i.e. per
  MWh of deficiency energy), ``rate * deficiency MW`` once per period (PER_MW_PER_PERIOD,
  USEF) or ``rate`` once for each period with any deficiency (FLAT_PER_PERIOD);
* ``net = gross - performance_reduction - penalty``.

Availability line: ``price (GBP/MW/h) * declared MW * hours``, counting only the hours of a
declaration that fall inside a contracted service window.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from settlement.calc.delivery import DeliveryResult, DeliveryStatus, PeriodDelivery
from settlement.calc.periods import hours_between, require_utc

PENNY = Decimal("0.01")
_NO_MONEY = Decimal("0.00")
_ZERO = Decimal(0)
_ONE = Decimal(1)
_THOUSAND = Decimal(1000)


def round_money(amount: Decimal) -> Decimal:
    """Round to the penny, half away from zero (ROUND_HALF_UP)."""
    return amount.quantize(PENNY, rounding=ROUND_HALF_UP)


class PriceBasis(StrEnum):
    PER_MWH = "per_mwh"  # price x delivered energy (MWh)
    PER_MW_PER_PERIOD = "per_mw_per_period"  # price x period-average delivered MW, per period


class PenaltyBasis(StrEnum):
    PER_MW_PER_HOUR = "per_mw_per_hour"  # rate x deficiency MW x period hours (= per MWh)
    PER_MW_PER_PERIOD = "per_mw_per_period"  # rate x deficiency MW, once per period (USEF)
    FLAT_PER_PERIOD = "flat_per_period"  # rate, once per period with any deficiency


@dataclass(frozen=True, slots=True)
class PerformanceScaling:
    """Below ``scale_below`` pay performance x payment; below ``nothing_below`` pay nothing.

    Either threshold may be None (off). Performance exactly at a threshold is not below it.
    """

    scale_below: Decimal | None = Decimal("0.8")
    nothing_below: Decimal | None = Decimal("0.5")

    def factor(self, performance: Decimal) -> Decimal:
        if self.nothing_below is not None and performance < self.nothing_below:
            return _ZERO
        if self.scale_below is not None and performance < self.scale_below:
            return performance
        return _ONE


@dataclass(frozen=True, slots=True)
class UtilisationTerms:
    """The contract's utilisation price and penalty rules (GBP)."""

    price_gbp: Decimal
    price_basis: PriceBasis = PriceBasis.PER_MWH
    penalty_rate_gbp: Decimal = _ZERO
    penalty_basis: PenaltyBasis = PenaltyBasis.PER_MW_PER_HOUR
    scaling: PerformanceScaling | None = None


@dataclass(frozen=True, slots=True)
class UtilisationLine:
    """One statement line: the period's delivery figures plus every money step."""

    delivery: PeriodDelivery
    price_gbp: Decimal
    price_basis: PriceBasis
    paid_quantity: Decimal  # delivered MWh (PER_MWH) or MW (PER_MW_PER_PERIOD)
    gross_payment_gbp: Decimal
    payment_factor: Decimal  # from performance scaling; 1 when none applies
    performance_reduction_gbp: Decimal
    penalty_rate_gbp: Decimal
    penalty_basis: PenaltyBasis
    penalty_quantity: Decimal  # deficiency MWh, MW, or 1/0 for a flat penalty
    deficiency_penalty_gbp: Decimal
    net_gbp: Decimal

    @property
    def utilisation_payment_gbp(self) -> Decimal:
        """What is paid for delivery after performance scaling."""
        return self.gross_payment_gbp - self.performance_reduction_gbp


def settle_period(delivery: PeriodDelivery, terms: UtilisationTerms) -> UtilisationLine:
    """Price one period of one dispatch."""
    if terms.price_basis is PriceBasis.PER_MWH:
        paid = delivery.delivered_kw * delivery.period_hours / _THOUSAND
    else:
        paid = delivery.delivered_kw / _THOUSAND
    unrounded = terms.price_gbp * paid
    gross = round_money(unrounded)
    factor = terms.scaling.factor(delivery.performance) if terms.scaling else _ONE
    reduction = _NO_MONEY if factor == _ONE else gross - round_money(unrounded * factor)
    deficiency_mw = delivery.deficiency_kw / _THOUSAND
    if terms.penalty_basis is PenaltyBasis.PER_MW_PER_HOUR:
        penalty_quantity = deficiency_mw * delivery.period_hours
    elif terms.penalty_basis is PenaltyBasis.PER_MW_PER_PERIOD:
        penalty_quantity = deficiency_mw
    else:
        penalty_quantity = _ONE if deficiency_mw > 0 else _ZERO
    penalty = round_money(terms.penalty_rate_gbp * penalty_quantity)
    return UtilisationLine(
        delivery=delivery, price_gbp=terms.price_gbp, price_basis=terms.price_basis,
        paid_quantity=paid, gross_payment_gbp=gross, payment_factor=factor,
        performance_reduction_gbp=reduction, penalty_rate_gbp=terms.penalty_rate_gbp,
        penalty_basis=terms.penalty_basis, penalty_quantity=penalty_quantity,
        deficiency_penalty_gbp=penalty, net_gbp=gross - reduction - penalty)


def price_periods(result: DeliveryResult,
                  terms: UtilisationTerms) -> tuple[UtilisationLine, ...]:
    """One line per period of an assessed dispatch. A held dispatch cannot be priced."""
    if result.status is not DeliveryStatus.ASSESSED:
        raise ValueError(f"dispatch is {result.status}: {result.reason}")
    return tuple(settle_period(p, terms) for p in result.periods)


@dataclass(frozen=True, slots=True)
class AvailabilityDeclaration:
    """Capacity (kW, >= 0) the unit declared available over [start_utc, end_utc)."""

    start_utc: datetime
    end_utc: datetime
    declared_kw: Decimal


@dataclass(frozen=True, slots=True)
class AvailabilityLine:
    start_utc: datetime  # the part of a declaration inside a service window
    end_utc: datetime
    declared_kw: Decimal
    hours: Decimal
    price_gbp_per_mw_h: Decimal
    payment_gbp: Decimal

    @property
    def declared_mw(self) -> Decimal:
        return self.declared_kw / _THOUSAND


def _merged(windows: Sequence[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    merged: list[tuple[datetime, datetime]] = []
    for start, end in sorted(windows):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def availability_lines(declarations: Sequence[AvailabilityDeclaration],
                       service_windows: Sequence[tuple[datetime, datetime]], *,
                       price_gbp_per_mw_h: Decimal) -> tuple[AvailabilityLine, ...]:
    """One line per (declaration, service window) overlap; hours outside windows earn
    nothing. Overlapping service windows are merged so no hour is paid twice; declarations
    must not overlap each other."""
    windows = _merged([(require_utc(s), require_utc(e)) for s, e in service_windows])
    ordered = sorted(declarations, key=lambda d: d.start_utc)
    for before, after in zip(ordered, ordered[1:], strict=False):
        if after.start_utc < before.end_utc:
            raise ValueError("availability declarations overlap")
    lines = []
    for decl in ordered:
        if decl.declared_kw < 0:
            raise ValueError("declared capacity is a magnitude (>= 0)")
        for w_start, w_end in windows:
            start = max(decl.start_utc, w_start)
            end = min(decl.end_utc, w_end)
            if end <= start:
                continue
            hours = hours_between(start, end)
            payment = round_money(price_gbp_per_mw_h * decl.declared_kw / _THOUSAND * hours)
            lines.append(AvailabilityLine(start, end, decl.declared_kw, hours,
                                          price_gbp_per_mw_h, payment))
    return tuple(lines)


@dataclass(frozen=True, slots=True)
class SettlementTotals:
    """Sums of rounded line amounts (GBP); ``net_gbp`` = payments - reductions - penalties."""

    availability_gbp: Decimal
    gross_utilisation_gbp: Decimal
    performance_reduction_gbp: Decimal
    deficiency_penalty_gbp: Decimal
    net_gbp: Decimal


def settlement_totals(utilisation: Iterable[UtilisationLine] = (),
                      availability: Iterable[AvailabilityLine] = ()) -> SettlementTotals:
    avail = sum((a.payment_gbp for a in availability), _NO_MONEY)
    gross = reduction = penalty = _NO_MONEY
    for line in utilisation:
        gross += line.gross_payment_gbp
        reduction += line.performance_reduction_gbp
        penalty += line.deficiency_penalty_gbp
    return SettlementTotals(availability_gbp=avail, gross_utilisation_gbp=gross,
                            performance_reduction_gbp=reduction, deficiency_penalty_gbp=penalty,
                            net_gbp=avail + gross - reduction - penalty)
