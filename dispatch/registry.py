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


# --- `--unit REF:CAPACITY_KW[:import|export]` --------------------------------------------------

@dataclass(frozen=True)
class UnitSpec:
    reference: str
    capacity_kw: Decimal
    direction: str  # "import" or "export"


def parse_unit_spec(text: str) -> UnitSpec:
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise RegistryError(f"unit {text!r} must be REF:CAPACITY_KW[:import|export]")
    reference = check_identifier(parts[0], "unit reference")
    try:
        capacity = Decimal(parts[1])
    except InvalidOperation as exc:
        raise RegistryError(f"unit {text!r}: capacity {parts[1]!r} is not a number") from exc
    if not capacity.is_finite() or capacity <= 0:
        raise RegistryError(f"unit {text!r}: capacity must be a positive number of kW")
    direction = parts[2].lower() if len(parts) == 3 else "import"
    if direction not in ("import", "export"):
        raise RegistryError(f"unit {text!r}: direction must be import or export")
    return UnitSpec(reference, capacity, direction)
