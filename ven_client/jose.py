"""Compact JWS with EdDSA over Ed25519 (RFC 7515, RFC 8037), and Ed25519 JWKs.

Only what the GB dispatch profile needs: the agent verifies the operator's dispatch
signatures and signs its own acknowledgements. ``alg`` must be exactly ``EdDSA``; a
header with ``crit`` is refused (no extensions are understood).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (  # noqa: F401 - re-exported
    Ed25519PrivateKey,
    Ed25519PublicKey,
)


class JwsError(ValueError):
    """A JWS that is malformed, uses another algorithm, or does not verify."""


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    if not isinstance(text, str) or any(c in text for c in "=+/ \n"):
        raise JwsError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise JwsError("not base64url") from exc


@dataclass(frozen=True)
class CompactJws:
    header: dict
    payload: bytes
    signing_input: bytes
    signature: bytes

    @property
    def kid(self) -> str:
        return str(self.header.get("kid") or "")


def parse(token: str) -> CompactJws:
    """Split and decode a compact JWS without verifying it."""
    if not isinstance(token, str) or token.count(".") != 2:
        raise JwsError("not a compact JWS")
    header_part, payload_part, signature_part = token.split(".")
    try:
        header = json.loads(b64url_decode(header_part))
    except ValueError as exc:
        raise JwsError("the JWS header is not JSON") from exc
    if not isinstance(header, dict):
        raise JwsError("the JWS header is not an object")
    return CompactJws(header=header, payload=b64url_decode(payload_part),
                      signing_input=f"{header_part}.{payload_part}".encode("ascii"),
                      signature=b64url_decode(signature_part))


def sign(payload: bytes, key: Ed25519PrivateKey, kid: str) -> str:
    """A compact JWS of ``payload`` with protected header ``{"alg": "EdDSA", "kid": kid}``."""
    header = json.dumps({"alg": "EdDSA", "kid": kid}, separators=(",", ":")).encode()
    signing_input = f"{b64url_encode(header)}.{b64url_encode(payload)}"
    signature = key.sign(signing_input.encode("ascii"))
    return f"{signing_input}.{b64url_encode(signature)}"


def verify(token: str | CompactJws, key: Ed25519PublicKey) -> bytes:
    """The payload of ``token`` if it is an EdDSA JWS that ``key`` signed; else JwsError."""
    jws = parse(token) if isinstance(token, str) else token
    if jws.header.get("alg") != "EdDSA":
        raise JwsError(f"algorithm {jws.header.get('alg')!r} is not EdDSA")
    if "crit" in jws.header:
        raise JwsError("critical header extensions are not supported")
    try:
        key.verify(jws.signature, jws.signing_input)
    except InvalidSignature as exc:
        raise JwsError("the signature does not verify") from exc
    return jws.payload


def public_jwk(key: Ed25519PublicKey | Ed25519PrivateKey, kid: str) -> dict:
    """The public Ed25519 JWK (no private member) of ``key``."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": b64url_encode(raw)}


def key_from_jwk(jwk: Mapping) -> Ed25519PublicKey:
    """An Ed25519 public key from a JWK; JwsError when it is not one."""
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
        raise JwsError("not an Ed25519 key")
    if jwk.get("alg") not in (None, "EdDSA") or jwk.get("use") not in (None, "sig"):
        raise JwsError("the key is not for EdDSA signatures")
    raw = b64url_decode(str(jwk.get("x", "")))
    if len(raw) != 32:
        raise JwsError("an Ed25519 key has 32 bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


def keys_by_kid(jwks: Mapping) -> dict[str, Ed25519PublicKey]:
    """The usable Ed25519 keys of a JWKS, by kid (other keys are skipped)."""
    found = {}
    for jwk in jwks.get("keys") or []:
        if not isinstance(jwk, Mapping) or not jwk.get("kid"):
            continue
        try:
            found[str(jwk["kid"])] = key_from_jwk(jwk)
        except JwsError:
            continue
    return found


def generate_private_key_pem() -> bytes:
    """A new Ed25519 private key as unencrypted PKCS#8 PEM."""
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())


def load_private_key(pem: bytes) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise JwsError("the signing key is not an Ed25519 key")
    return key
