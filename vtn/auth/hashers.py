"""How client secrets are stored: HMAC-SHA256 under a server-side key.

Client secrets are 256-bit random values the VTN generates (``secrets.token_urlsafe(32)``),
not passwords a person chose: nobody can guess one or find it in a dictionary, so a slow
password hash adds nothing but cost (0.3-0.5 s of CPU per token request with PBKDF2). A
keyed fast hash is as safe for them: without the key a stolen database gives nothing to
test guesses against, and with it a guess still has 2**256 candidates.

The key is ``VTN_CLIENT_SECRET_KEY``, or one derived from ``SECRET_KEY``. Stored values
read ``vtn_hmac_sha256$<salt>$<hex digest>``. Secrets stored by an earlier release with
Django's password hasher still verify, once, and are then re-stored in this form (see
:meth:`vtn.auth.validator.VtnOAuth2Validator.authenticate_client`).
"""

from __future__ import annotations

import hashlib
import hmac

from django.conf import settings
from django.contrib.auth.hashers import BasePasswordHasher, mask_hash
from django.utils.crypto import constant_time_compare

ALGORITHM = "vtn_hmac_sha256"


def _key() -> bytes:
    configured = settings.VTN_CLIENT_SECRET_KEY
    if configured:
        return configured.encode()
    return hmac.new(settings.SECRET_KEY.encode(), b"vtn client secret key",
                    hashlib.sha256).digest()


def is_current(encoded: str) -> bool:
    """True if ``encoded`` (a stored client secret) is already in this hasher's form."""
    return encoded.startswith(f"{ALGORITHM}$")


class ClientSecretHasher(BasePasswordHasher):
    """Django password hasher for client secrets: HMAC-SHA256(key, salt$secret)."""

    algorithm = ALGORITHM

    def encode(self, password: str, salt: str) -> str:
        if password is None:
            raise TypeError("password must be provided.")
        if not salt or "$" in salt:
            raise ValueError("salt must be provided and cannot contain $.")
        digest = hmac.new(_key(), f"{salt}${password}".encode(), hashlib.sha256).hexdigest()
        return f"{self.algorithm}${salt}${digest}"

    def decode(self, encoded: str) -> dict:
        algorithm, salt, digest = encoded.split("$", 2)
        assert algorithm == self.algorithm
        return {"algorithm": algorithm, "hash": digest, "salt": salt}

    def verify(self, password: str, encoded: str) -> bool:
        decoded = self.decode(encoded)
        return constant_time_compare(encoded, self.encode(password, decoded["salt"]))

    def safe_summary(self, encoded: str) -> dict:
        decoded = self.decode(encoded)
        return {"algorithm": decoded["algorithm"], "salt": mask_hash(decoded["salt"], show=2),
                "hash": mask_hash(decoded["hash"])}

    def must_update(self, encoded: str) -> bool:
        return False

    def harden_runtime(self, password: str, encoded: str) -> None:
        pass
