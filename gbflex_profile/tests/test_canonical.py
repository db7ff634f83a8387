"""RFC 8785 canonical JSON: the byte forms both sides sign and hash."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gbflex_profile.canonical import CanonicalizationError, canonical_json

SAFE = 2**53 - 1
# Values whose canonical form plain json.dumps also produces: no floats (ECMAScript number
# form differs) and ASCII keys (sorted the same by code point and by UTF-16 unit).
plain_values = st.recursive(
    st.none() | st.booleans() | st.integers(-SAFE, SAFE) | st.text(),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(st.characters(max_codepoint=127)), children, max_size=5),
    max_leaves=30)


@settings(max_examples=500, deadline=None)
@given(plain_values)
def test_without_floats_the_form_is_sorted_compact_unescaped_json(value):
    expected = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical_json(value) == expected.encode("utf-8")


@settings(max_examples=500, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_every_double_reads_back_as_itself(value):
    assert float(json.loads(canonical_json(value))) == value


def test_members_are_ordered_by_utf16_code_units_not_code_points():
    # U+1F600 is D83D DE00 in UTF-16, before U+E000; by code point it would come after.
    value = {"\ue000": 1, "\U0001f600": 2, "a": 3}
    assert canonical_json(value) == '{"a":3,"\U0001f600":2,"\ue000":1}'.encode()


@pytest.mark.parametrize(("number", "text"), [
    (1.0, "1"), (-0.0, "0"), (1e21, "1e+21"), (1e20, "100000000000000000000"),
    (1e-7, "1e-7"), (0.000001, "0.000001"), (123.456, "123.456"), (5e-324, "5e-324"),
    (250, "250"), (120.5, "120.5")])
def test_numbers_take_the_ecmascript_form(number, text):
    assert canonical_json(number) == text.encode()


def test_strings_escape_only_what_ecmascript_escapes():
    assert canonical_json("é\u2028\"\\\n\x01/") == '"é\u2028\\"\\\\\\n\\u0001/"'.encode()


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 2**53, "\ud800", {1: 2}, b"x"])
def test_values_without_a_canonical_form_are_refused(value):
    with pytest.raises(CanonicalizationError):
        canonical_json(value)
