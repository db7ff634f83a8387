"""Each operator's Ed25519 signing keys: the current key (created on first use), rotation
with a period in which retired keys still verify, and signing with the current key.
Private keys are stored encrypted with ``DISPATCH_SIGNING_KEY_PASSPHRASE``."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from dispatch import programs, signing
from dispatch.models import NetworkOperator, SigningKey
from gbflex_profile import jose


def _passphrase() -> bytes:
    return (settings.DISPATCH_SIGNING_KEY_PASSPHRASE or settings.SECRET_KEY).encode()


# kid -> whether its stored private key decrypted (per process; keys never change).
_loadable_keys: dict[str, bool] = {}


def signing_keys_usable() -> bool:
    """Whether every operator's current signing key decrypts with this process's
    passphrase (``DISPATCH_SIGNING_KEY_PASSPHRASE``); True while none exists yet. A
    wrong passphrase after a restore or a changed SECRET_KEY makes this False."""
    passphrase = _passphrase()
    for kid, pem in SigningKey.objects.filter(retired_at__isnull=True).values_list(
            "kid", "private_key_pem"):
        if kid not in _loadable_keys:
            try:
                signing.unlock(pem, passphrase)
                _loadable_keys[kid] = True
            except (ValueError, TypeError):
                return False  # not remembered: a corrected passphrase is seen at once
        if not _loadable_keys[kid]:
            return False
    return True


def _new_signing_key(operator: NetworkOperator) -> SigningKey:
    new = signing.new_signing_key(operator.code, _passphrase())
    return SigningKey.objects.create(operator=operator, kid=new.kid,
                                     private_key_pem=new.private_key_pem,
                                     public_jwk=new.public_jwk)


@transaction.atomic
def active_signing_key(operator: NetworkOperator) -> SigningKey:
    """The operator's current signing key, created on first use."""
    NetworkOperator.objects.select_for_update().filter(pk=operator.pk).first()
    key = operator.signing_keys.filter(retired_at__isnull=True).order_by("-created").first()
    return key or _new_signing_key(operator)


@transaction.atomic
def rotate_signing_key(*, operator: str, now: datetime | None = None,
                       verify_for: timedelta | None = None,
                       keep_retired: int | None = None) -> SigningKey:
    """Retire the operator's current key and create a new one. A retired key stays in the
    JWKS for ``verify_for`` (default ``DISPATCH_SIGNING_KEY_VERIFY_DAYS``) so earlier
    signatures still verify. With ``keep_retired``, only that many of the operator's
    retired keys stay published (the newest); older ones leave the JWKS now. The
    conformance sandbox rotates with both, so its runs cannot grow the JWKS."""
    op = programs.ensure_operator(operator)
    NetworkOperator.objects.select_for_update().filter(pk=op.pk).first()
    now = now or timezone.now()
    keep = verify_for if verify_for is not None else timedelta(
        days=settings.DISPATCH_SIGNING_KEY_VERIFY_DAYS)
    for key in op.signing_keys.filter(retired_at__isnull=True):
        key.retired_at = now
        key.verify_until = now + keep
        key.save(update_fields=["retired_at", "verify_until"])
    if keep_retired is not None:
        published = op.signing_keys.filter(retired_at__isnull=False, verify_until__gt=now)
        stale = list(published.order_by("-retired_at", "-id")
                     .values_list("id", flat=True)[max(0, keep_retired):])
        SigningKey.objects.filter(id__in=stale).update(verify_until=now)
    return _new_signing_key(op)


def sign(operator: NetworkOperator, document: dict) -> tuple[str, SigningKey]:
    """``document`` signed (compact JWS) with the operator's current key, and that key."""
    key = active_signing_key(operator)
    token = jose.sign(document, signing.unlock(key.private_key_pem, _passphrase()), key.kid)
    return token, key
