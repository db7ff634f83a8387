"""The one walk that checks a request body's values (``vtn.wire.base._check_body``) names
the same fault as checking storability and then bounds in two plain walks, value by value,
as the VTN did before; and the parser's string check is skipped only where it cannot find
anything."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vtn import timing
from vtn.api.parsers import loads_strict
from vtn.errors import BadRequest
from vtn.wire.base import MAX_NAME_LENGTH, _check_body, _check_storable


def reference_bounds(value: object, path: str = "body") -> None:
    """The bounds check as two plain recursive walks made it: names, durations, interval
    starts."""
    if isinstance(value, list):
        for index, item in enumerate(value):
            reference_bounds(item, f"{path}[{index}]")
        return
    if not isinstance(value, dict):
        return
    for key, item in value.items():
        where = f"{path}.{key}"
        if isinstance(item, str):
            try:
                if key.endswith("Name") and len(item) > MAX_NAME_LENGTH:
                    raise ValueError(f"at most {MAX_NAME_LENGTH} characters")
                if key == "duration":
                    timing.check_duration(item)
                if key == "start" and path.endswith("intervalPeriod"):
                    timing.check_datetime(item)
            except ValueError as exc:
                raise BadRequest(f"{where.removeprefix('body.')}: {exc}.") from exc
        else:
            reference_bounds(item, where)


def fault(check, body: object) -> str | None:
    try:
        check(body)
    except BadRequest as exc:
        return exc.detail
    return None


def reference(body: object) -> None:
    _check_storable(body)
    reference_bounds(body)


LEAVES = (st.none() | st.booleans() | st.integers(-2**64, 2**64)
          | st.floats(allow_nan=True, allow_infinity=True)
          | st.sampled_from(["PT30M", "PT30M", "P99999Y", "30M", "2026-11-01T00:00:00Z",
                             "1066-10-14T09:00:00Z", "PT30M", "a\x00b", "x" * 129, "ok"]))
KEYS = st.sampled_from(["start", "duration", "intervalPeriod", "reportName", "resourceName",
                        "values", "id", "k\x00", "payloads"])
BODIES = st.recursive(LEAVES, lambda children: st.lists(children, max_size=4)
                      | st.dictionaries(KEYS, children, max_size=4), max_leaves=12)


@settings(max_examples=500, derandomize=True, database=None, deadline=None,
          suppress_health_check=list(HealthCheck))
@given(body=st.dictionaries(KEYS, BODIES, max_size=4))
def test_one_walk_names_the_fault_two_walks_named(body):
    assert fault(_check_body, body) == fault(reference, body)


def test_a_repeated_duration_is_checked_where_it_is_not_a_duration():
    body = {"intervals": [{"intervalPeriod": {"start": "2026-11-01T00:00:00Z",
                                              "duration": "PT30M"}},
                          {"intervalPeriod": {"start": "PT30M", "duration": "PT30M"}}]}
    assert fault(_check_body, body) == fault(reference, body) is not None


@pytest.mark.parametrize("text", ['{"a": "\\ud800"}', '{"\\uDFFF": 1}', '["x", ["\\udc00"]]'])
def test_escaped_lone_surrogates_are_still_refused(text):
    with pytest.raises(ValueError, match="surrogates"):
        loads_strict(text.encode())


def test_a_surrogate_pair_is_text():
    assert loads_strict(json.dumps({"emoji": "\U0001F600"}).encode()) == {"emoji": "\U0001F600"}
    assert loads_strict(b'{"emoji": "\\ud83d\\ude00"}') == {"emoji": "\U0001F600"}


def test_a_lone_surrogate_in_text_given_as_str_is_refused():
    with pytest.raises(ValueError, match="surrogates"):
        loads_strict('{"a": "\ud800"}')
