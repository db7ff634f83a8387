"""Writes for VTN clients: create, rotate, revoke. Reads with rules live in selectors."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from django.conf import settings
from django.db import transaction
from oauth2_provider.models import get_access_token_model, get_application_model

from vtn import generations, mqtt_acl, pki
from vtn.auth import security_log
from vtn.auth.scopes import ALL_SCOPES, DEFAULT_SCOPES, ROLE_SCOPES
from vtn.models import Client, ClientCertificate, IssuedCertificate, Ven

Application = get_application_model()
AccessToken = get_access_token_model()


class ClientError(ValueError):
    """A client cannot be created or changed as asked."""


@dataclass(frozen=True)
class IssuedCredentials:
    client: Client
    client_secret: str  # shown once; only a hash is stored

    def as_dict(self) -> dict:
        result = {
            "name": self.client.name,
            "client_id": self.client.client_id,
            "client_secret": self.client_secret,
            "role": self.client.role,
            "scopes": sorted(self.client.scope_set),
            "require_mtls": self.client.require_mtls,
        }
        bound = sorted(self.client.certificates.values_list("sha256", flat=True))
        if bound:
            result["certificate_sha256"] = bound
        return result


def default_require_mtls(role: str) -> bool:
    """VEN clients follow VTN_REQUIRE_MTLS_DEFAULT; business-logic clients never do."""
    return role == Client.Role.VEN and bool(settings.VTN_REQUIRE_MTLS_DEFAULT)


@transaction.atomic
def create_client(*, name: str, role: str, scopes: list[str] | None = None,
                  ven_name: str | None = None, require_mtls: bool | None = None,
                  certificate: x509.Certificate | None = None) -> IssuedCredentials:
    """Create an OAuth2 client-credentials client for the VTN.

    A VEN client named with ``ven_name`` is bound to that VEN object: the VEN is created
    if it does not exist, and its clientID (and that of its resources) is set to the new
    client's id either way.

    ``require_mtls`` (default: :func:`default_require_mtls`) makes the client present a
    bound TLS client certificate at the token endpoint and with every token; a
    ``certificate`` given here is bound at once (see :func:`bind_certificate`).
    """
    if role not in DEFAULT_SCOPES:
        raise ClientError(f"role must be one of {sorted(DEFAULT_SCOPES)}")
    if ven_name and role != Client.Role.VEN:
        raise ClientError("only a VEN client can be bound to a VEN")
    granted = list(dict.fromkeys(scopes or DEFAULT_SCOPES[role]))
    unknown = sorted(set(granted) - set(ALL_SCOPES))
    if unknown:
        raise ClientError(f"unknown scopes: {', '.join(unknown)}")
    foreign = sorted(set(granted) - set(ROLE_SCOPES[role]))
    if foreign:
        raise ClientError(f"a {role} client cannot hold {', '.join(foreign)}")
    if Client.objects.filter(name=name).exists():
        raise ClientError(f"a client named {name!r} already exists")
    secret = secrets.token_urlsafe(32)
    application = Application.objects.create(
        name=name,
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
        client_secret=secret,
        hash_client_secret=True,
    )
    if require_mtls is None:
        require_mtls = default_require_mtls(role)
    client = Client.objects.create(application=application, name=name, role=role,
                                   scopes=" ".join(granted), require_mtls=require_mtls)
    if certificate is not None:
        bind_certificate(client=client, certificate=certificate)
    security_log.record(security_log.Kind.CLIENT_CREATED, client_id=application.client_id,
                        detail=f"name={name} role={role} require_mtls={require_mtls}"
                               + (f" ven={ven_name}" if ven_name else ""))
    if ven_name:
        ven, created = Ven.objects.get_or_create(
            ven_name=ven_name, defaults={"client_id": application.client_id}
        )
        if not created:
            ven.client_id = application.client_id
            ven.save(update_fields=["client_id", "modified"])
            ven.resources.update(client_id=application.client_id)
        generations.bump(generations.TARGETING)
    return IssuedCredentials(client=client, client_secret=secret)


def find_client(client_id: str) -> Client:
    """A client by its OAuth2 client_id, or failing that by its name; ClientError if none."""
    clients = Client.objects.select_related("application")
    client = (clients.filter(application__client_id=client_id).first()
              or clients.filter(name=client_id).first())
    if client is None:
        raise ClientError(f"no client with id or name {client_id!r}")
    return client


@transaction.atomic
def rotate_secret(*, client_id: str) -> IssuedCredentials:
    """Issue a new secret for an existing client (found by client_id or name).

    The client keeps its client_id, role, scopes and VEN binding, so objects it created
    stay its own. The old secret stops working at once and the client's access tokens
    are deleted, so a leaked secret or token is useless after rotation. A revoked
    client cannot be rotated: create a new one instead.
    """
    client = find_client(client_id)
    if client.revoked:
        raise ClientError(f"client {client.name!r} is revoked; create a new client instead")
    secret = secrets.token_urlsafe(32)
    application = client.application
    application.client_secret = secret  # hashed on save (hash_client_secret)
    application.save(update_fields=["client_secret", "updated"])
    AccessToken.objects.filter(application=application).delete()
    generations.bump(generations.AUTH)
    security_log.record(security_log.Kind.CLIENT_ROTATED, client_id=application.client_id,
                        detail=f"name={client.name}")
    mqtt_acl.client_withdrawn(application.client_id)
    return IssuedCredentials(client=client, client_secret=secret)


@transaction.atomic
def revoke_client(*, client_id: str) -> Client:
    """Revoke a client: its tokens are deleted and no new token is issued to it."""
    client = find_client(client_id)
    client.revoked = True
    client.save(update_fields=["revoked"])
    AccessToken.objects.filter(application=client.application).delete()
    generations.bump(generations.AUTH)
    security_log.record(security_log.Kind.CLIENT_REVOKED, client_id=client.client_id,
                        detail=f"name={client.name}")
    mqtt_acl.client_withdrawn(client.client_id)
    return client


@transaction.atomic
def delete_client(*, client_id: str, reason: str) -> None:
    """Delete a revoked client with its OAuth2 application, tokens and certificate
    bindings (the issued certificates stay in the CA's register and its CRL). The objects
    it created keep its clientID, which no new client can get."""
    client = find_client(client_id)
    if not client.revoked:
        raise ClientError(f"client {client.name!r} is not revoked; revoke it first")
    application = client.application
    AccessToken.objects.filter(application=application).delete()
    application.delete()  # cascades to the client and its certificate bindings
    generations.bump(generations.AUTH)
    security_log.record(security_log.Kind.CLIENT_REVOKED, client_id=application.client_id,
                        detail=f"name={client.name} deleted: {reason}")


@transaction.atomic
def bind_certificate(*, client: Client, certificate: x509.Certificate) -> ClientCertificate:
    """Bind a TLS client certificate to ``client`` (RFC 8705 certificate-bound tokens).

    The certificate must be currently valid, not revoked in the registry, allowed for
    clientAuth (if it restricts its extended key usage) and not bound to another client.
    Binding the same certificate to the same client again is a no-op.
    """
    sha256 = pki.thumbprint(certificate)
    serial = format(certificate.serial_number, "x")
    now = dt.datetime.now(dt.UTC)
    if not certificate.not_valid_before_utc <= now < certificate.not_valid_after_utc:
        raise ClientError(f"certificate {serial} is not valid now (valid "
                          f"{certificate.not_valid_before_utc.isoformat()} to "
                          f"{certificate.not_valid_after_utc.isoformat()})")
    if IssuedCertificate.objects.filter(sha256=sha256, revoked_at__isnull=False).exists():
        raise ClientError(f"certificate {serial} has been revoked")
    try:
        eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        eku = None
    if eku is not None and ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
        raise ClientError(f"certificate {serial} is not allowed for TLS client authentication")
    existing = ClientCertificate.objects.filter(sha256=sha256).select_related("client").first()
    if existing is not None:
        if existing.client_id != client.pk:
            raise ClientError(f"certificate {serial} is already bound to client "
                              f"{existing.client.name!r}")
        return existing
    bound = ClientCertificate.objects.create(
        client=client, sha256=sha256, serial=serial,
        subject=certificate.subject.rfc4514_string(),
        not_after=certificate.not_valid_after_utc)
    generations.bump(generations.AUTH)
    security_log.record(security_log.Kind.CERTIFICATE_BOUND, client_id=client.client_id,
                        cert_sha256=sha256, detail=f"serial {serial} {bound.subject}")
    return bound


@transaction.atomic
def set_require_mtls(*, client_id: str, required: bool) -> Client:
    """Switch a client's certificate requirement. Turning it on invalidates the client's
    unbound tokens at once (the auth generation moves; see ClientTokenAuthentication)."""
    client = find_client(client_id)
    if client.require_mtls != required:
        client.require_mtls = required
        client.save(update_fields=["require_mtls"])
        generations.bump(generations.AUTH)
    return client
