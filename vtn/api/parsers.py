"""The JSON request parser of every API: strict text, bounded nesting.

Python's ``json`` module recurses once per nesting level, so a body of a few kilobytes
nested thousands of levels deep exhausts the interpreter's stack; and it accepts escaped
lone surrogates (``"\\ud800"``), which are not text and which no database can store.
Both are refused here with a 400 problem before any view sees the body.
"""

from __future__ import annotations

import json
import re

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

# Far deeper than any OpenADR, dispatch or settlement body (about 8 levels).
MAX_JSON_DEPTH = 32
TOO_DEEP = f"JSON nested deeper than {MAX_JSON_DEPTH} levels is not accepted."
SURROGATE = ("Strings may not contain lone UTF-16 surrogates (such as \\ud800): they are "
             "not valid Unicode text.")
# The escapes of UTF-16 surrogates in JSON text: \\ud800 to \\udfff, hex digits in either case.
SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def check_parsed(value: object, *, strings: bool = True) -> None:
    """Raise ``ValueError`` when ``value`` nests deeper than ``MAX_JSON_DEPTH`` or holds
    a string (value or key) with a lone surrogate; ``strings`` False skips the strings
    (the text had no escape that can make one). Iterative: no recursion to exhaust, and
    only containers are pushed (a body of thousands of plain values costs little)."""
    if isinstance(value, str):
        if strings and not _is_text(value):
            raise ValueError(SURROGATE)
        return
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth >= MAX_JSON_DEPTH:
            raise ValueError(TOO_DEEP)
        if isinstance(item, dict):
            for key, child in item.items():
                if strings and not _is_text(key):
                    raise ValueError(SURROGATE)
                if isinstance(child, (dict, list)):
                    stack.append((child, depth + 1))
                elif strings and isinstance(child, str) and not _is_text(child):
                    raise ValueError(SURROGATE)
        elif isinstance(item, list):
            for child in item:
                if isinstance(child, (dict, list)):
                    stack.append((child, depth + 1))
                elif strings and isinstance(child, str) and not _is_text(child):
                    raise ValueError(SURROGATE)


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def loads_strict(raw: bytes | str) -> object:
    """Parse a JSON document, raising ``ValueError`` (with a client-facing message) for
    invalid UTF-8, nesting deeper than ``MAX_JSON_DEPTH`` or lone surrogates."""
    decoded = isinstance(raw, bytes)
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError("The body is not valid UTF-8 text.") from exc
    try:
        data = json.loads(raw)
    except RecursionError as exc:  # the C decoder stops cleanly at the interpreter's limit
        raise ValueError(TOO_DEEP) from exc
    except ValueError as exc:
        raise ValueError(f"The body is not valid JSON: {exc}") from exc
    # Text decoded from UTF-8 holds no surrogate, so one can only come from an escape.
    check_parsed(data, strings=SURROGATE_ESCAPE.search(raw) is not None
                 or not (decoded or _is_text(raw)))
    return data


class StrictJSONParser(JSONParser):
    """DRF's JSON parser with :func:`loads_strict`'s limits."""

    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read() if stream is not None else b""
        try:
            return loads_strict(raw)
        except ValueError as exc:
            raise ParseError(str(exc)) from exc
