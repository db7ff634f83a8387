"""Compact JWS and JWKs of the profile: byte-for-byte what the VTN and agents have always
produced, and every way a token or key is refused."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gbflex_profile import jose

# A fixed key and document, and the token the profile has produced for them since its
# first release: Ed25519 is deterministic, so any change of header, payload or encoding
# shows here.
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
KID = "enwl-test-1"
DOCUMENT = {"profile": "gb-dispatch/1", "dispatchRef": "ENWL-0042", "revision": 1,
            "volume": 120.5, "n": 250, "name": "Café ☃",
            "setpoints": [{"setpointTime": "2030-02-01T17:00:00Z", "volume": 1e21}]}
TOKEN = (
    "eyJhbGciOiJFZERTQSIsImtpZCI6ImVud2wtdGVzdC0xIn0."
    "eyJkaXNwYXRjaFJlZiI6IkVOV0wtMDA0MiIsIm4iOjI1MCwibmFtZSI6IkNhZsOpIOKYgyIsInByb2ZpbGUiOiJn"
    "Yi1kaXNwYXRjaC8xIiwicmV2aXNpb24iOjEsInNldHBvaW50cyI6W3sic2V0cG9pbnRUaW1lIjoiMjAzMC0wMi0w"
    "MVQxNzowMDowMFoiLCJ2b2x1bWUiOjFlKzIxfV0sInZvbHVtZSI6MTIwLjV9."
    "_Ot_pV08RDdh0Ri5ug2dEQUxRXCmZmZ9mggB5azLrQISjubefckOj3097pYPxl_cZ1YSfwVE3oUHj04jLAxXBw")
JWKS = {"keys": [jose.public_jwk(KEY, KID)]}


def forge(header: dict, payload: bytes, signature: bytes = b"") -> str:
    return ".".join([jose.b64url_encode(json.dumps(header).encode()),
                     jose.b64url_encode(payload), jose.b64url_encode(signature)])


def test_signatures_are_byte_identical_to_the_published_form():
    assert jose.sign(DOCUMENT, KEY, KID) == TOKEN
    assert jose.header(TOKEN) == {"alg": "EdDSA", "kid": KID}


def test_the_public_jwk_and_its_thumbprint_are_stable():
    assert jose.public_jwk(KEY, KID) == {
        "kty": "OKP", "crv": "Ed25519", "x": "A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg",
        "kid": KID, "use": "sig", "alg": "EdDSA"}
    assert jose.thumbprint(KEY) == "1IG2tMH7J2wbJZnOf8LJzQitKf7LMvoAElsuDMVM54Y"


def test_a_genuine_token_verifies_to_its_document():
    assert jose.verify(TOKEN, JWKS) == DOCUMENT


def test_a_token_signed_by_another_key_under_the_same_kid_does_not_verify():
    impostor = {"keys": [jose.public_jwk(jose.generate_private_key(), KID)]}
    with pytest.raises(jose.SignatureError, match="^the signature does not verify$"):
        jose.verify(TOKEN, impostor)


def test_an_unknown_kid_is_refused_before_any_cryptography():
    with pytest.raises(jose.SignatureError, match="unknown key id 'other'"):
        jose.verify(jose.sign(DOCUMENT, KEY, "other"), JWKS)


def test_a_changed_payload_does_not_verify():
    header, _, signature = TOKEN.split(".")
    payload = jose.b64url_encode(b'{"revision":2}')
    changed = f"{header}.{payload}.{signature}"
    with pytest.raises(jose.SignatureError, match="does not verify"):
        jose.verify(changed, JWKS)


@pytest.mark.parametrize(("token", "reason"), [
    ("not-a-jws", "not a compact JWS"),
    ("a.b.c", "header is not JSON"),
    (forge({"alg": "none", "kid": KID}, b"{}"), "'none' is not EdDSA"),
    (forge({"alg": "HS256", "kid": KID}, b"{}"), "not EdDSA"),
    (forge({"alg": "EdDSA", "kid": KID, "crit": ["b64"], "b64": False}, b"{}"),
     "critical header"),
])
def test_malformed_tokens_and_other_algorithms_are_refused(token, reason):
    with pytest.raises(jose.SignatureError, match=reason):
        jose.verify(token, JWKS)


@pytest.mark.filterwarnings("ignore:EdDSA is deprecated")
def test_a_correctly_signed_payload_that_is_not_canonical_is_refused():
    from joserfc import jws
    from joserfc.jwk import OKPKey

    private = OKPKey.import_key(jose.public_jwk(KEY, KID) | {
        "d": jose.b64url_encode(KEY.private_bytes_raw())})
    token = jws.serialize_compact({"alg": "EdDSA", "kid": KID}, b'{"b": 1, "a": 2}', private,
                                  algorithms=["EdDSA"])
    with pytest.raises(jose.SignatureError, match="not RFC 8785 canonical"):
        jose.verify(token, JWKS)


def test_header_kid_reads_the_unverified_kid_or_none():
    assert jose.header_kid(TOKEN) == KID
    assert jose.header_kid("garbage") is None
    assert jose.header_kid(forge({"alg": "EdDSA"}, b"{}")) is None


def test_private_keys_round_trip_through_pem_with_and_without_a_passphrase():
    plain = jose.load_private_key(jose.private_key_pem(KEY))
    locked = jose.private_key_pem(KEY, b"secret")
    assert b"ENCRYPTED" in locked
    assert jose.sign(DOCUMENT, plain, KID) == TOKEN
    assert jose.sign(DOCUMENT, jose.load_private_key(locked, b"secret"), KID) == TOKEN
    with pytest.raises(ValueError):
        jose.load_private_key(locked, b"wrong")


@pytest.mark.parametrize(("jwk", "reason"), [
    ("x", "JSON object"),
    (jose.public_jwk(KEY, KID) | {"d": "AAAA"}, "private key material"),
    (jose.public_jwk(KEY, KID) | {"crv": "P-256"}, "Ed25519"),
    (jose.public_jwk(KEY, KID) | {"alg": "ES256"}, "alg must be EdDSA"),
    (jose.public_jwk(KEY, KID) | {"use": "enc"}, "use must be sig"),
    (jose.public_jwk(KEY, "-starts-with-dash"), "kid must be"),
    (jose.public_jwk(KEY, "k" * 64), "kid must be"),
    (jose.public_jwk(KEY, KID) | {"x": "AAAA"}, "32-byte"),
    (jose.public_jwk(KEY, KID) | {"x": "A6EH+/"}, "not base64url"),
])
def test_unusable_public_keys_are_refused_with_the_reason(jwk, reason):
    with pytest.raises(jose.JwkError, match=reason):
        jose.check_public_jwk(jwk)


def test_a_jwk_without_use_and_alg_is_normalised():
    bare = {k: v for k, v in jose.public_jwk(KEY, KID).items() if k not in ("use", "alg")}
    assert jose.check_public_jwk(bare) == jose.public_jwk(KEY, KID)


def test_a_jwks_keeps_only_the_usable_keys():
    other = {"kty": "RSA", "kid": "rsa-1", "n": "AQAB", "e": "AQAB"}
    assert list(jose.usable_keys({"keys": [other, *JWKS["keys"]]})) == [KID]
    assert jose.usable_keys({"keys": "nonsense"}) == {}
