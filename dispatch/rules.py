"""The dispatch document and the product rules it must satisfy (pure, no ORM).

A revision is described by :class:`DispatchDraft`; :func:`check` returns every rule it
breaks as readable messages, and :func:`document` gives the Appendix A document that is
signed and published. Times are timezone-aware UTC with whole seconds; volumes are kW
(real) or kVAr (reactive), non-negative magnitudes in the unit's direction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from dispatch import products

PROFILE = "gb-dispatch/1"
STATUSES = ("pre-notify", "run", "stop", "emergency-stop")
URGENCIES = ("advisory", "warning", "emergency")
# OpenADR priority: lower is more urgent (0 is the highest).
SETPOINT_TYPES = ("absolute", "delta")
SERVICE_TYPE_UNITS = {"real": "KW", "reactive": "KVAR"}
# A price per unit is GBP per kWh of real power, or per kVArh of reactive power.
PRICE_UNITS = {"real": "KWH", "reactive": "KVARH"}
# Which status may follow which. Stop and emergency stop are final.
TRANSITIONS = {
    None: {"pre-notify", "run"},
    "pre-notify": {"pre-notify", "run", "stop", "emergency-stop"},
    "run": {"run", "stop", "emergency-stop"},
    "stop": set(),
    "emergency-stop": set(),
}
FINAL = {"stop", "emergency-stop"}
# A contract's baseline methods (settled by settlement.statement, docs/settlement.md): the
# grammar is defined here once, so a contract is refused at creation for a method settlement
# could not work out. Real power: high-X-of-Y (X at most Y), average-Y, meter-before-N or
# nominated; empty: high-3-of-5. Delta reactive setpoints: the same over the reactive
# readings except nominated (FSPs nominate kW only); empty: meter-before-4.
BASELINE_DEFAULT = "high-3-of-5"
REACTIVE_BASELINE_DEFAULT = "meter-before-4"
_BASELINE = re.compile(
    r"meter-before-(?P<n>[1-9][0-9]{0,2})|high-(?P<x>[1-9][0-9]{0,2})-of-(?P<y>[1-9][0-9]{0,2})"
    r"|average-(?P<avg>[1-9][0-9]{0,2})|(?P<nominated>nominated)")


@dataclass(frozen=True)
class BaselineMethod:
    """A baseline method named in a contract: ``method`` is ``high_x_of_y``,
    ``average_of_y``, ``meter_before`` or ``nominated``; ``x``/``y`` are days and
    ``n_periods`` settlement periods."""

    method: str
    x: int = 3
    y: int = 5
    n_periods: int = 4


def parse_baseline_method(text: str, *, reactive: bool = False) -> BaselineMethod:
    """The baseline method ``text`` names (empty: the default of its kind). Raises
    ValueError, saying what is allowed, for anything else."""
    name = (text or (REACTIVE_BASELINE_DEFAULT if reactive else BASELINE_DEFAULT)).strip().lower()
    found = _BASELINE.fullmatch(name)
    if found is not None and not (reactive and found["nominated"]):
        if found["n"]:
            return BaselineMethod("meter_before", n_periods=int(found["n"]))
        if found["avg"]:
            return BaselineMethod("average_of_y", y=int(found["avg"]))
        if found["nominated"]:
            return BaselineMethod("nominated")
        if int(found["x"]) <= int(found["y"]):
            return BaselineMethod("high_x_of_y", x=int(found["x"]), y=int(found["y"]))
    if reactive:
        raise ValueError(f"unknown reactive baseline method {text!r}: use meter-before-N, "
                         "high-X-of-Y (X at most Y) or average-Y")
    raise ValueError(f"unknown baseline method {text!r}: use high-X-of-Y (X at most Y), "
                     "average-Y, meter-before-N or nominated")


def baseline_problem(text: str, *, reactive: bool = False) -> str | None:
    """Why ``text`` is not a baseline method of its kind (None: it is one, or empty)."""
    try:
        parse_baseline_method(text, reactive=reactive)
    except ValueError as exc:
        return str(exc)
    return None


def wire(value: str) -> str:
    """Profile enumeration on the wire and in the signed document: ``pre-notify`` -> PRE_NOTIFY."""
    return value.upper().replace("-", "_")


def utc_seconds(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("times must carry a time zone (UTC)")
    return value.astimezone(UTC).replace(microsecond=0)


def iso(value: datetime, *, microseconds: bool = False) -> str:
    """An aware datetime as ISO 8601 in UTC (``2026-01-31T17:30:00Z``): the one timestamp
    format of the dispatch app. ``microseconds`` keeps them (``...:00.123456Z``), as the
    audit chain hashes entry times."""
    if microseconds:
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Timing:
    """One service timing: be at ``volume`` by ``setpoint_time`` (a destination target)."""

    setpoint_time: datetime
    volume: Decimal
    setpoint_type: str = "delta"  # "absolute" or "delta" (to baseline)
    service_type: str = "real"  # "real" (kW) or "reactive" (kVAr)
    price_gbp_per_kwh: Decimal | None = None  # GBP per kWh, or per kVArh when reactive

    @property
    def units(self) -> str:
        return SERVICE_TYPE_UNITS.get(self.service_type, "?")

    @property
    def price_units(self) -> str:
        return PRICE_UNITS.get(self.service_type, "?")

    def as_document(self) -> dict:
        body = {"setpointTime": iso(self.setpoint_time), "volume": _number(self.volume),
                "units": self.units, "setpointType": wire(self.setpoint_type),
                "serviceType": wire(self.service_type)}
        if self.price_gbp_per_kwh is not None:
            body |= {"pricePerUnit": _number(self.price_gbp_per_kwh), "currency": "GBP",
                     "priceUnits": self.price_units}
        return body

    @classmethod
    def from_document(cls, body: dict) -> Timing:
        price = body.get("pricePerUnit")
        return cls(setpoint_time=datetime.fromisoformat(body["setpointTime"]),
                   volume=Decimal(str(body["volume"])),
                   setpoint_type=body["setpointType"].lower(),
                   service_type=body["serviceType"].lower(),
                   price_gbp_per_kwh=None if price is None else Decimal(str(price)))


def _number(value: Decimal) -> int | float:
    """A JSON number for a Decimal: an int when integral, else the nearest float."""
    return int(value) if value == value.to_integral_value() else float(value)


@dataclass(frozen=True)
class ProductRules:
    code: str
    notice_period: timedelta
    quantity: str  # "fixed" or "variable"
    setpoint_types: tuple[str, ...]
    directions: tuple[str, ...]


@dataclass(frozen=True)
class UnitLimits:
    capacity_kw: Decimal
    capacity_kvar: Decimal | None
    direction: str


@dataclass(frozen=True)
class DispatchDraft:
    """Everything an Appendix A revision says."""

    network_operator: str
    reference: str
    revision: int
    status: str
    urgency: str
    fsp: str
    unit: str
    contract: str
    product: str
    instruction_time: datetime
    service_start: datetime
    service_end: datetime
    timings: tuple[Timing, ...] = field(default_factory=tuple)

    def document(self) -> dict:
        """The Appendix A document of this revision: what is signed and published."""
        return {
            "profile": PROFILE,
            "networkOperatorId": self.network_operator,
            "dispatchRef": self.reference,
            "revision": self.revision,
            "status": wire(self.status),
            "urgency": wire(self.urgency),
            "fspId": self.fsp,
            "dispatchUnit": self.unit,
            "contractId": self.contract,
            "product": self.product,
            "instructionTime": iso(self.instruction_time),
            "serviceStart": iso(self.service_start),
            "serviceEnd": iso(self.service_end),
            "serviceTimings": [t.as_document() for t in self.timings],
        }


def check(draft: DispatchDraft, product: ProductRules, unit: UnitLimits, *,
          windows: list[tuple[datetime, datetime]] | None = None,
          previous: DispatchDraft | None = None) -> list[str]:
    """Every rule ``draft`` breaks (empty when it is acceptable).

    ``windows`` are the contract's service windows (none: any time); ``previous`` is the
    revision being replaced, if any (it decides which status may follow and which
    setpoints are already inside the notice period and so may no longer change).
    """
    errors: list[str] = []
    if draft.status not in STATUSES:
        errors.append(f"status must be one of {', '.join(STATUSES)}")
    if draft.urgency not in URGENCIES:
        errors.append(f"urgency must be one of {', '.join(URGENCIES)}")
    allowed = TRANSITIONS.get(previous.status if previous else None, set())
    if draft.status in STATUSES and draft.status not in allowed:
        was = previous.status if previous else "a new dispatch"
        errors.append(f"status {draft.status} cannot follow {was}")
    if draft.status == "emergency-stop" and draft.urgency != "emergency":
        errors.append("an emergency stop has urgency emergency")
    unit_problem = products.unit_problem(product.code, product.directions,
                                         direction=unit.direction, capacity_kw=unit.capacity_kw)
    if unit_problem:
        errors.append(unit_problem)
    if draft.service_end <= draft.service_start:
        errors.append("serviceEnd must be after serviceStart")
    if windows and not any(s <= draft.service_start and draft.service_end <= e
                           for s, e in windows):
        errors.append("the service period is outside the contract's service windows")
    if draft.status in FINAL:
        if draft.timings:
            errors.append("a stop or emergency-stop revision carries no service timings")
        return errors
    if previous is None and draft.service_start - draft.instruction_time < product.notice_period:
        earliest = iso(draft.instruction_time + product.notice_period)
        errors.append(f"product {product.code} needs {_human(product.notice_period)} notice: "
                      f"serviceStart must be at or after {earliest}")
    errors += _check_timings(draft, product, unit)
    if previous is not None:
        kept = {t.service_type for t in previous.timings}
        given = {t.service_type for t in draft.timings}
        if kept and given and kept != given:
            errors.append(f"a revision keeps the dispatch's service type "
                          f"({', '.join(sorted(kept))} power)")
        errors += _check_frozen(draft, previous, product)
    return errors


def _check_timings(draft: DispatchDraft, product: ProductRules, unit: UnitLimits) -> list[str]:
    errors: list[str] = []
    if not draft.timings:
        return ["at least one service timing is required"]
    times = [t.setpoint_time for t in draft.timings]
    if times != sorted(set(times)):
        errors.append("setpoint times must be strictly increasing")
    service_types = {t.service_type for t in draft.timings}
    if len(service_types) > 1:
        errors.append("all service timings of one dispatch have the same service type "
                      "(issue real and reactive power as separate dispatches)")
    if product.quantity == "fixed" and len({t.volume for t in draft.timings}) > 1:
        errors.append(f"product {product.code} has a fixed quantity: every setpoint has the "
                      "same volume")
    for index, timing in enumerate(draft.timings):
        where = f"serviceTimings[{index}]"
        if not draft.service_start <= timing.setpoint_time < draft.service_end:
            errors.append(f"{where}: setpointTime must be within [serviceStart, serviceEnd)")
        if timing.setpoint_type not in product.setpoint_types:
            errors.append(f"{where}: product {product.code} takes "
                          f"{' or '.join(product.setpoint_types)} setpoints, not "
                          f"{timing.setpoint_type}")
        if timing.service_type not in SERVICE_TYPE_UNITS:
            errors.append(f"{where}: serviceType must be real or reactive")
            continue
        if not timing.volume.is_finite() or timing.volume < 0:
            errors.append(f"{where}: volume must be a non-negative number")
            continue
        capacity = unit.capacity_kw if timing.service_type == "real" else unit.capacity_kvar
        if capacity is None:
            errors.append(f"{where}: the unit has no reactive capacity")
        elif timing.volume > capacity:
            errors.append(f"{where}: volume {timing.volume} {timing.units} exceeds the unit's "
                          f"capacity of {capacity} {timing.units}")
        if timing.price_gbp_per_kwh is not None and (
                not timing.price_gbp_per_kwh.is_finite() or timing.price_gbp_per_kwh < 0):
            errors.append(f"{where}: pricePerUnit must be a non-negative number")
    return errors


def _check_frozen(draft: DispatchDraft, previous: DispatchDraft,
                  product: ProductRules) -> list[str]:
    """A placed instruction is binding: whatever the notice period, the past is frozen.

    A revision may change only what lies at or after its freeze horizon: the instruction
    time plus the product's notice period (the instruction time itself for zero-notice
    products). Setpoints before the horizon, and a service start or end already passed,
    stay exactly as the previous revision had them.
    """
    horizon = draft.instruction_time + product.notice_period
    errors: list[str] = []
    why = (f"product {product.code} needs {_human(product.notice_period)} notice: "
           if product.notice_period else "a placed instruction is binding: ")
    before = {t.setpoint_time: t for t in previous.timings if t.setpoint_time < horizon}
    after = {t.setpoint_time: t for t in draft.timings if t.setpoint_time < horizon}
    if before != after:
        errors.append(f"{why}setpoints before {iso(horizon)} cannot be changed")
    if draft.service_start != previous.service_start and min(
            draft.service_start, previous.service_start) < horizon:
        errors.append(f"{why}serviceStart cannot be moved from or to before {iso(horizon)}")
    if draft.service_end != previous.service_end and min(
            draft.service_end, previous.service_end) < horizon:
        errors.append(f"{why}serviceEnd cannot be moved from or to before {iso(horizon)}")
    return errors


def _human(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    if seconds % 86400 == 0 and seconds:
        return f"{seconds // 86400} day(s)"
    if seconds % 3600 == 0 and seconds:
        return f"{seconds // 3600} hour(s)"
    return f"{seconds // 60} minute(s)"
