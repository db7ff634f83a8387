"""The operator's signing keys at rest: creating a key for rotation and unlocking the
stored one (pure: no ORM, no settings).

Signing, verifying, JWKs and canonical JSON are the profile's contract and live in
:mod:`gbflex_profile.jose`; this module adds only what the VTN alone needs. A private key
is kept as PKCS#8 PEM encrypted with the deployment's passphrase, and named
``<operator>-<first 16 characters of its RFC 7638 thumbprint>``.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gbflex_profile import jose


@dataclass(frozen=True)
class NewSigningKey:
    kid: str
    private_key_pem: str  # encrypted with the passphrase it was created with
    public_jwk: dict  # as published in the JWKS


def new_signing_key(operator: str, passphrase: bytes) -> NewSigningKey:
    """A fresh Ed25519 key of ``operator`` (a network operator code), ready to store."""
    key = jose.generate_private_key()
    kid = f"{operator.lower()}-{jose.thumbprint(key)[:16]}"
    return NewSigningKey(kid=kid,
                         private_key_pem=jose.private_key_pem(key, passphrase).decode("ascii"),
                         public_jwk=jose.public_jwk(key, kid))


def unlock(private_key_pem: str, passphrase: bytes) -> Ed25519PrivateKey:
    """The stored key, decrypted. Raises ValueError when the passphrase is wrong or the
    stored key is not an Ed25519 key."""
    return jose.load_private_key(private_key_pem, passphrase)
