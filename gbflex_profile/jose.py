"""Compact JWS (RFC 7515) with EdDSA over Ed25519 (RFC 8037), and the profile's JWKs.

A signed document travels as a compact JWS whose payload is the RFC 8785 canonical JSON
of the document and whose protected header is exactly ``{"alg": "EdDSA", "kid": ...}``.
Signing and verifying are done by ``joserfc``. Keys are ``cryptography`` Ed25519 keys;
public keys travel as JWKs in a JWKS (``{"keys": [...]}``). Both libraries are imported
on first use, not with this module (together some 10 MiB and a second of start-up on a
small gateway): commands that neither sign nor verify start without them, and the agent
loads them with :func:`preload` once its first poll is done.
"""

from __future__ import annotations

import base64
import json
import re
import warnings
from collections.abc import Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

from gbflex_profile.canonical import CanonicalizationError, canonical_json

if TYPE_CHECKING:
    from collections.abc import Iterator

    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

ALGORITHM = "EdDSA"
CURVE = "Ed25519"
KID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")  # a key id, matched whole


class SignatureError(ValueError):
    """A JWS that is malformed, uses another algorithm, names an unknown key, does not
    verify, or whose payload is not the canonical JSON of itself."""


class JwkError(ValueError):
    """A JWK that is not a usable public Ed25519 signing key of the profile."""


@contextmanager
def _eddsa_name_accepted() -> Iterator[None]:
    """RFC 9864 prefers the fully specified name "Ed25519"; "EdDSA" is what deployed JOSE
    libraries verify today, so the profile keeps it and silences joserfc's notice."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="EdDSA is deprecated")
        yield


def preload() -> None:
    """Import the signing libraries now rather than on the first signature (a long-running
    process calls this when idle, so that its first dispatch is not held up by imports)."""
    import cryptography.hazmat.primitives.asymmetric.ed25519  # noqa: F401
    import joserfc.jwk  # noqa: F401
    import joserfc.jws  # noqa: F401


# -- base64url ----------------------------------------------------------------------------------


def b64url_encode(data: bytes) -> str:
    """Unpadded base64url."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


def b64url_decode(text: str) -> bytes:
    """Decode unpadded base64url; :class:`SignatureError` (a ValueError) when it is not."""
    if not isinstance(text, str) or not _BASE64URL.fullmatch(text):
        raise SignatureError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError as exc:
        raise SignatureError("not base64url") from exc


# -- keys ---------------------------------------------------------------------------------------


def generate_private_key() -> Ed25519PrivateKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate()


def private_key_pem(key: Ed25519PrivateKey, passphrase: bytes | None = None) -> bytes:
    """PKCS#8 PEM of ``key``, encrypted with ``passphrase`` when one is given."""
    from cryptography.hazmat.primitives import serialization

    encryption = (serialization.BestAvailableEncryption(passphrase) if passphrase
                  else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             encryption)


def load_private_key(pem: bytes | str, passphrase: bytes | None = None) -> Ed25519PrivateKey:
    """An Ed25519 private key from PKCS#8 PEM. Raises ValueError (a wrong passphrase, not
    PEM) or :class:`JwkError` (another kind of key)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    data = pem.encode("ascii") if isinstance(pem, str) else pem
    key = serialization.load_pem_private_key(data, password=passphrase)
    if not isinstance(key, Ed25519PrivateKey):
        raise JwkError("the signing key is not an Ed25519 key")
    return key


def public_jwk(key: Ed25519PrivateKey | Ed25519PublicKey, kid: str) -> dict:
    """The public JWK (RFC 8037) of ``key``: what a JWKS publishes and a site registers."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return {"kty": "OKP", "crv": CURVE, "x": b64url_encode(public.public_bytes_raw()),
            "kid": kid, "use": "sig", "alg": ALGORITHM}


def check_public_jwk(jwk: object) -> dict:
    """The normalised form (:func:`public_jwk`'s members) of a public Ed25519 signing JWK
    with a kid of 1-63 letters, digits, '.', '_' or '-' (starting with a
    letter or digit). Raises :class:`JwkError` saying
    what is wrong; private material is refused."""
    if not isinstance(jwk, Mapping):
        raise JwkError("jwk must be a JSON object")
    if "d" in jwk:
        raise JwkError("jwk holds private key material ('d'); send only the public key")
    if jwk.get("kty") != "OKP" or jwk.get("crv") != CURVE:
        raise JwkError(f"jwk must be an Ed25519 key: kty OKP, crv {CURVE}")
    if jwk.get("alg", ALGORITHM) != ALGORITHM:
        raise JwkError(f"jwk alg must be {ALGORITHM}")
    if jwk.get("use", "sig") != "sig":
        raise JwkError("jwk use must be sig")
    kid = jwk.get("kid")
    if not isinstance(kid, str) or not KID.fullmatch(kid):
        raise JwkError("jwk kid must be 1-63 letters, digits, '.', '_' or '-'")
    try:
        raw = b64url_decode(jwk.get("x", ""))
    except SignatureError as exc:
        raise JwkError("jwk x is not base64url") from exc
    if len(raw) != 32:
        raise JwkError("jwk x must be a 32-byte Ed25519 public key")
    return {"kty": "OKP", "crv": CURVE, "x": jwk["x"], "kid": kid, "use": "sig",
            "alg": ALGORITHM}


def usable_keys(jwks: Mapping) -> dict[str, dict]:
    """The usable keys of a JWKS by kid, normalised; keys of other kinds are skipped (a
    JWKS may publish keys for other purposes)."""
    found: dict[str, dict] = {}
    for jwk in jwks.get("keys") or [] if isinstance(jwks, Mapping) else []:
        try:
            key = check_public_jwk(jwk)
        except JwkError:
            continue
        found[key["kid"]] = key
    return found


def thumbprint(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url) of the public key."""
    from joserfc.jwk import OKPKey

    return OKPKey.import_key(public_jwk(key, "x")).thumbprint()


# -- signatures -------------------------------------------------------------------------------


def header(token: str) -> dict:
    """The protected header of a compact JWS, unverified. :class:`SignatureError` when
    ``token`` is not a compact JWS."""
    if not isinstance(token, str) or token.count(".") != 2:
        raise SignatureError("not a compact JWS")
    try:
        decoded = json.loads(b64url_decode(token.split(".")[0]))
    except (ValueError, UnicodeDecodeError) as exc:
        raise SignatureError("the JWS header is not JSON") from exc
    if not isinstance(decoded, dict):
        raise SignatureError("the JWS header is not an object")
    return decoded


def header_kid(token: str) -> str | None:
    """The ``kid`` of a compact JWS's protected header (unverified), or None."""
    try:
        kid = header(token).get("kid")
    except SignatureError:
        return None
    return kid if isinstance(kid, str) and kid else None


def sign(document: Mapping, key: Ed25519PrivateKey, kid: str) -> str:
    """Compact JWS of the canonical JSON of ``document``, header ``{"alg", "kid"}``."""
    from joserfc import jws
    from joserfc.jwk import OKPKey

    private_jwk = public_jwk(key, kid) | {"d": b64url_encode(key.private_bytes_raw())}
    private = OKPKey.import_key(private_jwk)
    with _eddsa_name_accepted():
        return jws.serialize_compact({"alg": ALGORITHM, "kid": kid},
                                     canonical_json(dict(document)), private,
                                     algorithms=[ALGORITHM])


def verify(token: str, jwks: Mapping) -> dict:
    """The document ``token`` signs, verified against the keys of ``jwks``.

    Raises :class:`SignatureError` when the token is not a compact JWS, its ``alg`` is not
    EdDSA, it carries critical extensions, its kid is not in ``jwks``, the signature does
    not verify, or the payload is not the RFC 8785 canonical JSON of an object.
    """
    protected = header(token)
    if protected.get("alg") != ALGORITHM:
        raise SignatureError(f"algorithm {protected.get('alg')!r} is not {ALGORITHM}")
    if "crit" in protected:
        raise SignatureError("critical header extensions are not supported")
    kid = protected.get("kid")
    keys = usable_keys(jwks)
    if not isinstance(kid, str) or kid not in keys:
        raise SignatureError(f"unknown key id {kid!r}")
    from joserfc import jws
    from joserfc.errors import JoseError
    from joserfc.jwk import OKPKey

    with _eddsa_name_accepted():
        try:
            result = jws.deserialize_compact(token, OKPKey.import_key(keys[kid]),
                                             algorithms=[ALGORITHM])
        except (JoseError, ValueError) as exc:
            raise SignatureError("the signature does not verify") from exc
    try:
        document = json.loads(result.payload)
        canonical = canonical_json(document)
    except (ValueError, UnicodeDecodeError, CanonicalizationError) as exc:
        raise SignatureError("the signed payload is not canonical JSON") from exc
    if canonical != result.payload:
        raise SignatureError("the signed payload is not RFC 8785 canonical JSON")
    if not isinstance(document, dict):
        raise SignatureError("the signed payload is not a JSON object")
    return document
