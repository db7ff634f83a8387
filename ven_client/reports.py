"""Meter readings and availability declarations: CSV drop folder to report bodies.

Wire formats (docs/fsp-agent.md, "CSV drop folder"): a reading report goes on the
FSP's metering event ``GB-<OP>-METERING/<fspId>``, an availability report on
``GB-<OP>-AVAILABILITY/<fspId>``; one resource per unit, one interval per period with
its own ``intervalPeriod``. Energy is kWh in the interval, positive = import from the
grid, negative = export; power is kW. Times are UTC.

Files:

* ``readings-*.csv``: ``unit,start,duration,type,value[,quality][,correction]`` where
  ``type`` is USAGE (kWh), DEMAND (kW mean), BASELINE (kW) or GB_REACTIVE (kVArh,
  + absorbed from the grid, - supplied to it), ``quality`` one of OK,
  MISSING, ESTIMATED, BAD and ``correction`` true/false (this corrects a reading sent
  before);
* ``availability-*.csv``: ``unit,start,end,available_kw`` (kW >= 0).

A file is queued whole or not at all: a bad row moves it to ``failed/`` with a
``.error`` note beside it.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from gbflex_profile.vocabulary import (
    BASELINE,
    DATA_QUALITY,
    DEMAND,
    GB_AVAILABLE_KW,
    GB_CORRECTION,
    GB_REACTIVE,
    QUALITIES,
    REPORT_DESCRIPTOR,
    USAGE,
)
from ven_client.profile import _duration

# Units and OpenADR readingType each reading type is sent with.
READING_TYPES = {USAGE: ("KWH", "DIRECT_READ"), DEMAND: ("KW", "MEAN"),
                 BASELINE: ("KW", "BASELINE"), GB_REACTIVE: ("KVARH", "DIRECT_READ")}
MAX_INTERVALS_PER_REPORT = 500
METERING, AVAILABILITY = "metering", "availability"


class CsvError(ValueError):
    """A drop file that cannot be queued; the message names the line."""


@dataclass(frozen=True)
class DropFile:
    kind: str  # metering or availability
    reports: list[dict]  # report bodies without eventID/programID
    rows: int


def _utc(text: str, line: int) -> str:
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise CsvError(f"line {line}: {text!r} is not an ISO 8601 time") from exc
    if value.tzinfo is None:
        raise CsvError(f"line {line}: {text!r} has no UTC offset")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _number(text: str, line: int, what: str) -> int | float:
    try:
        value = float(text)
    except ValueError as exc:
        raise CsvError(f"line {line}: {what} {text!r} is not a number") from exc
    if value != value or value in (float("inf"), float("-inf")):
        raise CsvError(f"line {line}: {what} must be finite")
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def _iso_duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return "PT" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "") + \
        (f"{secs}S" if secs or not (hours or minutes) else "")


def _rows(text: str, required: tuple[str, ...]) -> list[tuple[int, dict]]:
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [name for name in required if name not in header]
    if missing:
        raise CsvError(f"the header lacks {', '.join(missing)}")
    reader.fieldnames = header
    return [(index + 2, {k: (v or "").strip() for k, v in row.items() if k})
            for index, row in enumerate(reader) if any((v or "").strip() for v in row.values()
                                                       if isinstance(v, str))]


def _chunks(kind: str, by_unit: dict[str, dict], descriptors: list[dict],
            name: str) -> list[dict]:
    """Report bodies of at most MAX_INTERVALS_PER_REPORT intervals each."""
    intervals = [(unit, period, payloads) for unit, periods in sorted(by_unit.items())
                 for period, payloads in sorted(periods.items())]
    reports = []
    for offset in range(0, len(intervals), MAX_INTERVALS_PER_REPORT):
        resources: dict[str, list] = defaultdict(list)
        for unit, (start, duration), payloads in intervals[offset:offset +
                                                           MAX_INTERVALS_PER_REPORT]:
            resources[unit].append({"id": len(resources[unit]),
                                    "intervalPeriod": {"start": start, "duration": duration},
                                    "payloads": payloads})
        reports.append({"reportName": f"{kind} {name}", "payloadDescriptors": descriptors,
                        "resources": [{"resourceName": unit, "intervals": items}
                                      for unit, items in resources.items()]})
    return reports


def parse_readings(text: str, *, name: str, units: set[str] | None = None) -> DropFile:
    """A readings CSV as metering report bodies."""
    by_unit: dict[str, dict] = defaultdict(lambda: defaultdict(list))
    corrections: set[tuple] = set()
    used: set[str] = set()
    rows = _rows(text, ("unit", "start", "duration", "type", "value"))
    for line, row in rows:
        unit = row["unit"]
        if not unit or (units is not None and unit not in units):
            raise CsvError(f"line {line}: {unit!r} is not a unit of this site")
        kind = row["type"].upper()
        if kind not in READING_TYPES:
            raise CsvError(f"line {line}: type must be one of {', '.join(READING_TYPES)}")
        try:
            _duration(row["duration"])
        except ValueError as exc:
            raise CsvError(f"line {line}: {exc}") from exc
        period = (_utc(row["start"], line), row["duration"])
        payloads = by_unit[unit][period]
        if any(p["type"] == kind for p in payloads):
            raise CsvError(f"line {line}: a second {kind} for {unit} at {period[0]}")
        payloads.append({"type": kind, "values": [_number(row["value"], line, "value")]})
        used.add(kind)
        quality = (row.get("quality") or "").upper()
        if quality:
            if quality not in QUALITIES:
                raise CsvError(f"line {line}: quality must be one of {', '.join(QUALITIES)}")
            if not any(p["type"] == DATA_QUALITY for p in payloads):
                payloads.append({"type": DATA_QUALITY, "values": [quality]})
        correction = (row.get("correction") or "").lower()
        if correction not in ("", "true", "false", "1", "0", "yes", "no"):
            raise CsvError(f"line {line}: correction must be true or false")
        if correction in ("true", "1", "yes") and (unit, period) not in corrections:
            corrections.add((unit, period))
            payloads.append({"type": GB_CORRECTION, "values": [True]})
    descriptors = [{"objectType": REPORT_DESCRIPTOR, "payloadType": kind,
                    "units": READING_TYPES[kind][0], "readingType": READING_TYPES[kind][1]}
                   for kind in READING_TYPES if kind in used]
    return DropFile(METERING, _chunks(METERING, by_unit, descriptors, name), len(rows))


def parse_availability(text: str, *, name: str, units: set[str] | None = None) -> DropFile:
    """An availability CSV as availability report bodies."""
    by_unit: dict[str, dict] = defaultdict(dict)
    rows = _rows(text, ("unit", "start", "end", "available_kw"))
    for line, row in rows:
        unit = row["unit"]
        if not unit or (units is not None and unit not in units):
            raise CsvError(f"line {line}: {unit!r} is not a unit of this site")
        start, end = _utc(row["start"], line), _utc(row["end"], line)
        seconds = (datetime.fromisoformat(end.replace("Z", "+00:00")) -
                   datetime.fromisoformat(start.replace("Z", "+00:00"))).total_seconds()
        if seconds <= 0:
            raise CsvError(f"line {line}: end must be after start")
        kw = _number(row["available_kw"], line, "available_kw")
        if kw < 0:
            raise CsvError(f"line {line}: available_kw must be >= 0")
        period = (start, _iso_duration(seconds))
        if period in by_unit[unit]:
            raise CsvError(f"line {line}: a second declaration for {unit} at {start}")
        by_unit[unit][period] = [{"type": GB_AVAILABLE_KW, "values": [kw]}]
    descriptors = [{"objectType": REPORT_DESCRIPTOR, "payloadType": GB_AVAILABLE_KW,
                    "units": "KW"}]
    return DropFile(AVAILABILITY, _chunks(AVAILABILITY, by_unit, descriptors, name), len(rows))


def parse_file(path: Path, text: str, units: set[str] | None = None) -> DropFile:
    if path.name.startswith("readings-"):
        return parse_readings(text, name=path.name, units=units)
    if path.name.startswith("availability-"):
        return parse_availability(text, name=path.name, units=units)
    raise CsvError(f"{path.name} is neither readings-*.csv nor availability-*.csv")


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def drop_files(folder: Path) -> list[Path]:
    """The CSV files waiting in ``folder``, oldest first (by name within a second)."""
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_file() and p.suffix == ".csv"
             and p.name.startswith(("readings-", "availability-"))]
    return sorted(found, key=lambda p: (p.stat().st_mtime, p.name))
