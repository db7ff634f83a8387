"""The public keys an FSP site signs its acknowledgements, availability declarations and
meter readings with (registered, revoked)."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from dispatch.models import FspSite, SiteSigningKey
from gbflex_profile import jose
from vtn.errors import BadRequest, Conflict, Forbidden, NotFound


def site_of_client(client_id: str) -> FspSite:
    """The FSP site whose VEN the OAuth2 client ``client_id`` is."""
    site = FspSite.objects.select_related("fsp__operator", "ven").filter(
        ven__client_id=client_id).first()
    if site is None:
        raise Forbidden("only the VEN of an onboarded FSP site may manage site signing keys")
    return site


def check_public_jwk(jwk: object) -> dict:
    """An Ed25519 public JWK (RFC 8037) with a kid; private material is refused."""
    try:
        return jose.check_public_jwk(jwk)
    except jose.JwkError as exc:
        raise BadRequest(str(exc)) from exc


@transaction.atomic
def register_site_key(*, site: FspSite, jwk: object) -> SiteSigningKey:
    """Register a public key the site signs acknowledgements and reports with (kid unique
    per site)."""
    public = check_public_jwk(jwk)
    if SiteSigningKey.objects.filter(site=site, kid=public["kid"]).exists():
        raise Conflict(f"site {site} already has a key {public['kid']!r}")
    return SiteSigningKey.objects.create(site=site, kid=public["kid"], public_jwk=public)


@transaction.atomic
def revoke_site_key(*, site: FspSite, kid: str, now: datetime | None = None) -> SiteSigningKey:
    key = SiteSigningKey.objects.select_for_update().filter(site=site, kid=kid).first()
    if key is None:
        raise NotFound(f"site {site} has no key {kid!r}")
    if key.revoked_at is None:
        key.revoked_at = now or timezone.now()
        key.save(update_fields=["revoked_at"])
    return key
