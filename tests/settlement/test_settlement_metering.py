"""The metered arrays (settlement.calc.metering) and the readings digest made from arrays
(settlement.statement.readings_digests) against their reading-by-reading statements."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np

from settlement import statement
from settlement.calc import metering

KINDS = ("USAGE", "DEMAND", "BASELINE", "GB_REACTIVE")
ORIGIN = datetime(2026, 11, 1, tzinfo=UTC)


def test_lacking_names_the_starts_that_get_answers_none_for():
    rng = random.Random(7)
    periods, step = 96, 30 * 60_000_000
    rows = [(slot, rng.choice((metering.USAGE, metering.DEMAND)),
             rng.choice((metering.NULL_VALUE, rng.randint(-10**8, 10**8))))
            for slot in range(periods) if rng.random() < 0.8]
    start = metering.to_microseconds(ORIGIN)
    table = metering.period_table(
        units=np.zeros(len(rows), dtype=np.int64),
        kinds=np.array([kind for _, kind, _ in rows], dtype=np.int64),
        starts=np.array([start + slot * step for slot, _, _ in rows], dtype=np.int64),
        ends=np.array([start + (slot + 1) * step for slot, _, _ in rows], dtype=np.int64),
        values=np.array([value for _, _, value in rows], dtype=np.int64), unit_count=1,
        origin=ORIGIN, periods=periods, minutes=30)
    metered = metering.MeteredKw(table, 0, metering.period_slots(table))
    asked = [ORIGIN + timedelta(minutes=30 * k) for k in range(-4, periods + 4)]
    lacking = metered.lacking(asked)
    assert lacking == tuple(s for s in asked if metered.get(s) is None)
    assert 0 < len(lacking) < len(asked)


def _digests_both_ways(rows: list[tuple[int, int, int, int, int | None]], unit_count: int
                       ) -> tuple[list[str], list[str]]:
    def column(index: int) -> np.ndarray:
        return np.array([row[index] for row in rows], dtype=np.int64)
    values = np.array([metering.NULL_VALUE if row[4] is None else row[4] for row in rows],
                      dtype=np.int64)
    arrays = statement.readings_digests(
        units=column(0), kinds=KINDS, kind_index=column(1), starts=column(2),
        versions=column(3), values=values, scale=metering.VALUE_SCALE,
        null=metering.NULL_VALUE, unit_count=unit_count)
    epoch = datetime(2000, 1, 1, tzinfo=UTC)
    by_row = [statement.readings_digest(
        (KINDS[kind], (epoch + timedelta(microseconds=start)).isoformat(), version,
         None if value is None else Decimal(value).scaleb(-6).quantize(Decimal("0.000001")))
        for unit, kind, start, version, value in rows if unit == position)
        for position in range(unit_count)]
    return arrays, by_row


def test_readings_digests_from_arrays_are_the_row_by_row_digests():
    rng = random.Random(11)
    for size, versions in ((300, 3), (1, 1), (0, 1), (200, 10**9)):
        rows = sorted((rng.randrange(6), rng.randrange(4), rng.randrange(-10**12, 10**13),
                       rng.randint(0, versions),
                       rng.choice((None, 0, -1, 5, rng.randint(-10**10, 10**10))))
                      for _ in range(size))
        arrays, by_row = _digests_both_ways(rows, 7)
        assert arrays == by_row


def test_readings_digests_on_the_period_grid_are_the_row_by_row_digests():
    """Starts on whole minutes, close together (the usual case, counted without sorting), with
    corrected versions, missing values, negative values and values of every width."""
    rng = random.Random(13)
    start = metering.to_microseconds(ORIGIN)
    step = 15 * 60_000_000
    rows = sorted(((unit, rng.randrange(4), start + rng.randrange(-4, 40) * step,
                    rng.choice((1, 1, 2)),
                    rng.choice((None, 0, -1, 999_999, -1_000_000,
                                rng.randint(-10**17, 10**17), rng.randint(-10**7, 10**7))))
                   for unit in (0, 2, 3) for _ in range(400)), key=lambda row: row[:4])
    arrays, by_row = _digests_both_ways(rows, 5)
    assert arrays == by_row


def test_readings_digests_laid_out_in_chunks_are_the_row_by_row_digests(monkeypatch):
    """Chunks of lines that end inside a unit, at a unit's end, or hold several units (and
    units with no readings between them) give the same digests as one chunk."""
    rng = random.Random(19)
    start = metering.to_microseconds(ORIGIN)
    rows = sorted(((unit, rng.randrange(4), start + rng.randrange(0, 30) * 30 * 60_000_000,
                    rng.choice((1, 2)), rng.choice((None, -7, rng.randint(-10**9, 10**9))))
                   for unit, count in ((0, 5), (1, 1), (3, 40), (4, 2), (6, 13))
                   for _ in range(count)), key=lambda row: row[:4])
    for chunk in (1, 2, 5, 7, 64):
        monkeypatch.setattr(statement, "_DIGEST_CHUNK", chunk)
        arrays, by_row = _digests_both_ways(rows, 8)
        assert arrays == by_row


def test_value_texts_from_arrays_are_the_reading_by_reading_texts():
    rng = random.Random(17)
    for scale in (0, 3, 6):
        values = [metering.NULL_VALUE, 0, -1, 1, 10**scale, -(10**scale)] + [
            rng.randint(-10**17, 10**17) for _ in range(200)]
        rows, lengths = statement._value_texts(np.array(values, dtype=np.int64), scale,
                                               metering.NULL_VALUE)
        texts = [bytes(row[len(row) - length:]) for row, length in
                 zip(rows.tolist(), lengths.tolist(), strict=True)]
        assert texts == [statement._value_text(value, scale, metering.NULL_VALUE)
                         for value in values]
