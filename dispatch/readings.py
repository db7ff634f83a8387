"""Meter readings and availability declarations read out of OpenADR report resources
(pure, no ORM; docs/gb-dispatch-profile.md sections 10 and 11).

Each resource of a report names one of the site's units (``resourceName`` = unit
reference). Each interval covers its own ``intervalPeriod``; an interval without one
follows the previous interval of its resource, starting at the resource's
``intervalPeriod`` and lasting its duration (the same rule OpenADR applies to event
intervals). Times must be explicit: the "now" start of OpenADR is refused here.

Sign convention at this boundary: positive power or energy is import from the network
(consumption), negative is export.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import NamedTuple

import msgspec
from msgspec import UNSET, UnsetType

from gbflex_profile.vocabulary import (
    BASELINE,
    DATA_QUALITY,
    DEMAND,
    GB_AVAILABLE_KW,
    GB_CORRECTION,
    GB_REACTIVE,
    QUALITIES,
    READING_TYPES,
    USAGE,
)
from vtn import timing

# Factor to kWh (USAGE) or kW (DEMAND, BASELINE) of each unit a descriptor may name.
ENERGY_UNITS = {"KWH": Decimal(1), "WH": Decimal("0.001"), "MWH": Decimal(1000)}
POWER_UNITS = {"KW": Decimal(1), "W": Decimal("0.001"), "MW": Decimal(1000)}
REACTIVE_ENERGY_UNITS = {"KVARH": Decimal(1), "VARH": Decimal("0.001"),
                         "MVARH": Decimal(1000)}
DEFAULT_UNITS = {USAGE: "KWH", DEMAND: "KW", BASELINE: "KW", GB_REACTIVE: "KVARH"}
UNIT_TABLES = {USAGE: ENERGY_UNITS, GB_REACTIVE: REACTIVE_ENERGY_UNITS}
LONGEST_INTERVAL = timedelta(days=1)
LONGEST_DECLARATION = timedelta(days=31)


class Reading(NamedTuple):
    """One reading as sent (immutable; a named tuple is built several times faster than
    a frozen dataclass, and a bulk request builds one or two per row)."""

    unit: str
    reading_type: str
    start: datetime
    end: datetime
    value: Decimal | None  # kWh (USAGE), kVArh (GB_REACTIVE) or kW; None when MISSING
    quality: str
    correction: bool


@dataclass(frozen=True)
class Declaration:
    unit: str
    start: datetime
    end: datetime
    available_kw: Decimal


@dataclass(frozen=True)
class Rejection:
    unit: str
    reading_type: str
    start: str  # as sent, or "" when it could not be read
    outcome: str
    detail: str

    def as_dict(self) -> dict:
        return {"unit": self.unit, "type": self.reading_type, "start": self.start,
                "outcome": self.outcome, "detail": self.detail}


def unit_factors(payload_descriptors: Iterable[Mapping] | None) -> tuple[dict, list[str]]:
    """Conversion factor per reading type from the report's payload descriptors (units
    default to KWH for USAGE, KVARH for GB_REACTIVE, KW otherwise), and problems with
    units not understood."""
    named = {d.get("payloadType"): str(d.get("units") or "").upper()
             for d in payload_descriptors or [] if d.get("payloadType") in READING_TYPES}
    factors, problems = {}, []
    for reading_type in READING_TYPES:
        units = named.get(reading_type) or DEFAULT_UNITS[reading_type]
        table = UNIT_TABLES.get(reading_type, POWER_UNITS)
        if units in table:
            factors[reading_type] = table[units]
        else:
            problems.append(f"{reading_type} in {units} is not understood; use one of "
                            f"{', '.join(table)}")
    return factors, problems


def _spans(resource: Mapping) -> Iterable[tuple[Mapping, datetime | None, datetime | None,
                                                str, str]]:
    """(interval, start, end, start as sent, problem) of each interval of a resource."""
    default = resource.get("intervalPeriod") or {}
    cursor: datetime | None = None
    default_duration: timedelta | None = None
    problem = ""
    try:
        if default.get("start"):
            cursor = timing.parse_datetime(default["start"])
        if default.get("duration"):
            default_duration = timing.parse_duration(default["duration"])
    except ValueError as exc:
        problem = f"resource intervalPeriod: {exc}"
    for interval in resource.get("intervals") or []:
        period = interval.get("intervalPeriod") or {}
        sent = str(period.get("start") or (cursor.isoformat() if cursor else ""))
        if problem:
            yield interval, None, None, sent, problem
            continue
        try:
            start = timing.parse_datetime(period["start"]) if period.get("start") else cursor
            duration = timing.parse_duration(period["duration"]) if period.get("duration") \
                else default_duration
        except ValueError as exc:
            yield interval, None, None, sent, f"intervalPeriod: {exc}"
            continue
        if start is None or start.year == timing.NOW_SENTINEL_YEAR:
            yield interval, None, None, sent, "the interval needs an explicit start"
            continue
        if duration is None or duration <= timedelta(0):
            yield interval, None, None, sent, "the interval needs a positive duration"
            continue
        cursor = start + duration
        yield interval, start, start + duration, sent, ""


def _values(payloads: Iterable[Mapping] | None) -> dict[str, list]:
    values: dict[str, list] = {}
    for payload in payloads or []:
        values.setdefault(str(payload.get("type")), list(payload.get("values") or []))
    return values


def _number(raw: object) -> Decimal:
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise ValueError(f"{raw!r} is not a number")
    try:
        value = Decimal(str(raw))
    except InvalidOperation as exc:
        raise ValueError(f"{raw!r} is not a number") from exc
    if not value.is_finite():
        raise ValueError(f"{raw!r} is not a finite number")
    return value


def parse_readings(resources: Iterable[Mapping], payload_descriptors: Iterable[Mapping] | None,
                   units: Iterable[str]) -> tuple[list[Reading], list[Rejection]]:
    """The readings of a meter-reading report, and what was rejected and why. ``units``
    are the references of the reporting site's units."""
    known = set(units)
    factors, unit_problems = unit_factors(payload_descriptors)
    readings: list[Reading] = []
    rejected: list[Rejection] = []
    for resource in resources or []:
        unit = str(resource.get("resourceName") or "")
        for interval, start, end, sent, problem in _spans(resource):
            values = _values(interval.get("payloads"))
            types = [name for name in READING_TYPES if name in values]

            def reject(reading_type: str, outcome: str, detail: str,
                       unit: str = unit, sent: str = sent) -> None:
                rejected.append(Rejection(unit, reading_type, sent, outcome, detail))

            if not types:
                continue  # nothing of ours in this interval
            if unit not in known:
                for name in types:
                    reject(name, "unknown_unit", f"{unit!r} is not a unit of this site")
                continue
            if problem or start is None or end is None:  # _spans gives no times with a problem
                for name in types:
                    reject(name, "invalid", problem)
                continue
            if end - start > LONGEST_INTERVAL:
                for name in types:
                    reject(name, "invalid", "a reading interval lasts at most one day")
                continue
            quality = str((values.get(DATA_QUALITY) or ["OK"])[0]).upper()
            if quality not in QUALITIES:
                for name in types:
                    reject(name, "invalid", f"{DATA_QUALITY} must be one of "
                           f"{', '.join(QUALITIES)}")
                continue
            correction = (values.get(GB_CORRECTION) or [False])[0] is True
            for name in types:
                if name not in factors:
                    reject(name, "invalid", "; ".join(unit_problems))
                    continue
                raw = values[name]
                value: Decimal | None = None
                if quality != "MISSING":
                    if len(raw) != 1:
                        reject(name, "invalid", f"{name} carries exactly one value")
                        continue
                    try:
                        value = _number(raw[0]) * factors[name]
                    except ValueError as exc:
                        reject(name, "invalid", str(exc))
                        continue
                readings.append(Reading(unit, name, start, end, value, quality, correction))
    return readings, rejected


def parse_declarations(resources: Iterable[Mapping],
                       units: Iterable[str]) -> tuple[list[Declaration], list[Rejection]]:
    """The availability declarations of a report (``GB_AVAILABLE_KW`` per interval, kW,
    not negative), and what was rejected and why."""
    known = set(units)
    declarations: list[Declaration] = []
    rejected: list[Rejection] = []
    for resource in resources or []:
        unit = str(resource.get("resourceName") or "")
        for interval, start, end, sent, problem in _spans(resource):
            raw = _values(interval.get("payloads")).get(GB_AVAILABLE_KW)
            if raw is None:
                continue
            detail, outcome = "", "invalid"
            if unit not in known:
                outcome, detail = "unknown_unit", f"{unit!r} is not a unit of this site"
            elif problem or start is None or end is None:  # no times with a problem
                detail = problem
            elif end - start > LONGEST_DECLARATION:
                detail = "a declaration window lasts at most 31 days"
            elif len(raw) != 1:
                detail = f"{GB_AVAILABLE_KW} carries exactly one value"
            else:
                try:
                    kw = _number(raw[0])
                    if kw < 0:
                        raise ValueError("available kW cannot be negative")
                except ValueError as exc:
                    detail = str(exc)
                else:
                    declarations.append(Declaration(unit, start, end, kw))
                    continue
            rejected.append(Rejection(unit, GB_AVAILABLE_KW, sent, outcome, detail))
    return declarations, rejected


# --- declared against contracted ---------------------------------------------------------------

@dataclass(frozen=True)
class DeclaredSpan:
    """One stretch of time over which what was declared does not change."""

    start: datetime
    end: datetime
    available_kw: Decimal | None  # None: nothing declared


def declared_profile(declarations: Iterable[tuple[datetime, datetime, Decimal, datetime]],
                     start: datetime, end: datetime) -> list[DeclaredSpan]:
    """What was declared over [start, end) as consecutive spans. ``declarations`` are
    (start, end, kW, declared at) of the current declarations; where they overlap, the one
    declared last wins."""
    ordered = sorted(declarations, key=lambda d: d[3])
    by_start = sorted(ordered, key=lambda d: d[0])
    if any(later[0] < earlier[1] for earlier, later in zip(by_start, by_start[1:],
                                                            strict=False)):
        return _overlapping_profile(ordered, start, end)
    # The usual case, no two declarations overlap: each stretch between two cut points is
    # covered by at most one, found by walking them in order (their ends are in order too).
    points = sorted({start, end}.union(
        t for d_start, d_end, _kw, _at in by_start for t in (d_start, d_end) if start < t < end))
    spans: list[DeclaredSpan] = []
    index = 0
    for left, right in zip(points, points[1:], strict=False):
        while index < len(by_start) and by_start[index][1] <= left:
            index += 1
        kw = None
        if index < len(by_start) and by_start[index][0] <= left and right <= by_start[index][1]:
            kw = by_start[index][2]
        if spans and spans[-1].available_kw == kw and spans[-1].end == left:
            spans[-1] = DeclaredSpan(spans[-1].start, right, kw)
        else:
            spans.append(DeclaredSpan(left, right, kw))
    return spans


def _overlapping_profile(ordered: list[tuple[datetime, datetime, Decimal, datetime]],
                         start: datetime, end: datetime) -> list[DeclaredSpan]:
    """:func:`declared_profile` of declarations ``ordered`` by when they were declared,
    some of which overlap: each stretch takes the last one declared that covers it."""
    cuts = {start, end}
    for d_start, d_end, _kw, _at in ordered:
        cuts.update(t for t in (d_start, d_end) if start < t < end)
    points = sorted(cuts)
    spans: list[DeclaredSpan] = []
    for left, right in zip(points, points[1:], strict=False):
        kw = None
        for d_start, d_end, d_kw, _at in ordered:
            if d_start <= left and right <= d_end:
                kw = d_kw  # later declarations overwrite earlier ones
        if spans and spans[-1].available_kw == kw and spans[-1].end == left:
            spans[-1] = DeclaredSpan(spans[-1].start, right, kw)
        else:
            spans.append(DeclaredSpan(left, right, kw))
    return spans


@dataclass(frozen=True)
class AvailabilitySpan:
    """Declared against contracted over one stretch of a contracted window."""

    start: datetime
    end: datetime
    units_kw: dict  # unit reference -> declared kW, or None when nothing was declared
    declared_kw: Decimal  # sum over units, each capped at its capacity
    contracted_kw: Decimal

    @property
    def shortfall_kw(self) -> Decimal:
        return max(Decimal(0), self.contracted_kw - self.declared_kw)

    @property
    def hours(self) -> Decimal:
        return Decimal((self.end - self.start).total_seconds()) / Decimal(3600)


def declared_against_contracted(
        profiles: Mapping[str, list[DeclaredSpan]], capacities_kw: Mapping[str, Decimal],
        contracted_kw: Decimal) -> list[AvailabilitySpan]:
    """Combine each unit's declared profile over one window (all profiles cover the same
    window) into spans where nothing changes. A unit counts at most its capacity; a unit
    that declared nothing counts zero."""
    cuts = sorted({t for spans in profiles.values() for span in spans
                   for t in (span.start, span.end)})
    result = []
    for left, right in zip(cuts, cuts[1:], strict=False):
        units_kw = {}
        for unit, spans in profiles.items():
            units_kw[unit] = next((s.available_kw for s in spans
                                   if s.start <= left and right <= s.end), None)
        declared = sum((min(kw, capacities_kw[unit]) for unit, kw in units_kw.items()
                        if kw is not None), Decimal(0))
        result.append(AvailabilitySpan(left, right, units_kw, declared, contracted_kw))
    return result


# --- bulk meter data (the dispatch API's POST meter-readings) -----------------------------------

BULK_DEFAULT_DURATION = timedelta(minutes=30)
BULK_MAX_ROWS = 20_000
BULK_ROW_MEMBERS = frozenset({"operator", "fsp", "unit", "start", "duration", "kwh", "kvarh",
                              "quality", "correction"})
# The reading each value member of a bulk row becomes.
BULK_VALUES = (("kwh", USAGE), ("kvarh", GB_REACTIVE))


class BulkRow(NamedTuple):
    """One row of a bulk meter-data request, checked on its own (the unit is not yet
    looked up): ``number`` is its place in the request (``readings[number]``),
    ``readings`` holds its USAGE and/or GB_REACTIVE reading."""

    number: int
    unit: str
    fsp: str | None
    operator: str | None
    readings: tuple[Reading, ...]


def _text(row: Mapping, name: str, *, required: bool = False) -> str | None:
    raw = row.get(name)
    if raw is None:
        if required:
            raise ValueError(f"{name} is required")
        return None
    if not isinstance(raw, str) or not raw or len(raw) > 128:
        raise ValueError(f"{name} must be a non-empty string of at most 128 characters")
    return raw


class BulkRowIn(msgspec.Struct, forbid_unknown_fields=True):
    """A bulk row as it arrives, in the JSON types a plain row uses (absent members are
    ``UNSET``, so an absent value and a null one stay apart as in the JSON)."""

    unit: str
    start: str
    operator: str | None | UnsetType = UNSET
    fsp: str | None | UnsetType = UNSET
    duration: str | None | UnsetType = UNSET
    kwh: str | int | float | None | UnsetType = UNSET
    kvarh: str | int | float | None | UnsetType = UNSET
    quality: str | UnsetType = UNSET
    correction: bool | UnsetType = UNSET

    def as_json(self) -> dict:
        """The row as ``json.loads`` gives it."""
        return {name: getattr(self, name) for name in self.__struct_fields__
                if getattr(self, name) is not UNSET}


class BulkBody(msgspec.Struct, forbid_unknown_fields=True):
    """A bulk request body of plain rows: ``{"readings": [row, ...]}``."""

    readings: list[BulkRowIn]


_BULK_BODY = msgspec.json.Decoder(BulkBody)


def decode_bulk_body(raw: bytes) -> BulkBody | None:
    """The body of a bulk request read in one pass of a compiled decoder, or None when it
    is not of that plain shape: not valid UTF-8 or JSON (lone surrogates included),
    another member or row member, a member of another JSON type, a number out of the
    float range. A None body is read again with the project's strict parser and checked
    row by row, which say precisely what is wrong (and take what the decoder does not,
    such as a quality of null, to the same answer). Whatever this accepts, ``json.loads``
    reads the same (last of repeated keys, the same floats), nested three levels deep."""
    try:
        return _BULK_BODY.decode(raw)
    except (msgspec.MsgspecError, ValueError):  # UnicodeDecodeError is a ValueError
        return None


def parse_bulk_rows(rows: object) -> tuple[list[BulkRow], list[str]]:
    """The rows of a bulk meter-data request, and one line per faulty row saying which
    row (``readings[i]``) and what is wrong. Each row names a unit (``unit``, with ``fsp``
    and ``operator`` when the reference alone is ambiguous), the interval's ``start``
    (ISO 8601 with a time zone) and ``duration`` (ISO 8601, default PT30M, at most one
    day), ``kwh`` and/or ``kvarh`` (numbers, or decimal strings for exact values),
    ``quality`` (default OK; MISSING carries no values) and ``correction`` (true to
    replace a reading already held for the period). ``rows`` are as ``json.loads`` reads
    them, or :class:`BulkRowIn` from :func:`decode_bulk_body` (the same answers)."""
    if not isinstance(rows, list) or not rows:
        return [], ["readings must be a non-empty list"]
    if len(rows) > BULK_MAX_ROWS:
        return [], [f"readings holds at most {BULK_MAX_ROWS} rows per request"]
    parsed: list[BulkRow] = []
    errors: list[str] = []
    starts: dict[str, datetime] = {}
    durations: dict[str, timedelta] = {}
    values: dict[tuple[type, object], Decimal] = {}
    ends: dict[tuple[datetime, timedelta], datetime] = {}
    for index, row in enumerate(rows):
        if isinstance(row, BulkRowIn):
            plain = _plain_bulk_row(index, row, starts, durations, values, ends)
            if plain is not None:
                parsed.append(plain)
                continue
            row = row.as_json()  # anything unusual: the full check, with its message
        try:
            parsed.append(_bulk_row(index, row, starts, durations))
        except ValueError as exc:
            errors.append(f"readings[{index}]: {exc}")
    return parsed, errors


def _plain_bulk_row(index: int, row: BulkRowIn, starts: dict[str, datetime],
                    durations: dict[str, timedelta], values: dict[tuple[type, object], Decimal],
                    ends: dict[tuple[datetime, timedelta], datetime]) -> BulkRow | None:
    """The row when it is plain (a start and duration seen before in this request or
    read without fault, values of at most 12 + 6 digits, text members of 1 to 128
    characters); None for anything else, which :func:`_bulk_row` then checks and
    explains. Accepts nothing :func:`_bulk_row` refuses and reads the same readings."""
    unit, raw_start, fsp, operator = row.unit, row.start, row.fsp, row.operator
    if not 0 < len(unit) <= 128:
        return None
    if fsp is UNSET:
        fsp = None
    elif fsp is not None and not 0 < len(fsp) <= 128:
        return None
    if operator is UNSET:
        operator = None
    elif operator is not None and not 0 < len(operator) <= 128:
        return None
    start = starts.get(raw_start)
    if start is None:
        return None  # read (and remembered) by _bulk_row
    raw_duration = row.duration
    if raw_duration is UNSET or raw_duration is None:
        duration = BULK_DEFAULT_DURATION
    else:
        found = durations.get(raw_duration)
        if found is None:
            return None
        duration = found
    if duration <= timedelta(0) or duration > LONGEST_INTERVAL:
        return None
    quality = "OK" if row.quality is UNSET else row.quality
    if quality not in QUALITIES or quality == "MISSING":
        return None
    correction = row.correction is True
    end = ends.get((start, duration))
    if end is None:
        end = ends[start, duration] = start + duration
    found_readings = []
    for raw, reading_type in ((row.kwh, USAGE), (row.kvarh, GB_REACTIVE)):
        if raw is UNSET:
            continue
        # The same text or number reads as the same Decimal (0.0 and -0.0 are told apart).
        key = (raw.__class__, raw)
        value = values.get(key) if raw.__class__ is not float or raw else None
        if value is None:
            try:
                value = _number(raw)
            except ValueError:
                return None
            if value.adjusted() >= 12 or value != value.quantize(Decimal("0.000001")):
                return None
            values[key] = value
        found_readings.append(Reading(unit, reading_type, start, end, value, quality,
                                      correction))
    if not found_readings:
        return None
    return BulkRow(index, unit, fsp, operator, tuple(found_readings))


def _bulk_row(index: int, row: object, starts: dict[str, datetime],
              durations: dict[str, timedelta]) -> BulkRow:
    if not isinstance(row, Mapping):
        raise ValueError("a row is an object")
    unknown = set(row) - BULK_ROW_MEMBERS
    if unknown:
        raise ValueError(f"unknown member(s) {', '.join(sorted(map(str, unknown)))}")
    unit = _text(row, "unit", required=True)
    raw_start = _text(row, "start", required=True)
    assert unit is not None and raw_start is not None
    start = starts.get(raw_start)
    if start is None:
        try:
            timing.check_datetime(raw_start)
            start = datetime.fromisoformat(raw_start.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValueError(f"start: {exc}") from exc
        if start.tzinfo is None or start.year == timing.NOW_SENTINEL_YEAR:
            raise ValueError("start must be an explicit date-time with a time zone")
        starts[raw_start] = start
    raw_duration = _text(row, "duration")
    duration = BULK_DEFAULT_DURATION
    if raw_duration is not None:
        found = durations.get(raw_duration)
        if found is None:
            try:
                found = timing.parse_duration(raw_duration)
            except ValueError as exc:
                raise ValueError(f"duration: {exc}") from exc
            if found is None:
                raise ValueError("duration must be positive and at most one day")
            durations[raw_duration] = found
        duration = found
    if duration <= timedelta(0) or duration > LONGEST_INTERVAL:
        raise ValueError("duration must be positive and at most one day")
    quality = row.get("quality", "OK")
    if quality not in QUALITIES:
        raise ValueError(f"quality must be one of {', '.join(QUALITIES)}")
    correction = row.get("correction", False)
    if not isinstance(correction, bool):
        raise ValueError("correction must be true or false")
    found_readings = []
    for member, reading_type in BULK_VALUES:
        if member not in row:
            continue
        value: Decimal | None = None
        if quality == "MISSING":
            if row[member] is not None:
                raise ValueError(f"a MISSING reading carries no value ({member} must be null)")
        else:
            try:
                value = _number(row[member])
            except ValueError as exc:
                raise ValueError(f"{member}: {exc}") from exc
            if value.adjusted() >= 12 or value != value.quantize(Decimal("0.000001")):
                raise ValueError(f"{member}: at most 12 digits before and 6 after the point")
        found_readings.append(Reading(unit, reading_type, start, start + duration, value,
                                      quality, correction))
    if not found_readings:
        raise ValueError("a row carries kwh, kvarh or both")
    return BulkRow(index, unit, _text(row, "fsp"), _text(row, "operator"),
                   tuple(found_readings))
