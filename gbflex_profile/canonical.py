"""RFC 8785 JSON Canonicalization Scheme (JCS): the bytes every signature and hash of the
profile is computed over.

Members are sorted by the UTF-16 code units of their names, numbers take the ECMAScript
form (``1.0`` is ``1``), there is no whitespace, and integers must lie within
+-(2**53 - 1). The work is done by the ``rfc8785`` package; this module only gives its
refusals one exception type.
"""

from __future__ import annotations

import rfc8785


class CanonicalizationError(ValueError):
    """The value has no canonical JSON form (NaN, infinity, an integer outside the safe
    range, a lone surrogate, a key that is not a string, a type JSON does not have)."""


def canonical_json(value: object) -> bytes:
    """The canonical UTF-8 bytes of ``value`` (dict, list/tuple, str, int, float, bool or
    None, nested)."""
    try:
        return rfc8785.dumps(value)  # type: ignore[arg-type]  # checked by the library
    except rfc8785.CanonicalizationError as exc:
        raise CanonicalizationError(str(exc)) from exc
    except (TypeError, UnicodeError, OverflowError) as exc:
        raise CanonicalizationError(str(exc)) from exc
