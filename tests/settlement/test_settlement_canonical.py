"""A statement's canonical JSON (settlement.statement.canonical_bytes) is RFC 8785: the
standard library's encoder writes the documents a statement is made of, and its bytes
must be exactly those of the ``rfc8785`` package, whatever the strings hold."""

from __future__ import annotations

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from settlement.statement import _SAFE_INTEGER, _plain, canonical_bytes

ascii_keys = st.text(alphabet=st.characters(max_codepoint=127), max_size=12)
scalars = (st.text(alphabet=st.characters(exclude_categories=["Cs"])) | st.booleans()
           | st.none() | st.integers(min_value=-_SAFE_INTEGER, max_value=_SAFE_INTEGER))
documents = st.dictionaries(ascii_keys, st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(ascii_keys, inner, max_size=4), max_leaves=30), max_size=6)


@settings(max_examples=400, deadline=None)
@given(documents)
def test_statement_documents_encode_as_rfc8785_does(document):
    assert _plain(document)
    assert canonical_bytes(document) == rfc8785.dumps(document)


def test_what_json_would_write_otherwise_goes_to_rfc8785():
    for document in ({"amount": 0.1}, {"é": "1"}, {"big": 2**60}, {"n": [1.5e300]}):
        assert not _plain(document)
    assert canonical_bytes({"amount": 0.1, "b": "x"}) == rfc8785.dumps({"amount": 0.1,
                                                                          "b": "x"})
    assert canonical_bytes({"b": "\u2028\x7f\x1f", "a": [True, None, -3]}) == (
        b'{"a":[true,null,-3],"b":"\xe2\x80\xa8\x7f\\u001f"}')
