"""ven_client.jcs (RFC 8785) agrees with the reference ``rfc8785`` package."""

from __future__ import annotations

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from ven_client import jcs

SAFE = 2**53 - 1
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-SAFE, SAFE)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(), children, max_size=5),
    max_leaves=30)


@pytest.mark.slow
@settings(max_examples=2000, deadline=None)
@given(json_values)
def test_canonical_bytes_match_the_reference_implementation(value):
    assert jcs.dumps(value) == rfc8785.dumps(value)


@settings(max_examples=3000, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_every_double_is_written_in_ecmascript_form(value):
    assert jcs.dumps(value) == rfc8785.dumps(value)


def test_members_are_ordered_by_utf16_code_units_not_code_points():
    # U+1F600 is D83D DE00 in UTF-16, before U+E000; by code point it would come after.
    value = {"\ue000": 1, "\U0001f600": 2, "a": 3}
    assert jcs.dumps(value) == '{"a":3,"\U0001f600":2,"\ue000":1}'.encode()
    assert jcs.dumps(value) == rfc8785.dumps(value)


@pytest.mark.parametrize(("number", "text"), [
    (1.0, "1"), (-0.0, "0"), (1e21, "1e+21"), (1e20, "100000000000000000000"),
    (1e-7, "1e-7"), (0.000001, "0.000001"), (123.456, "123.456"), (5e-324, "5e-324")])
def test_numbers_take_the_ecmascript_form(number, text):
    assert jcs.dumps(number) == text.encode()


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 2**53, "\ud800", {1: 2}, b"x"])
def test_values_without_a_canonical_form_are_refused(value):
    with pytest.raises(jcs.CanonicalizationError):
        jcs.dumps(value)
