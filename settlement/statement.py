"""One contract's monthly statement, computed from plain inputs (pure, no ORM).

:func:`build_statement` turns the contract's terms, its dispatches, the units' meter data
and availability declarations into the statement document: one utilisation line per
dispatch and settlement period, one availability line per declared span inside a
contracted window, a held line per dispatch that cannot be settled (and why), totals, and
the inputs each number came from. The same inputs give the same document, byte for byte
(:func:`canonical_bytes`): nothing in it depends on when or where it was computed.

Sign conventions follow :mod:`settlement.calc`: power positive = import (consumption).
Dispatch volumes arrive as the profile's magnitudes in the unit's direction and are
converted here: a delta order moves an import unit DOWN (less import) and an export unit
UP (less export); an absolute setpoint of S kW is +S on an import unit and -S on an
export unit.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import numpy as np
import numpy.typing as npt
import rfc8785

from dispatch import rules
from settlement.calc import baselines, delivery, instruction, money, reactive
from settlement.calc.periods import day_start_utc, london_day, periods_between, utc_text

FORMAT = "gb-settlement/1"
_KW = Decimal("0.001")
_RATIO = Decimal("0.0001")
_MWH = Decimal("0.000001")
_NO_MONEY = Decimal("0.00")

BASELINE_METHODS = ("high_x_of_y", "average_of_y", "meter_before", "nominated")


@dataclass(frozen=True)
class BaselineSpec:
    """A contract's baseline method and its parameters (see docs/settlement.md)."""

    method: str = "high_x_of_y"
    x: int = 3
    y: int = 5
    n_periods: int = 4  # meter before
    lookback_days: int = baselines.DEFAULT_LOOKBACK_DAYS
    gate_closure: timedelta = timedelta(hours=1)  # nominated: before the dispatch start


def parse_baseline(text: str, *, reactive: bool = False) -> BaselineSpec:
    """The baseline of a contract's ``baseline_method`` (``reactive``: of its
    ``reactive_baseline_method``), by the one grammar ``dispatch.rules`` checks contracts
    against. Raises ValueError for a method that grammar refuses."""
    named = rules.parse_baseline_method(text, reactive=reactive)
    return BaselineSpec(named.method, x=named.x, y=named.y, n_periods=named.n_periods)


DEFAULT_BASELINE = rules.BASELINE_DEFAULT
DEFAULT_REACTIVE_BASELINE = rules.REACTIVE_BASELINE_DEFAULT


@dataclass(frozen=True)
class Terms:
    operator: str
    contract: str
    fsp: str
    product: str
    currency: str
    utilisation: money.UtilisationTerms
    availability_price_gbp_per_mw_h: Decimal
    availability_paid: bool
    baseline: BaselineSpec | None  # None: the contract names a method we do not know
    baseline_text: str
    service_windows: tuple[tuple[datetime, datetime], ...]  # empty: any time
    period_minutes: int = 30
    pay_over_delivery: bool = False
    deficiency_rule: delivery.DeficiencyRule = delivery.DeficiencyRule.SHORTFALL
    # The contract's choice: a unit is unavailable (no availability payment) while its
    # site is comms lost, or is paid as declared regardless.
    comms_loss_unavailable: bool = True
    # Reactive power is paid per MVArh delivered; emergency periods may earn a premium (a
    # percentage of their utilisation payment; None: none). See calc.instruction.
    reactive_price_gbp_per_mvarh: Decimal = Decimal(0)
    emergency_premium_percent: Decimal | None = None
    # Delta reactive setpoints are measured from this baseline of the reactive readings
    # (None: the contract names a method we do not know).
    reactive_baseline: BaselineSpec | None = BaselineSpec("meter_before", n_periods=4)
    reactive_baseline_text: str = DEFAULT_REACTIVE_BASELINE


@dataclass(frozen=True)
class Segment:
    """One setpoint held from ``start`` until ``end`` (the next setpoint or the end)."""

    start: datetime
    end: datetime
    setpoint_type: str  # "delta" | "absolute"
    volume_kw: Decimal  # magnitude in the unit's direction (kVAr for reactive power)
    revision: int | None = None  # the revision in force for it (None: the dispatch's)
    service_type: str = "real"  # "real" (kW) | "reactive" (kVAr)
    urgency: str = "warning"  # of the revision in force: advisory | warning | emergency
    price_per_unit_gbp: Decimal | None = None  # instructed: GBP per kWh (kVArh); None: none


@dataclass(frozen=True)
class DispatchInput:
    reference: str
    revision: int  # the last revision with setpoints (each segment names its own)
    unit: str
    segments: tuple[Segment, ...]
    document_sha256: str  # of the settled revision's signed document
    stopped_at: datetime | None = None  # a STOP / EMERGENCY_STOP cut the order short


@dataclass(frozen=True)
class UnitInput:
    reference: str
    direction: str  # "import" | "export"
    capacity_kw: Decimal
    actual_kw: Mapping[datetime, Decimal | None]  # period start -> average kW (None: missing)
    nominated_kw: Mapping[datetime, Decimal | None] = field(default_factory=dict)
    nominated_received: Mapping[datetime, datetime] = field(default_factory=dict)  # arrival
    declarations: tuple[tuple[datetime, datetime, Decimal], ...] = ()  # flattened spans
    comms_lost: tuple[tuple[datetime, datetime], ...] = ()  # when its site was comms lost
    readings_sha256: str = ""  # digest of the readings behind actual_kw and nominated_kw
    readings_count: int = 0
    # period start -> average reactive kVAr as metered (+ absorbed, - supplied; None: missing)
    reactive_kvar: Mapping[datetime, Decimal | None] = field(default_factory=dict)


def month_bounds(year: int, month: int) -> tuple[datetime, datetime]:
    """[first instant, first instant of the next month) of a Europe/London month, UTC."""
    after = date(year + (month == 12), month % 12 + 1, 1)
    return day_start_utc(date(year, month, 1)), day_start_utc(after)


def canonical_bytes(document: Mapping) -> bytes:
    """The statement as RFC 8785 canonical JSON: what is hashed and compared.

    A statement holds only objects with ASCII keys, lists, strings, booleans, null and
    small integers (amounts are strings). For such a document RFC 8785 asks exactly what
    ``json.dumps`` writes with sorted keys, no spaces and non-ASCII left as it is: keys
    in code-unit order (the same as code-point order for ASCII), integers in decimal,
    and in strings only the quote, the backslash and control characters escaped
    (``\\b \\t \\n \\f \\r``, else ``\\u00xx`` in lower case). The standard library's C
    encoder writes it ten times as fast as the ``rfc8785`` package, which is used for any
    other document (a float, a non-ASCII key, a large integer)."""
    if _plain(document):
        return json.dumps(document, sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False).encode()
    return rfc8785.dumps(document)


_SAFE_INTEGER = 2**53 - 1


def _plain(value: object) -> bool:
    """Whether ``value`` holds only what :func:`canonical_bytes` may encode with ``json``."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str or item is None or kind is bool:
            continue
        if kind is dict:
            for key in item:  # type: ignore[attr-defined]
                if type(key) is not str or not key.isascii():
                    return False
            stack.extend(item.values())  # type: ignore[attr-defined]
        elif kind is list or kind is tuple:
            stack.extend(item)  # type: ignore[arg-type]
        elif kind is int:
            if not -_SAFE_INTEGER <= item <= _SAFE_INTEGER:  # type: ignore[operator]
                return False
        else:
            return False
    return True


def document_sha256(document: Mapping) -> str:
    return hashlib.sha256(canonical_bytes(document)).hexdigest()


def _q(value: Decimal, step: Decimal) -> str:
    return format(value.quantize(step).normalize(), "f")


def _direction(unit: UnitInput) -> delivery.Direction:
    return delivery.Direction.DOWN if unit.direction == "import" else delivery.Direction.UP


def _order(segment: Segment, unit: UnitInput, end: datetime) -> delivery.DispatchOrder:
    if segment.setpoint_type == "absolute":
        signed = segment.volume_kw if unit.direction == "import" else -segment.volume_kw
        return delivery.DispatchOrder(segment.start, end, _direction(unit), signed,
                                      delivery.SetpointType.ABSOLUTE)
    return delivery.DispatchOrder(segment.start, end, _direction(unit), segment.volume_kw)


def _baseline(terms: Terms, unit: UnitInput, start: datetime, end: datetime,
              dispatched_days: frozenset[date],
              holidays: frozenset[date]) -> baselines.BaselineResult | str:
    """The baseline over [start, end), or why there is none (a string)."""
    spec, minutes = terms.baseline, terms.period_minutes
    if spec is None:
        return f"the contract's baseline method {terms.baseline_text!r} is not known"
    if spec.method == "nominated":
        starts = [p.start_utc for p in periods_between(start, end, minutes)]
        arrivals = [unit.nominated_received[s] for s in starts if s in unit.nominated_received]
        if not arrivals:
            return "no nominated baseline was received"
        return baselines.nominated_baseline(
            unit.nominated_kw, received_at_utc=max(arrivals),
            gate_closure_utc=start - spec.gate_closure, start_utc=start, end_utc=end,
            minutes=minutes)
    return _metered_baseline(spec, unit.actual_kw, start, end, dispatched_days=dispatched_days,
                             holidays=holidays, minutes=minutes)


def _metered_baseline(spec: BaselineSpec, readings: baselines.Readings, start: datetime,
                      end: datetime, *, dispatched_days: frozenset[date],
                      holidays: frozenset[date], minutes: int) -> baselines.BaselineResult:
    """A baseline of metered ``readings`` over [start, end) by a meter-before, high X of Y
    or average of Y method (real power in kW, or reactive power in kVAr)."""
    if spec.method == "meter_before":
        return baselines.meter_before_baseline(readings, start_utc=start, end_utc=end,
                                               n_periods=spec.n_periods, minutes=minutes)
    # Only the dispatched periods' baselines are used: the rest of each day is not worked out.
    by_day: dict[date, set[datetime]] = {}
    for period in periods_between(start, end, minutes):
        by_day.setdefault(london_day(period.start_utc), set()).add(period.start_utc)
    results = []
    for day, wanted in sorted(by_day.items()):
        if spec.method == "high_x_of_y":
            result = baselines.high_x_of_y_baseline(
                readings, target_day=day, x=spec.x, y=spec.y,
                lookback_days=spec.lookback_days, holidays=holidays,
                dispatched_days=dispatched_days, minutes=minutes, only=wanted)
        else:
            result = baselines.average_of_y_baseline(
                readings, target_day=day, y=spec.y, lookback_days=spec.lookback_days,
                holidays=holidays, dispatched_days=dispatched_days, minutes=minutes,
                only=wanted)
        if not result.computed:
            return result
        results.append(result)
    if len(results) == 1:
        return results[0]
    # A dispatch spanning midnight: one baseline per London day, joined.
    return baselines.BaselineResult(
        method=results[0].method, status=baselines.BaselineStatus.COMPUTED,
        periods=tuple(p for r in results for p in r.periods),
        days_used=tuple(d for r in results for d in r.days_used),
        days_excluded=tuple(d for r in results for d in r.days_excluded),
        parameters=results[0].parameters)


def _baseline_record(reference: str, result: baselines.BaselineResult) -> dict:
    return {"dispatchRef": reference, "method": result.method, "status": str(result.status),
            "parameters": {k: (utc_text(v) if isinstance(v, datetime) else v)
                           for k, v in sorted(result.parameters.items())},
            "daysUsed": [d.isoformat() for d in result.days_used],
            "daysExcluded": [{"day": d.day.isoformat(), "reason": str(d.reason)}
                             for d in result.days_excluded],
            "reason": result.reason}


def _held(reference: str, unit: str, reason: str, missing: Iterable[datetime] = ()) -> dict:
    return {"kind": "held", "dispatchRef": reference, "unit": unit, "reason": reason,
            "missingPeriods": [utc_text(m) for m in missing]}


def _instruction_fields(segment: Segment, line: money.UtilisationLine,
                        terms: Terms) -> dict:
    """What the instruction adds to a priced line: its urgency, where the price came from,
    the emergency premium, and the net with the premium."""
    premium = instruction.emergency_premium_gbp(
        line.utilisation_payment_gbp, urgency=segment.urgency,
        premium_percent=terms.emergency_premium_percent)
    return {"urgency": segment.urgency,
            "priceSource": "contract" if segment.price_per_unit_gbp is None else "instructed",
            "urgencyPremiumGbp": str(premium), "netGbp": str(line.net_gbp + premium)}


def _utilisation_line(reference: str, revision: int, unit: str, line: money.UtilisationLine,
                      sources: Sequence[datetime]) -> dict:
    d = line.delivery
    return {
        "kind": "utilisation", "dispatchRef": reference, "revision": revision, "unit": unit,
        "periodStart": utc_text(d.start_utc), "periodEnd": utc_text(d.end_utc),
        "day": d.day.isoformat(), "period": d.number,
        "setpointType": str(d.setpoint_type), "direction": str(d.direction),
        "instructedKw": _q(d.instructed_kw, _KW), "overlapFraction": _q(d.overlap_fraction,
                                                                        _RATIO),
        "baselineKw": _q(d.baseline_kw, _KW), "actualKw": _q(d.actual_kw, _KW),
        "orderedKw": _q(d.ordered_kw, _KW), "deliveredKw": _q(d.delivered_kw, _KW),
        "overDeliveryKw": _q(d.over_delivery_kw, _KW), "deficiencyKw": _q(d.deficiency_kw, _KW),
        "performance": _q(d.performance, _RATIO),
        "deliveredMwh": _q(d.delivered_kwh / 1000, _MWH),
        "priceGbp": str(line.price_gbp), "priceBasis": str(line.price_basis),
        "paymentGbp": str(line.gross_payment_gbp),
        "performanceReductionGbp": str(line.performance_reduction_gbp),
        "penaltyGbp": str(line.deficiency_penalty_gbp), "netGbp": str(line.net_gbp),
        "baselineSources": [utc_text(s) for s in sources],
    }


def _reactive_line(reference: str, revision: int, unit: str,
                   line: money.UtilisationLine) -> dict:
    """A reactive power line: the kVAr figures of one period (calc.reactive), priced per
    MVArh."""
    d = line.delivery
    return {
        "kind": "reactive", "dispatchRef": reference, "revision": revision, "unit": unit,
        "periodStart": utc_text(d.start_utc), "periodEnd": utc_text(d.end_utc),
        "day": d.day.isoformat(), "period": d.number, "setpointType": str(d.setpoint_type),
        "instructedKvar": _q(d.instructed_kw, _KW),
        "overlapFraction": _q(d.overlap_fraction, _RATIO),
        "baselineKvar": _q(d.baseline_kw, _KW), "actualKvar": _q(d.actual_kw, _KW),
        "orderedKvar": _q(d.ordered_kw, _KW), "deliveredKvar": _q(d.delivered_kw, _KW),
        "deficiencyKvar": _q(d.deficiency_kw, _KW), "performance": _q(d.performance, _RATIO),
        "deliveredMvarh": _q(d.delivered_kwh / 1000, _MWH),
        "deficiencyMvarh": _q(d.deficiency_kwh / 1000, _MWH),
        "priceGbp": str(line.price_gbp), "priceBasis": str(line.price_basis),
        "paymentGbp": str(line.gross_payment_gbp),
        "performanceReductionGbp": str(line.performance_reduction_gbp),
        "penaltyGbp": str(line.deficiency_penalty_gbp), "netGbp": str(line.net_gbp),
    }


def _segment_terms(terms: Terms, segment: Segment) -> money.UtilisationTerms:
    """The utilisation terms of one segment: the contract's (its reactive price for
    reactive power), as the instruction's urgency and price change them."""
    base = terms.utilisation if segment.service_type != "reactive" else dataclasses.replace(
        terms.utilisation, price_gbp=terms.reactive_price_gbp_per_mvarh)
    return instruction.utilisation_terms_for(
        base, urgency=segment.urgency,
        instructed_price_gbp_per_mwh=instruction.per_mwh(segment.price_per_unit_gbp))


def _reactive_lines(terms: Terms, dispatch: DispatchInput, unit: UnitInput, segment: Segment,
                    end: datetime, *, dispatched_days: frozenset[date],
                    holidays: frozenset[date]) -> tuple[list[dict], list[dict]]:
    """(lines, baseline records) of one reactive segment; one held line when it cannot be
    settled. A delta setpoint is measured from the contract's reactive baseline."""
    spec = terms.reactive_baseline
    if spec is None and segment.setpoint_type != "absolute":
        return [_held(dispatch.reference, unit.reference,
                      f"the contract's reactive baseline method "
                      f"{terms.reactive_baseline_text!r} is not known")], []

    def delta_baseline(directed: baselines.Readings, start: datetime, until: datetime
                       ) -> baselines.BaselineResult:
        assert spec is not None
        return _metered_baseline(spec, directed, start, until,
                                 dispatched_days=dispatched_days, holidays=holidays,
                                 minutes=terms.period_minutes)
    result, base = reactive.delivered_reactive(
        start_utc=segment.start, end_utc=end, setpoint_type=segment.setpoint_type,
        volume_kvar=segment.volume_kw, metered_kvar=unit.reactive_kvar,
        direction=unit.direction, minutes=terms.period_minutes,
        deficiency_rule=terms.deficiency_rule, delta_baseline=delta_baseline)
    records = [] if base is None else [_baseline_record(dispatch.reference, base)
                                       | {"serviceType": "reactive"}]
    if result.status is not delivery.DeliveryStatus.ASSESSED:
        return [_held(dispatch.reference, unit.reference, result.reason,
                      result.missing_periods_utc)], records
    lines = []
    for line in money.price_periods(result, _segment_terms(terms, segment)):
        lines.append(_reactive_line(dispatch.reference, segment.revision or dispatch.revision,
                                    unit.reference, line)
                     | _instruction_fields(segment, line, terms))
    return lines, records


def _availability_line(unit: str, line: money.AvailabilityLine) -> dict:
    return {"kind": "availability", "unit": unit, "periodStart": utc_text(line.start_utc),
            "periodEnd": utc_text(line.end_utc), "declaredKw": _q(line.declared_kw, _KW),
            "hours": _q(line.hours, _RATIO), "priceGbp": str(line.price_gbp_per_mw_h),
            "paymentGbp": str(line.payment_gbp), "netGbp": str(line.payment_gbp)}


def dispatch_lines(terms: Terms, dispatch: DispatchInput, unit: UnitInput, *,
                   dispatched_days: frozenset[date], holidays: frozenset[date] = frozenset()
                   ) -> tuple[list[dict], list[money.UtilisationLine], list[dict]]:
    """(lines, priced real-power utilisation lines, baseline records) of one dispatch:
    utilisation (or reactive) lines per settlement period, or one held line saying why it
    cannot be settled yet. A line's ``netGbp`` includes its emergency premium."""
    lines: list[dict] = []
    priced: list[money.UtilisationLine] = []
    records: list[dict] = []
    for segment in dispatch.segments:
        end = min(segment.end, dispatch.stopped_at) if dispatch.stopped_at else segment.end
        if end <= segment.start:
            continue
        if segment.service_type == "reactive":
            got, got_records = _reactive_lines(terms, dispatch, unit, segment, end,
                                               dispatched_days=dispatched_days,
                                               holidays=holidays)
            records += got_records
            if got and got[0]["kind"] == "held":
                return got, [], records
            lines += got
            continue
        base = _baseline(terms, unit, segment.start, end, dispatched_days, holidays)
        if isinstance(base, str):
            return [_held(dispatch.reference, unit.reference, base)], [], records
        records.append(_baseline_record(dispatch.reference, base))
        if not base.computed:
            return ([_held(dispatch.reference, unit.reference, base.reason,
                           base.missing_periods_utc)], [], records)
        result = delivery.delivered_flexibility(
            _order(segment, unit, end), baseline_kw=base.values_kw(), actual_kw=unit.actual_kw,
            minutes=terms.period_minutes, pay_over_delivery=terms.pay_over_delivery,
            deficiency_rule=terms.deficiency_rule)
        if result.status is not delivery.DeliveryStatus.ASSESSED:
            return ([_held(dispatch.reference, unit.reference, result.reason,
                           result.missing_periods_utc)], [], records)
        sources = {p.start_utc: p.source_starts_utc for p in base.periods}
        for line in money.price_periods(result, _segment_terms(terms, segment)):
            priced.append(line)
            lines.append(_utilisation_line(dispatch.reference,
                                           segment.revision or dispatch.revision,
                                           unit.reference, line,
                                           sources.get(line.delivery.start_utc, ()))
                         | _instruction_fields(segment, line, terms))
    return lines, priced, records


@dataclass
class UnitsPart:
    """What a batch of a contract's units adds to its statement (see :func:`settle_units`):
    each dispatch's lines with the key it is ordered by, and per unit its availability
    lines and inputs records. Only these are kept once the batch's readings are let go."""

    dispatches: list[tuple[tuple, list[dict], list[money.UtilisationLine], list[dict]]] = \
        field(default_factory=list)
    availability: list[tuple[str, list[money.AvailabilityLine]]] = field(default_factory=list)
    readings: list[dict] = field(default_factory=list)
    comms_lost: list[tuple[str, list[dict]]] = field(default_factory=list)
    units: set[str] = field(default_factory=set)


def _dispatch_order(dispatch: DispatchInput) -> tuple:
    return (dispatch.segments[0].start if dispatch.segments else datetime.max,
            dispatch.reference)


def settle_units(*, terms: Terms, year: int, month: int, units: Mapping[str, UnitInput],
                 dispatches: Iterable[DispatchInput],
                 dispatched_days: Mapping[str, frozenset[date]],
                 holidays: frozenset[date] = frozenset()) -> UnitsPart:
    """The part of the statement that comes from ``units`` (some or all of the contract's):
    the lines of those of ``dispatches`` that are theirs, their availability lines and
    their inputs records."""
    part = UnitsPart(units=set(units))
    for dispatch in dispatches:
        unit = units.get(dispatch.unit)
        if unit is None:
            continue
        part.dispatches.append((_dispatch_order(dispatch), *dispatch_lines(
            terms, dispatch, unit, dispatched_days=dispatched_days.get(unit.reference,
                                                                       frozenset()),
            holidays=holidays)))
    if terms.availability_paid and terms.availability_price_gbp_per_mw_h > 0:
        first, after = month_bounds(year, month)
        windows = [(max(s, first), min(e, after)) for s, e in
                   (terms.service_windows or ((first, after),))]
        windows = [(s, e) for s, e in windows if s < e]
        for reference, unit in units.items():
            spans = [money.AvailabilityDeclaration(s, e, min(kw, unit.capacity_kw))
                     for s, e, kw in unit.declarations]
            paid_windows = money.without_spans(windows, unit.comms_lost) \
                if terms.comms_loss_unavailable else windows
            part.availability.append((reference, list(money.availability_lines(
                spans, paid_windows,
                price_gbp_per_mw_h=terms.availability_price_gbp_per_mw_h))))
    for reference, unit in units.items():
        part.readings.append({"unit": reference, "count": unit.readings_count,
                              "sha256": unit.readings_sha256})
        part.comms_lost.append((reference, [
            {"unit": reference, "start": utc_text(s), "end": utc_text(e)}
            for s, e in unit.comms_lost]))
    return part


def build_statement(*, terms: Terms, year: int, month: int, version: int,
                    units: Mapping[str, UnitInput], dispatches: Sequence[DispatchInput],
                    dispatched_days: Mapping[str, frozenset[date]],
                    holidays: frozenset[date] = frozenset()) -> dict:
    """The statement document of one contract for one month (see the module docstring)."""
    part = settle_units(terms=terms, year=year, month=month, units=units,
                        dispatches=dispatches, dispatched_days=dispatched_days,
                        holidays=holidays)
    return assemble_statement(terms=terms, year=year, month=month, version=version,
                              parts=[part], dispatches=dispatches)


def assemble_statement(*, terms: Terms, year: int, month: int, version: int,
                       parts: Iterable[UnitsPart], dispatches: Sequence[DispatchInput]) -> dict:
    """The statement document from the parts of all the contract's units, in any order:
    the same document :func:`build_statement` makes from all units at once."""
    settled: list = []
    availability_by_unit: list = []
    readings: list[dict] = []
    comms_lost: list = []
    seen: set[str] = set()
    for part in parts:
        settled += part.dispatches
        availability_by_unit += part.availability
        readings += part.readings
        comms_lost += part.comms_lost
        seen |= part.units
    for dispatch in dispatches:
        if dispatch.unit not in seen:
            raise KeyError(dispatch.unit)
    lines: list[dict] = []
    priced: list[money.UtilisationLine] = []
    records: list[dict] = []
    for _, got, got_priced, got_records in sorted(settled, key=lambda item: item[0]):
        lines += got
        priced += got_priced
        records += got_records
    availability: list[money.AvailabilityLine] = []
    for reference, unit_lines in sorted(availability_by_unit, key=lambda item: item[0]):
        for line in unit_lines:
            availability.append(line)
            lines.append(_availability_line(reference, line))
    for number, row in enumerate(lines, start=1):
        row["line"] = number
    totals = money.settlement_totals(priced, availability)
    held = sum(1 for line in lines if line["kind"] == "held")
    reactive_lines = [line for line in lines if line["kind"] == "reactive"]
    premium = _sum(lines, "urgencyPremiumGbp")
    return {
        "format": FORMAT, "operator": terms.operator, "contract": terms.contract,
        "fsp": terms.fsp, "product": terms.product, "month": f"{year:04d}-{month:02d}",
        "version": version, "currency": terms.currency, "periodMinutes": terms.period_minutes,
        "terms": {
            "utilisationPrice": str(terms.utilisation.price_gbp),
            "utilisationPriceBasis": str(terms.utilisation.price_basis),
            "availabilityPriceGbpPerMwH": str(terms.availability_price_gbp_per_mw_h),
            "penaltyRateGbp": str(terms.utilisation.penalty_rate_gbp),
            "penaltyBasis": str(terms.utilisation.penalty_basis),
            "performanceScaling": None if terms.utilisation.scaling is None else {
                "scaleBelow": str(terms.utilisation.scaling.scale_below),
                "nothingBelow": str(terms.utilisation.scaling.nothing_below)},
            "payOverDelivery": terms.pay_over_delivery,
            "deficiencyRule": str(terms.deficiency_rule), "baselineMethod": terms.baseline_text,
            "reactiveBaselineMethod": terms.reactive_baseline_text,
            "serviceWindows": [[utc_text(s), utc_text(e)] for s, e in terms.service_windows],
            "commsLossAvailability": "unavailable" if terms.comms_loss_unavailable
            else "as_declared",
            "reactivePriceGbpPerMvarh": str(terms.reactive_price_gbp_per_mvarh),
            "emergencyPremiumPercent": None if terms.emergency_premium_percent is None
            else str(terms.emergency_premium_percent)},
        "lines": lines,
        "baselines": records,
        "inputs": {
            "dispatches": [{"dispatchRef": d.reference, "revision": d.revision, "unit": d.unit,
                            "documentSha256": d.document_sha256,
                            "stoppedAt": utc_text(d.stopped_at) if d.stopped_at else None}
                           for d in sorted(dispatches, key=lambda d: d.reference)],
            "readings": sorted(readings, key=lambda record: record["unit"]),
            "commsLost": [span for _, spans in sorted(comms_lost, key=lambda item: item[0])
                          for span in spans],
        },
        "totals": {
            "availabilityGbp": str(totals.availability_gbp),
            "utilisationGbp": str(totals.gross_utilisation_gbp
                                  + _sum(reactive_lines, "paymentGbp")),
            "performanceReductionGbp": str(totals.performance_reduction_gbp
                                           + _sum(reactive_lines, "performanceReductionGbp")),
            "penaltiesGbp": str(totals.deficiency_penalty_gbp
                                + _sum(reactive_lines, "penaltyGbp")),
            "urgencyPremiumGbp": str(premium),
            "netGbp": str(totals.net_gbp + premium
                          + sum((Decimal(line["paymentGbp"])
                                 - Decimal(line["performanceReductionGbp"])
                                 - Decimal(line["penaltyGbp"]) for line in reactive_lines),
                                _NO_MONEY)),
            "heldLines": held,
            "deliveredMwh": _q(sum((p.delivery.delivered_kwh for p in priced), Decimal(0))
                               / 1000, _MWH),
            "deficiencyMwh": _q(sum((p.delivery.deficiency_kwh for p in priced), Decimal(0))
                                / 1000, _MWH),
            "reactiveDeliveredMvarh": _q(_sum(reactive_lines, "deliveredMvarh"), _MWH),
            "reactiveDeficiencyMvarh": _q(_sum(reactive_lines, "deficiencyMvarh"), _MWH)},
    }


def _sum(lines: Iterable[dict], name: str) -> Decimal:
    """The sum of one decimal figure over the lines that carry it."""
    return sum((Decimal(line[name]) for line in lines if name in line), _NO_MONEY)


def readings_digest(rows: Iterable[tuple]) -> str:
    """A digest of the readings a statement used: SHA-256 over one line per reading,
    its fields (type, start, version, value) separated by tabs (no field holds a tab or
    a line break), in the order given."""
    return hashlib.sha256("".join(
        "\t".join(map(str, row)) + "\n" for row in rows).encode()).hexdigest()


def readings_digests(*, units: npt.NDArray[np.int64], kinds: Sequence[str],
                     kind_index: npt.NDArray[np.int64], starts: npt.NDArray[np.int64],
                     versions: npt.NDArray[np.int64], values: npt.NDArray[np.int64],
                     scale: int, null: int, unit_count: int) -> list[str]:
    """:func:`readings_digest` of each of ``unit_count`` units at once, from arrays (one
    element per reading, grouped by unit in the digest's order): ``units`` the unit's
    position, ``kinds[kind_index]`` the type, ``starts`` in microseconds since 2000-01-01
    UTC, ``versions``, and ``values`` in units of 10**-scale (``null``: no value).

    A reading's line is a head, ``type<TAB>start<TAB>version<TAB>``, and a tail,
    ``value<NEWLINE>``. A batch has few distinct heads (types x period starts x versions),
    so each head's text is written once; the tails are written by numpy, digit by digit.
    Lines are laid out a chunk at a time (small enough to stay in the processor's cache),
    one row of a byte matrix each: the head left-aligned in the first columns, the tail
    right-aligned in the last; the bytes of each row's head and tail, in order, are the
    text, hashed unit by unit: no Python object per reading."""
    if not len(values):
        return [hashlib.sha256(b"").hexdigest()] * unit_count
    heads, head_index = _distinct_heads(kind_index, starts, versions)
    head_texts = _head_texts(heads, kinds)
    # Zero-padded to the longest head, one row each.
    head_width = max(len(text) for text in head_texts)
    head_matrix = np.array(head_texts, dtype=f"S{head_width}").view(np.uint8).reshape(
        len(head_texts), head_width)
    head_lengths = np.array([len(text) for text in head_texts], dtype=np.int64)
    hashers = [hashlib.sha256() for _ in range(unit_count)]
    for begin in range(0, len(values), _DIGEST_CHUNK):
        end = min(len(values), begin + _DIGEST_CHUNK)
        chunk_heads = head_index[begin:end]
        tails, tail_lengths = _value_texts(values[begin:end], scale, null)
        line_heads = head_lengths[chunk_heads]
        lines = np.empty((end - begin, head_width + tails.shape[1]), dtype=np.uint8)
        lines[:, :head_width] = head_matrix[chunk_heads]
        lines[:, head_width:] = tails
        columns = np.arange(lines.shape[1])
        kept = (columns < line_heads[:, None]) | (
            columns >= (lines.shape[1] - tail_lengths)[:, None])
        text = memoryview(lines[kept])
        line_ends = np.concatenate([[0], np.cumsum(line_heads + tail_lengths)])
        chunk_units = units[begin:end]
        first, last = int(chunk_units[0]), int(chunk_units[-1])
        bounds = line_ends[np.searchsorted(chunk_units, np.arange(first, last + 2))].tolist()
        for unit in range(first, last + 1):
            if bounds[unit - first + 1] > bounds[unit - first]:
                hashers[unit].update(text[bounds[unit - first]:bounds[unit - first + 1]])
    return [hasher.hexdigest() for hasher in hashers]


# Lines laid out at a time by readings_digests: some 600 KB of byte matrix.
_DIGEST_CHUNK = 16384


def _head_texts(heads: list[tuple[int, int, int]], kinds: Sequence[str]) -> list[bytes]:
    """``type<TAB>start<TAB>version<TAB>`` of each (type, start, version), the start as
    ``datetime.isoformat`` writes a UTC instant: numpy writes the date and time of whole
    seconds (all of them at once), ``datetime`` any other."""
    starts = np.array([start for _, start, _ in heads], dtype=np.int64)
    if len(starts) and not np.any(starts % 1_000_000):
        texts = np.datetime_as_string(
            (starts // 1_000_000 + _EPOCH_SECONDS).astype("datetime64[s]"), unit="s").tolist()
        return [f"{kinds[kind]}\t{text}+00:00\t{version}\t".encode()
                for (kind, _, version), text in zip(heads, texts, strict=True)]
    return [f"{kinds[kind]}\t{(_EPOCH + timedelta(microseconds=start)).isoformat()}\t"
            f"{version}\t".encode() for kind, start, version in heads]


def _value_texts(values: npt.NDArray[np.int64], scale: int, null: int
                 ) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """Each value's :func:`_value_text` as a row of bytes, right-aligned (zeros before it),
    and its length: the sign, the integer digits, the point, ``scale`` digits, the line's
    end; ``None`` and the line's end for ``null``."""
    missing = values == null
    negative = (values < 0) & ~missing
    whole, fraction = np.divmod(np.where(missing, 0, np.abs(values)), 10 ** scale)
    most = max(1, len(str(int(whole.max()))))
    digits = np.ones(len(values), dtype=np.int64)  # of the integer part
    for power in range(1, most):
        digits += whole >= 10 ** power
    width = max(len(b"None\n"), most + scale + 3)
    rows = np.zeros((len(values), width), dtype=np.uint8)
    rows[:, -1] = ord("\n")
    for column in range(width - 2, width - 2 - scale, -1):
        fraction, digit = np.divmod(fraction, 10)
        rows[:, column] = ord("0") + digit
    rows[:, width - 2 - scale] = ord(".")
    for place in range(most):
        whole, digit = np.divmod(whole, 10)
        rows[:, width - 3 - scale - place] = np.where(place < digits, ord("0") + digit, 0)
    signed = np.flatnonzero(negative)
    rows[signed, width - 3 - scale - digits[signed]] = ord("-")
    lengths = digits + scale + 2 + negative
    gaps = np.flatnonzero(missing)
    rows[gaps] = 0
    rows[gaps, width - len(b"None\n"):] = np.frombuffer(b"None\n", dtype=np.uint8)
    lengths[gaps] = len(b"None\n")
    return rows, lengths


def _distinct_heads(kind_index: npt.NDArray[np.int64], starts: npt.NDArray[np.int64],
                    versions: npt.NDArray[np.int64]
                    ) -> tuple[list[tuple[int, int, int]], npt.NDArray[np.int64]]:
    """The distinct (type, start, version) of the readings, in order, and each reading's
    position among them. Starts on whole minutes (settlement periods) with small versions
    are counted in a table of every (minute, type, version), without sorting; otherwise
    one sort of a key that packs the three into an integer when it fits."""
    if not len(starts):
        return [], np.zeros(0, dtype=np.int64)
    low, kinds = int(starts.min()), int(kind_index.max()) + 1
    top = int(versions.max()) + 1
    if int(versions.min()) >= 0 and not np.any((starts - low) % _MINUTE):
        span = ((int(starts.max()) - low) // _MINUTE + 1) * kinds * top
        if span <= 4 * len(starts) + 4096:
            keys = (((starts - low) // _MINUTE) * kinds + kind_index) * top + versions
            seen = np.zeros(span, dtype=np.bool_)
            seen[keys] = True
            found = []
            for key in np.flatnonzero(seen).tolist():
                rest, version = divmod(key, top)
                minute, kind = divmod(rest, kinds)
                found.append((kind, low + minute * _MINUTE, version))
            return found, (np.cumsum(seen) - 1)[keys]
    if (int(starts.max()) - low + 1) * kinds * top < 2**62 and int(versions.min()) >= 0:
        keys, index = np.unique(((starts - low) * kinds + kind_index) * top + versions,
                                return_inverse=True)
        found = []
        for key in keys.tolist():
            rest, version = divmod(key, top)
            start, kind = divmod(rest, kinds)
            found.append((kind, start + low, version))
        return found, index.ravel()
    table = np.stack([kind_index, starts, versions], axis=1)
    rows, index = np.unique(table, axis=0, return_inverse=True)
    return [tuple(row) for row in rows.tolist()], index.ravel()


_MINUTE = 60_000_000  # microseconds


def _value_text(value: int, scale: int, null: int) -> bytes:
    """``str(Decimal)`` of a value given in units of 10**-scale, as the database driver
    reads a NUMERIC with ``scale`` decimals (sign, integer digits, point, ``scale``
    digits), or 'None' for ``null``; then the line's end."""
    if value == null:
        return b"None\n"
    whole, fraction = divmod(abs(value), 10 ** scale)
    digits = str(fraction).rjust(scale, "0") if scale else ""
    return f"{'-' if value < 0 else ''}{whole}.{digits}\n".encode()


def period_average_kw(rows: Iterable[tuple[datetime, datetime, str, Decimal | None]],
                      minutes: int) -> dict[datetime, Decimal | None]:
    """Average kW per settlement period from readings ``(start, end, type, value)``: USAGE
    in kWh over its interval, DEMAND in kW. A period gets a value only when readings of
    one type cover it completely and none is missing; otherwise None (missing, never
    zero). USAGE is preferred where both cover a period."""
    length = timedelta(minutes=minutes)
    hours = Decimal(minutes) / 60
    # On a whole-minute grid a UTC start's fields tell whether it starts a period, far
    # faster than the timedelta arithmetic every other start takes.
    minute_grid = 60 % minutes == 0
    energy: dict[str, dict[datetime, list]] = {}  # type -> period -> [kWh, time covered]
    for start, end, kind, value in rows:
        if minute_grid and start.tzinfo is UTC and not (
                start.minute % minutes or start.second or start.microsecond):
            offset, period = _NO_OFFSET, start
        else:
            offset = (start - _EPOCH) % length
            period = start - offset
        of_kind = energy.get(kind)
        if of_kind is None:
            of_kind = energy[kind] = {}
        if not offset and end - start == length:  # the usual case: one reading, one period
            if value is None:
                of_kind[period] = [None, length]
            else:
                of_kind[period] = [value if kind == "USAGE" else value * hours, length]
            continue
        if period + length < end:  # spans periods: not a settlement-grade reading
            continue
        entry = of_kind.setdefault(period, [Decimal(0), timedelta(0)])
        if value is None or entry[0] is None:
            entry[0] = None
        else:
            span_hours = Decimal((end - start).total_seconds()) / 3600
            entry[0] += value if kind == "USAGE" else value * span_hours
        entry[1] += end - start
    result: dict[datetime, Decimal | None] = {}
    for kind in ("DEMAND", "USAGE"):  # USAGE written last: it wins
        for period, (kwh, covered) in energy.get(kind, {}).items():
            complete = kwh is not None and covered == length
            if complete or period not in result:
                result[period] = kwh / hours if complete else None
    return result


_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_EPOCH_SECONDS = int(_EPOCH.timestamp())  # since 1970
_NO_OFFSET = timedelta(0)
