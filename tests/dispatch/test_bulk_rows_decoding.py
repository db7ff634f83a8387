"""The bulk meter-readings body read by the compiled decoder (``readings.decode_bulk_body``
and ``dispatch.api.parsers.BulkReadingsParser``) gives exactly what the project's strict
parser and the row checks give: the same rows and readings, the same refusals with the
same messages; what the decoder does not take (lone surrogates, deep nesting, NaN, other
JSON types) goes to the strict parser and is refused or explained as before."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rest_framework.exceptions import ParseError

from dispatch import readings
from dispatch.api.parsers import BulkReadingsParser
from vtn.api.parsers import MAX_JSON_DEPTH, SURROGATE, TOO_DEEP


def shown(parsed: tuple[list[readings.BulkRow], list[str]]) -> tuple[list, list[str]]:
    """Rows and errors with every value spelt out (Decimal('1.0') is not Decimal('1'))."""
    rows, errors = parsed
    return [(row.number, row.unit, row.fsp, row.operator,
             [(r.unit, r.reading_type, r.start, r.end, None if r.value is None else str(r.value),
               r.quality, r.correction) for r in row.readings]) for row in rows], errors


def both_ways(body: bytes) -> tuple[tuple, tuple | None]:
    """What the strict parser and the row checks make of ``body``, and what the decoder
    path makes of it (None when the decoder hands the body on)."""
    slow = shown(readings.parse_bulk_rows(json.loads(body)["readings"]))
    decoded = readings.decode_bulk_body(body)
    return slow, None if decoded is None else shown(readings.parse_bulk_rows(decoded.readings))


def test_a_plain_body_is_decoded_into_typed_rows_with_the_same_readings():
    body = json.dumps({"readings": [
        {"unit": "h1", "start": "2026-11-28T00:00:00Z", "kwh": "0.5", "kvarh": 0.25},
        {"unit": "h1", "start": "2026-11-28T00:30:00+00:00", "kwh": 1, "duration": "PT30M",
         "quality": "ESTIMATED", "correction": True, "fsp": "hp", "operator": "nged-wm"},
        {"unit": "h2", "start": "2026-11-28T00:00:00Z", "kwh": None, "quality": "MISSING"},
    ]}).encode()
    slow, fast = both_ways(body)
    assert fast == slow
    rows, errors = slow
    assert errors == [] and len(rows) == 3
    assert rows[0][4][0][2] == datetime(2026, 11, 28, tzinfo=UTC)
    assert [r[4] for r in rows[0][4]] == ["0.5", "0.25"]


@pytest.mark.parametrize("body", [
    b'{"readings": [{"unit": "h\\ud800", "start": "2026-11-28T00:00:00Z", "kwh": 1}]}',
    b'{"readings": [{"unit": "h1", "start": "2026-11-28T00:00:00Z", "kwh": 1, "\\udc00": 1}]}',
])
def test_a_lone_surrogate_is_refused_by_the_strict_parser(body):
    assert readings.decode_bulk_body(body) is None
    with pytest.raises(ParseError, match="surrogate") as refused:
        BulkReadingsParser().parse(io.BytesIO(body))
    assert str(refused.value.detail) == SURROGATE


def test_deep_nesting_is_refused_by_the_strict_parser():
    deep = "[" * (MAX_JSON_DEPTH + 5) + "]" * (MAX_JSON_DEPTH + 5)
    body = ('{"readings": [{"unit": "h1", "start": "2026-11-28T00:00:00Z", "kwh": '
            + deep + "}]}").encode()
    assert readings.decode_bulk_body(body) is None
    with pytest.raises(ParseError) as refused:
        BulkReadingsParser().parse(io.BytesIO(body))
    assert str(refused.value.detail) == TOO_DEEP


@pytest.mark.parametrize("body", [
    b'{"readings": [], "other": 1}',
    b'[{"unit": "h1"}]',
    b'{"readings": [{"unit": "h1", "start": "2026-11-28T00:00:00Z", "kwh": NaN}]}',
    b'{"readings": [{"unit": "h1", "start": "2026-11-28T00:00:00Z", "kwh": 1e400}]}',
    b'{"readings": [{"unit": "h1", "start": "2026-11-28T00:00:00Z", "kwh": true}]}',
    b'{"readings": [{"unit": "h1", "start": "2026-11-28T00:00:00Z", "quality": null}]}',
    b'{"readings": [{"unit": 7, "start": "2026-11-28T00:00:00Z", "kwh": 1}]}',
    b'{"readings": [{"unit": "h1", "start": "2026-11-28T00:00:00Z", "colour": "blue"}]}',
])
def test_a_body_the_decoder_does_not_take_is_read_by_the_strict_parser(body):
    assert readings.decode_bulk_body(body) is None
    assert BulkReadingsParser().parse(io.BytesIO(body)) == json.loads(body)


@pytest.mark.parametrize("body", [b'{"readings": [1,]}', b"\xff", b'\xef\xbb\xbf{"readings": []}',
                                  b'{"readings": [{"unit": "\x01"}]}'])
def test_a_body_that_is_not_json_is_refused_as_before(body):
    assert readings.decode_bulk_body(body) is None
    with pytest.raises(ParseError):
        BulkReadingsParser().parse(io.BytesIO(body))


texts = st.sampled_from(["h1", "h2", "hp/h1", "", "x" * 128, "x" * 129, "NGED-WM", "nged-wm"])
starts = st.sampled_from([
    "2026-11-28T00:00:00Z", "2026-11-28T00:30:00Z", "2026-11-28T01:00:00+01:00",
    "2026-11-28T00:00:00", "yesterday", "2026-11-28", "0001-01-01T00:00:00Z", "",
    "2026-02-30T00:00:00Z"])
plain_numbers = st.one_of(
    st.sampled_from(["0.5", "0.123456", "0.1234567", "-2", "1e3", "abc", "", "999999999999",
                     "99999999999.999999", "1.50", "Infinity", "NaN", "0", "-0"]),
    st.integers(min_value=-10**13, max_value=10**13),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.sampled_from([0.0, -0.0, 0.1, 1.0, 1e-7, 123456.000001]))
numbers = st.one_of(plain_numbers, st.sampled_from([True, None, [1], {"a": 1}]))
rows = st.dictionaries(
    st.sampled_from(["unit", "start", "duration", "kwh", "kvarh", "quality", "correction",
                     "fsp", "operator", "colour"]),
    st.one_of(texts, starts, numbers,
              st.sampled_from(["PT30M", "PT1H", "PT0S", "P2D", "PT15M", "later", None]),
              st.sampled_from(["OK", "MISSING", "ESTIMATED", "BAD", "GREAT", "ok"]),
              st.booleans()))
plain_rows = st.fixed_dictionaries(
    {"unit": texts, "start": starts},
    optional={"kwh": plain_numbers, "kvarh": plain_numbers,
              "duration": st.sampled_from(["PT30M", "PT1H"]),
              "quality": st.sampled_from(["OK", "ESTIMATED", "MISSING"]),
              "correction": st.booleans(), "fsp": texts, "operator": texts})


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(rows, plain_rows), min_size=1, max_size=12))
def test_decoded_rows_read_exactly_as_the_strict_path_reads_them(body_rows):
    slow, fast = both_ways(json.dumps({"readings": body_rows}).encode())
    if fast is not None:
        assert fast == slow


@settings(max_examples=200, deadline=None)
@given(st.lists(plain_rows, min_size=1, max_size=12))
def test_plain_rows_are_taken_by_the_decoder(body_rows):
    body = json.dumps({"readings": body_rows}).encode()
    assert readings.decode_bulk_body(body) is not None
    slow, fast = both_ways(body)
    assert fast == slow


def test_the_full_row_check_runs_once_per_start_of_a_plain_body(monkeypatch):
    checked = []
    full_check = readings._bulk_row

    def counted(index, row, starts, durations):
        checked.append(index)
        return full_check(index, row, starts, durations)

    monkeypatch.setattr(readings, "_bulk_row", counted)
    body = json.dumps({"readings": [
        {"unit": f"h{n % 5}", "start": f"2026-11-28T0{n % 2}:00:00Z", "kwh": f"0.{n}"}
        for n in range(100)]}).encode()
    decoded = readings.decode_bulk_body(body)
    assert decoded is not None
    rows, errors = readings.parse_bulk_rows(decoded.readings)
    assert errors == [] and len(rows) == 100
    assert checked == [0, 1]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) |
    st.dictionaries(st.sampled_from(["unit", "start", "kwh", "quality", "x"]) | st.text(),
                    children, max_size=4), max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=200), json_values.map(
    lambda value: json.dumps({"readings": value}).encode())))
def test_any_body_is_read_or_refused_with_a_parse_error_never_anything_else(body):
    try:
        parsed = BulkReadingsParser().parse(io.BytesIO(body))
    except ParseError:
        return
    rows = parsed.readings if isinstance(parsed, readings.BulkBody) else (
        parsed.get("readings") if isinstance(parsed, dict) else None)
    readings.parse_bulk_rows(rows)  # answers rows and errors; raises nothing
