"""Identifiers of the GB dispatch profile (pure, no ORM): network operator codes, the
target labels that carry object privacy, and the dispatch-unit argument syntax."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

# The well-known list of GB distribution network operators, one code per licence area.
NETWORK_OPERATORS: dict[str, str] = {
    "ENWL": "Electricity North West",
    "NPG-NE": "Northern Powergrid (Northeast)",
    "NPG-Y": "Northern Powergrid (Yorkshire)",
    "SPEN-D": "SP Energy Networks (SP Distribution)",
    "SPEN-M": "SP Energy Networks (SP Manweb)",
    "SSEN-S": "Scottish and Southern Electricity Networks (Southern Electric Power Distribution)",
    "SSEN-N": "Scottish and Southern Electricity Networks (Scottish Hydro Electric Power "
              "Distribution)",
    "NGED-EM": "National Grid Electricity Distribution (East Midlands)",
    "NGED-WM": "National Grid Electricity Distribution (West Midlands)",
    "NGED-SW": "National Grid Electricity Distribution (South West)",
    "NGED-SWA": "National Grid Electricity Distribution (South Wales)",
    "UKPN-EPN": "UK Power Networks (Eastern)",
    "UKPN-LPN": "UK Power Networks (London)",
    "UKPN-SPN": "UK Power Networks (South Eastern)",
}

IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


class RegistryError(ValueError):
    """An identifier or argument of the registry is not acceptable."""


def check_operator_code(code: str) -> str:
    """The upper-case operator code, if it is on the well-known list."""
    normalised = (code or "").strip().upper()
    if normalised not in NETWORK_OPERATORS:
        raise RegistryError(f"unknown network operator {code!r}; use one of "
                            f"{', '.join(NETWORK_OPERATORS)}")
    return normalised


def check_identifier(value: str, what: str) -> str:
    """An FSP id, site, unit reference, contract id or dispatch reference: 1-63 letters,
    digits, '.', '_' or '-', starting with a letter or digit."""
    if not IDENTIFIER.match(value or ""):
        raise RegistryError(f"{what} {value!r} must be 1-63 letters, digits, '.', '_' or '-' "
                            "and start with a letter or digit")
    return value


# --- object privacy: the labels a site's VEN is granted and dispatch events carry ----------

def fsp_label(operator: str, fsp: str) -> str:
    """Granted to every VEN of the FSP (on the ven object)."""
    return f"fsp:{operator}:{fsp}"


def unit_label(operator: str, fsp: str, unit: str) -> str:
    """Granted to the VEN owning the unit (on the unit's resource); every dispatch event
    of the unit is targeted at it, so no other VEN can see the event."""
    return f"unit:{operator}:{fsp}:{unit}"


def ven_name(operator: str, fsp: str, site: str) -> str:
    """One VEN (and OAuth2 client) per FSP site."""
    return f"{operator.lower()}-{fsp}-{site}"


# --- `--unit REF:CAPACITY_KW[:import|export][:CAPACITY_KVAR]` -------------------------------

UNIT_SPEC = "REF:CAPACITY_KW[:import|export][:CAPACITY_KVAR]"


@dataclass(frozen=True)
class UnitSpec:
    reference: str
    capacity_kw: Decimal
    direction: str  # "import" or "export"
    capacity_kvar: Decimal | None = None  # None: the unit offers no reactive power


def capacity(text: str, what: str) -> Decimal:
    """A unit capacity (kW or kVAr): a positive finite number."""
    try:
        value = Decimal(str(text).strip())
    except (InvalidOperation, ValueError) as exc:
        raise RegistryError(f"{what} {text!r} is not a number") from exc
    if not value.is_finite() or value <= 0:
        raise RegistryError(f"{what} must be a positive number")
    if value >= Decimal(10) ** 9 or value.as_tuple().exponent < -3:  # type: ignore[operator]
        raise RegistryError(f"{what} must be below 1000000000, with at most 3 decimals")
    return value


def parse_unit_spec(text: str) -> UnitSpec:
    """``bat1:500``, ``bat1:500:export``, ``bat1:500:export:300`` (300 kVAr) or
    ``bat1:500:300`` (an import unit with 300 kVAr)."""
    parts = text.split(":")
    if len(parts) not in (2, 3, 4):
        raise RegistryError(f"unit {text!r} must be {UNIT_SPEC}")
    reference = check_identifier(parts[0], "unit reference")
    kw = capacity(parts[1], f"unit {text!r}: capacity (kW)")
    rest = parts[2:]
    direction = "import"
    if rest and rest[0].lower() in ("import", "export"):
        direction = rest.pop(0).lower()
    elif len(rest) == 2:
        raise RegistryError(f"unit {text!r}: direction must be import or export")
    kvar = None
    if rest:
        try:
            kvar = capacity(rest[0], f"unit {text!r}: reactive capacity (kVAr)")
        except RegistryError:
            if len(parts) == 3:  # REF:KW:WORD is a misspelt direction, say so
                raise RegistryError(f"unit {text!r}: direction must be import or export "
                                    "(or give a reactive capacity in kVAr)") from None
            raise
    return UnitSpec(reference, kw, direction, kvar)
