"""Metered average power per settlement period, worked out over arrays (numpy) for a batch
of units at once instead of reading by reading.

This is the vectorised form of the rule in docs/settlement.md ("What goes into a
statement", "the meter readings"; "Missing data"), which
:func:`settlement.statement.period_average_kw` states reading by reading:

* a ``USAGE`` reading is kWh over its interval, so a period's average power is
  ``kWh / period hours``; a ``DEMAND`` reading is already kW (``kW x hours / hours``);
* a period has a value only when a reading covers all of it; a reading flagged missing
  (null) makes the period *missing*, never zero;
* ``USAGE`` is preferred where both types cover a period: a ``DEMAND`` value stands only
  where no ``USAGE`` reading has a value, and a missing ``USAGE`` reading does not hide a
  ``DEMAND`` reading of the same period.

Here every reading is one row of plain integer arrays: its unit (as a row of the batch),
its type, its start and end in microseconds since 2000-01-01 UTC (PostgreSQL's own
binary timestamp) and its value in millionths (the column's six decimals), so nothing is
rounded and the figures are the reference's to the last digit. :func:`period_table`
handles the settlement-grade case, one reading exactly filling one period; a unit with any
other reading (shorter intervals, an interval off the period grid) is left to the
reading-by-reading rule, and :func:`period_table` says which units those are.

:class:`MeteredKw` is one unit's row of the table seen as the ``Mapping[period start,
Decimal | None]`` that :mod:`.baselines` and :mod:`.delivery` read: each period's
``Decimal`` is made only when a calculation asks for it, by the same arithmetic as the
reference (``kWh / hours``), so a month of readings never becomes millions of objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache

import numpy as np
import numpy.typing as npt

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # PostgreSQL's binary timestamps count from here
NULL_VALUE = np.iinfo(np.int64).min  # a reading flagged missing (null value)
VALUE_SCALE = 6  # values arrive in millionths of a kWh (USAGE) or kW (DEMAND)

USAGE, DEMAND, OTHER = 2, 1, 0  # reading type codes (BASELINE readings are not metered)

# What a period of the table holds.
UNKNOWN, PRESENT, MISSING = 0, 1, 2

IntArray = npt.NDArray[np.int64]


def to_microseconds(instant: datetime) -> int:
    """An aware datetime as whole microseconds since 2000-01-01 UTC."""
    return (instant - EPOCH) // timedelta(microseconds=1)


@dataclass(frozen=True)
class PeriodTable:
    """Per unit (row) and period (column, from ``origin`` every ``minutes``): what the
    meter says. ``state`` is UNKNOWN (no reading: the key is absent), PRESENT or MISSING;
    where PRESENT, ``value`` is the reading in millionths and ``kind`` its type."""

    origin: datetime
    minutes: int
    state: npt.NDArray[np.int8]
    value: IntArray
    kind: npt.NDArray[np.int8]
    irregular: npt.NDArray[np.bool_]  # units left to the reading-by-reading rule


def period_table(*, units: IntArray, kinds: npt.NDArray[np.integer], starts: IntArray,
                 ends: IntArray, values: IntArray, unit_count: int, origin: datetime,
                 periods: int, minutes: int) -> PeriodTable:
    """The period table of a batch of readings (parallel arrays, one element per reading:
    ``units`` the unit's row in the batch, ``kinds`` USAGE/DEMAND/OTHER, ``starts`` and
    ``ends`` in microseconds since 2000-01-01 UTC, ``values`` in millionths or
    NULL_VALUE). ``periods`` periods of ``minutes`` from ``origin`` (on the period grid);
    readings outside them are ignored. A unit with a metered reading that is not exactly
    one whole period is flagged ``irregular`` and its row left UNKNOWN."""
    step = minutes * 60_000_000
    first = to_microseconds(origin)
    metered = (kinds == USAGE) | (kinds == DEMAND)
    offset = starts - first
    slot = offset // step
    regular = (offset % step == 0) & (ends - starts == step)
    inside = (slot >= 0) & (slot < periods)
    irregular = np.zeros(unit_count, dtype=np.bool_)
    irregular[units[metered & ~regular]] = True
    keep = metered & regular & inside & ~irregular[units]
    state = np.full((unit_count, periods), UNKNOWN, dtype=np.int8)
    value = np.zeros((unit_count, periods), dtype=np.int64)
    kind = np.zeros((unit_count, periods), dtype=np.int8)
    null = values == NULL_VALUE
    # DEMAND first, then USAGE over it: USAGE wins wherever it has a value (reference:
    # statement.period_average_kw writes DEMAND, then USAGE).
    demand = keep & (kinds == DEMAND)
    rows, cols = units[demand], slot[demand]
    state[rows, cols] = np.where(null[demand], MISSING, PRESENT)
    value[rows, cols] = values[demand]
    kind[rows, cols] = DEMAND
    usage = keep & (kinds == USAGE) & ~null
    rows, cols = units[usage], slot[usage]
    state[rows, cols] = PRESENT
    value[rows, cols] = values[usage]
    kind[rows, cols] = USAGE
    # A missing USAGE reading marks a period missing only where nothing else is known.
    gap = keep & (kinds == USAGE) & null
    rows, cols = units[gap], slot[gap]
    unknown = state[rows, cols] == UNKNOWN
    state[rows[unknown], cols[unknown]] = MISSING
    return PeriodTable(origin=origin, minutes=minutes, state=state, value=value, kind=kind,
                       irregular=irregular)


class MeteredKw(Mapping[datetime, Decimal | None]):
    """One unit's average kW per period start (UTC), read from its row of a
    :class:`PeriodTable`: absent where no reading covers the period, None where the
    reading is missing, else the period's average as an exact ``Decimal``. ``slots`` maps
    each period start of the table to its column (one dict shared by a batch's units)."""

    __slots__ = ("_slots", "_hours", "_per_reading", "_table", "_row", "_lists")

    def __init__(self, table: PeriodTable, row: int, slots: Mapping[datetime, int]) -> None:
        self._slots = slots
        self._hours = Decimal(table.minutes) / 60
        # kWh in millionths / (hours x 10**6) is kWh / hours exactly (one division)
        self._per_reading = self._hours.scaleb(VALUE_SCALE)
        self._table, self._row = table, row
        self._lists: tuple[list[int], list[int], list[int]] | None = None

    def _columns(self) -> tuple[list[int], list[int], list[int]]:
        """The row's state, value and kind as Python lists (indexing them is far cheaper
        than indexing numpy scalars), made the first time the row is read: a unit whose
        row no calculation reads (no reactive dispatch, say) never pays for them."""
        if self._lists is None:
            table, row = self._table, self._row
            self._lists = (table.state[row].tolist(), table.value[row].tolist(),
                           table.kind[row].tolist())
        return self._lists

    def _kw(self, slot: int) -> Decimal | None:
        state, value, kind = self._columns()
        if state[slot] == MISSING:
            return None
        if kind[slot] == USAGE:  # kWh over the period
            return Decimal(value[slot]) / self._per_reading
        reading = Decimal(value[slot]).scaleb(-VALUE_SCALE)
        return reading * self._hours / self._hours  # kW, as energy and back (reference)

    def _known(self, start: object) -> int | None:
        """The column of ``start`` when the table knows it (present or missing), else None."""
        slot = self._slots.get(start) if isinstance(start, datetime) else None
        return slot if slot is not None and self._columns()[0][slot] else None

    def __getitem__(self, start: datetime) -> Decimal | None:
        slot = self._known(start)
        if slot is None:
            raise KeyError(start)
        return self._kw(slot)

    def get(self, start: datetime, default: Decimal | None = None) -> Decimal | None:  # type: ignore[override]
        slot = self._known(start)
        return default if slot is None else self._kw(slot)

    def lacking(self, starts: Iterable[datetime]) -> tuple[datetime, ...]:
        """Those of ``starts`` without a value (absent or missing): the starts for which
        ``get`` answers None, without making any value."""
        slots, state = self._slots, self._columns()[0]
        return tuple(start for start in starts
                     if (slot := slots.get(start)) is None or state[slot] != PRESENT)

    def __contains__(self, start: object) -> bool:
        return self._known(start) is not None

    def __iter__(self) -> Iterator[datetime]:
        state = self._columns()[0]
        for start, slot in self._slots.items():
            if state[slot]:
                yield start

    def __len__(self) -> int:
        return sum(1 for state in self._columns()[0] if state)


def period_slots(table: PeriodTable) -> Mapping[datetime, int]:
    """Each period start of ``table`` (UTC) and its column (one mapping shared by every
    table of the same periods: read it, never change it)."""
    return _slots(table.origin, table.minutes, table.state.shape[1])


@lru_cache(maxsize=16)
def _slots(origin: datetime, minutes: int, periods: int) -> Mapping[datetime, int]:
    step = timedelta(minutes=minutes)
    return {origin + step * slot: slot for slot in range(periods)}
