"""What the instruction itself changes in the money (pure; docs/settlement.md, "Urgency and
instructed prices").

A dispatch revision carries an urgency (advisory, warning, emergency) and, optionally, a
price per unit for each setpoint. Settlement honours both, per settlement period, with the
revision in force for that period:

* **instructed price**: a setpoint's ``pricePerUnit`` (GBP per kWh, or per kVArh for
  reactive power) is the utilisation price of that period (pay as instructed), converted
  to GBP per MWh (MVArh); without one the contract's price applies;
* **advisory** is voluntary: delivered flexibility is paid, and no deficiency penalty or
  performance reduction is charged for what was not delivered;
* **warning** is settled on the contract's terms as they are;
* **emergency** is settled on the contract's terms, plus the contract's emergency premium
  (a percentage of the period's utilisation payment after performance scaling; none when
  the contract sets none).
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from enum import StrEnum

from settlement.calc.money import UtilisationTerms, round_money

_THOUSAND = Decimal(1000)
_HUNDRED = Decimal(100)
_NO_MONEY = Decimal("0.00")


class Urgency(StrEnum):
    ADVISORY = "advisory"  # voluntary: no non-delivery penalty
    WARNING = "warning"  # deliver as contracted
    EMERGENCY = "emergency"  # deliver now; the contract may pay a premium


def per_mwh(price_per_kwh: Decimal | None) -> Decimal | None:
    """An instructed price per kWh (kVArh) as the per-MWh (MVArh) price settlement uses."""
    return None if price_per_kwh is None else price_per_kwh * _THOUSAND


def utilisation_terms_for(contract: UtilisationTerms, *, urgency: str,
                          instructed_price_gbp_per_mwh: Decimal | None = None
                          ) -> UtilisationTerms:
    """The utilisation terms of one period: the contract's, with the instructed price
    instead of the contract's when one was given, and without penalty or performance
    scaling when the instruction was advisory."""
    terms = contract
    if instructed_price_gbp_per_mwh is not None:
        terms = dataclasses.replace(terms, price_gbp=instructed_price_gbp_per_mwh)
    if Urgency(urgency) is Urgency.ADVISORY:
        terms = dataclasses.replace(terms, penalty_rate_gbp=Decimal(0), scaling=None)
    return terms


def emergency_premium_gbp(utilisation_payment_gbp: Decimal, *, urgency: str,
                          premium_percent: Decimal | None) -> Decimal:
    """The premium of one period: ``premium_percent`` of its utilisation payment (after
    performance scaling) when the instruction was an emergency, rounded to the penny;
    0.00 otherwise or when the contract sets no premium."""
    if Urgency(urgency) is not Urgency.EMERGENCY or not premium_percent:
        return _NO_MONEY
    return round_money(utilisation_payment_gbp * premium_percent / _HUNDRED)
