"""Signed dispatches: JWS over canonical JSON, verified with the published JWKS by an
independent JOSE library (jwcrypto); tampering fails; rotation keeps old keys usable."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import rfc8785
from django.test import Client as DjangoClient
from django.utils import timezone
from jwcrypto import jwk, jws

from dispatch import selectors, signing_keys
from dispatch.models import SigningKey
from gbflex_profile import jose

pytestmark = pytest.mark.django_db


def published_jwks() -> dict:
    response = DjangoClient().get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("public, max-age=")
    return json.loads(response.content)


def jwcrypto_verify(token: str, jwks: dict) -> dict:
    """Verify with jwcrypto only: pick the key by kid from the JWKS."""
    key_set = jwk.JWKSet.from_json(json.dumps(jwks))
    signed = jws.JWS()
    signed.deserialize(token)
    kid = signed.jose_header["kid"]
    signed.verify(key_set.get_key(kid), alg="EdDSA")
    return json.loads(signed.payload)


def test_jwks_is_public_and_holds_no_private_material(issue):
    issue()
    jwks = published_jwks()
    assert len(jwks["keys"]) == 1
    key = jwks["keys"][0]
    assert key["kty"] == "OKP" and key["crv"] == "Ed25519" and key["alg"] == "EdDSA"
    assert "d" not in key and key["kid"].startswith("enwl-")


def test_signature_verifies_with_jwcrypto_over_the_canonical_document(issue):
    revision = issue().revisions.get()
    document = jwcrypto_verify(revision.signature, published_jwks())
    assert document == revision.document
    assert document["revision"] == 1 and document["dispatchRef"] == revision.instruction.reference
    header, payload, _ = revision.signature.split(".")
    assert jose.b64url_encode(rfc8785.dumps(revision.document)) == payload
    for field in ("serviceStart", "serviceEnd", "dispatchUnit", "contractId", "instructionTime",
                  "networkOperatorId", "dispatchRef", "revision", "status", "serviceTimings"):
        assert field in document


def test_a_tampered_dispatch_fails(issue):
    revision = issue().revisions.get()
    header, payload, signature = revision.signature.split(".")
    tampered_doc = dict(revision.document, serviceTimings=[
        dict(revision.document["serviceTimings"][0], volume=1)])
    tampered = ".".join([header, jose.b64url_encode(rfc8785.dumps(tampered_doc)), signature])
    with pytest.raises(jws.InvalidJWSSignature):
        jwcrypto_verify(tampered, published_jwks())
    with pytest.raises(jose.SignatureError):
        jose.verify(tampered, published_jwks())
    assert jose.verify(revision.signature, published_jwks()) == revision.document


def test_unknown_key_is_refused():
    key = jose.generate_private_key()
    token = jose.sign({"a": 1}, key, "rogue")
    with pytest.raises(jose.SignatureError, match="unknown key"):
        jose.verify(token, {"keys": [jose.public_jwk(jose.generate_private_key(),
                                                           "other")]})


def test_rotation_keeps_old_signatures_verifiable_for_the_configured_period(issue, settings):
    settings.DISPATCH_SIGNING_KEY_VERIFY_DAYS = 30
    old = issue().revisions.get()
    new_key = signing_keys.rotate_signing_key(operator="ENWL")
    newer = issue().revisions.get()
    assert newer.signing_key == new_key and old.signing_key != new_key
    jwks = published_jwks()
    assert {k["kid"] for k in jwks["keys"]} == {old.signing_key.kid, new_key.kid}
    assert jwcrypto_verify(old.signature, jwks) == old.document
    assert jwcrypto_verify(newer.signature, jwks) == newer.document
    retired = SigningKey.objects.get(pk=old.signing_key.pk)
    assert retired.verify_until - retired.retired_at == timedelta(days=30)
    later = timezone.now() + timedelta(days=31)
    assert {k["kid"] for k in selectors.jwks(later)["keys"]} == {new_key.kid}


def test_private_keys_are_stored_encrypted(issue):
    key = issue().revisions.get().signing_key
    assert "ENCRYPTED PRIVATE KEY" in key.private_key_pem


def test_sandbox_rotations_keep_the_jwks_bounded(issue, settings):
    """The key-rotation scenario rotates with a short verification period and few retired
    keys kept: any number of runs leaves at most keep + 1 keys of the operator in the
    JWKS, and none of another operator's keys is touched."""
    other = signing_keys.rotate_signing_key(operator="UKPN-LPN")  # another operator's active key
    old = issue().revisions.get()
    keys = [signing_keys.rotate_signing_key(operator="ENWL", verify_for=timedelta(minutes=60),
                                            keep_retired=2) for _ in range(6)]
    published = {k["kid"] for k in published_jwks()["keys"]}
    enwl = {kid for kid in published if kid.startswith("enwl-")}
    assert enwl == {keys[-1].kid, keys[-2].kid, keys[-3].kid}
    assert old.signing_key.kid not in published and other.kid in published
    # The last revision signed with a retired key still verifies until it leaves.
    newer = issue().revisions.get()
    assert jwcrypto_verify(newer.signature, published_jwks()) == newer.document
    later = timezone.now() + timedelta(minutes=61)
    assert {k["kid"] for k in selectors.jwks(later)["keys"]
            if k["kid"].startswith("enwl-")} == {keys[-1].kid}
