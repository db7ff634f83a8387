"""Signing and verifying dispatch revisions (pure: no ORM, no settings).

A revision is signed as a compact JWS (RFC 7515) whose payload is the RFC 8785 (JCS)
canonical JSON of the revision's Appendix A document, with ``alg`` EdDSA over an
Ed25519 key (RFC 8037) and the signing key's ``kid`` in the protected header. Anyone
holding the operator's published JWKS can verify a revision offline.
"""

from __future__ import annotations

import base64
import json
import warnings
from collections.abc import Mapping

import rfc8785
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, OKPKey

ALGORITHM = "EdDSA"
CURVE = "Ed25519"


def _quiet():
    """RFC 9864 prefers the fully specified name "Ed25519"; "EdDSA" is what deployed JOSE
    libraries verify today, so the profile uses it and silences joserfc's notice."""
    context = warnings.catch_warnings()
    context.__enter__()
    warnings.filterwarnings("ignore", message="EdDSA is deprecated")
    return context


class SignatureError(ValueError):
    """A signature does not verify, names an unknown key, or its payload is not canonical."""


def canonical_json(document: Mapping) -> bytes:
    """RFC 8785 canonical form of ``document`` (UTF-8 bytes). Numbers must be int or float."""
    return rfc8785.dumps(document)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def generate_private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def private_key_pem(key: Ed25519PrivateKey, passphrase: bytes) -> str:
    """PKCS#8 PEM encrypted with ``passphrase`` (the form kept in the database)."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase)).decode("ascii")


def load_private_key(pem: str, passphrase: bytes) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem.encode("ascii"), password=passphrase)
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError("the stored signing key is not an Ed25519 key")
    return key


def public_jwk(key: Ed25519PrivateKey, kid: str) -> dict:
    """The public JWK (RFC 8037) of ``key``, as published in the JWKS."""
    raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                        serialization.PublicFormat.Raw)
    return {"kty": "OKP", "crv": CURVE, "x": _b64url(raw), "kid": kid, "use": "sig",
            "alg": ALGORITHM}


def thumbprint(key: Ed25519PrivateKey) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url) of the public key."""
    return OKPKey.import_key(public_jwk(key, "x")).thumbprint()


def _private_jwk(key: Ed25519PrivateKey, kid: str) -> OKPKey:
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                            serialization.NoEncryption())
    return OKPKey.import_key(public_jwk(key, kid) | {"d": _b64url(raw)})


def sign(document: Mapping, key: Ed25519PrivateKey, kid: str) -> str:
    """Compact JWS of the canonical JSON of ``document``, header ``{"alg","kid"}``."""
    quiet = _quiet()
    try:
        return jws.serialize_compact({"alg": ALGORITHM, "kid": kid}, canonical_json(document),
                                     _private_jwk(key, kid), algorithms=[ALGORITHM])
    finally:
        quiet.__exit__(None, None, None)


def verify(token: str, jwks: Mapping) -> dict:
    """Verify ``token`` against a JWKS (``{"keys": [...]}``) and return the signed document.

    Raises :class:`SignatureError` when the kid is not in the set, the signature does not
    verify, or the payload is not the canonical form of itself.
    """
    try:
        header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    except (ValueError, IndexError) as exc:
        raise SignatureError("not a compact JWS") from exc
    if header.get("alg") != ALGORITHM:
        raise SignatureError(f"unexpected alg {header.get('alg')!r}")
    kid = header.get("kid")
    if not any(k.get("kid") == kid for k in jwks.get("keys", [])):
        raise SignatureError(f"unknown key id {kid!r}")
    quiet = _quiet()
    try:
        key_set = KeySet.import_key_set({"keys": [dict(k) for k in jwks["keys"]]})
        result = jws.deserialize_compact(token, key_set, algorithms=[ALGORITHM])
    except (JoseError, ValueError) as exc:
        raise SignatureError(f"signature does not verify: {exc}") from exc
    finally:
        quiet.__exit__(None, None, None)
    document = json.loads(result.payload)
    if canonical_json(document) != result.payload:
        raise SignatureError("payload is not RFC 8785 canonical JSON")
    return document


def b64url_decode(text: str) -> bytes:
    """Decode unpadded base64url (raises ValueError)."""
    if not isinstance(text, str) or not all(c.isalnum() or c in "-_" for c in text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def header_kid(token: str) -> str | None:
    """The ``kid`` of a compact JWS's protected header (unverified), or None."""
    try:
        header = json.loads(b64url_decode(token.split(".")[0]))
    except (ValueError, IndexError, UnicodeDecodeError):
        return None
    kid = header.get("kid") if isinstance(header, dict) else None
    return kid if isinstance(kid, str) else None
