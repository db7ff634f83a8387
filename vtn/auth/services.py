"""Writes for VTN clients: create, revoke. Reads with rules live in selectors."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.db import transaction
from oauth2_provider.models import get_access_token_model, get_application_model

from vtn.auth.scopes import ALL_SCOPES, DEFAULT_SCOPES
from vtn.models import Client, Ven

Application = get_application_model()
AccessToken = get_access_token_model()


class ClientError(ValueError):
    """A client cannot be created or changed as asked."""


@dataclass(frozen=True)
class IssuedCredentials:
    client: Client
    client_secret: str  # shown once; only a hash is stored

    def as_dict(self) -> dict:
        return {
            "name": self.client.name,
            "client_id": self.client.client_id,
            "client_secret": self.client_secret,
            "role": self.client.role,
            "scopes": sorted(self.client.scope_set),
        }


@transaction.atomic
def create_client(*, name: str, role: str, scopes: list[str] | None = None,
                  ven_name: str | None = None) -> IssuedCredentials:
    """Create an OAuth2 client-credentials client for the VTN.

    A VEN client named with ``ven_name`` is bound to that VEN object: the VEN is created
    if it does not exist, and its clientID is set to the new client's id either way.
    """
    if role not in DEFAULT_SCOPES:
        raise ClientError(f"role must be one of {sorted(DEFAULT_SCOPES)}")
    if ven_name and role != Client.Role.VEN:
        raise ClientError("only a VEN client can be bound to a VEN")
    granted = list(dict.fromkeys(scopes or DEFAULT_SCOPES[role]))
    unknown = sorted(set(granted) - set(ALL_SCOPES))
    if unknown:
        raise ClientError(f"unknown scopes: {', '.join(unknown)}")
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
    client = Client.objects.create(application=application, name=name, role=role,
                                   scopes=" ".join(granted))
    if ven_name:
        ven, created = Ven.objects.get_or_create(
            ven_name=ven_name, defaults={"client_id": application.client_id}
        )
        if not created:
            ven.client_id = application.client_id
            ven.save(update_fields=["client_id", "modified"])
    return IssuedCredentials(client=client, client_secret=secret)


@transaction.atomic
def revoke_client(*, client_id: str) -> Client:
    """Revoke a client: its tokens are deleted and no new token is issued to it."""
    client = Client.objects.select_related("application").filter(
        application__client_id=client_id
    ).first() or Client.objects.select_related("application").filter(name=client_id).first()
    if client is None:
        raise ClientError(f"no client with id or name {client_id!r}")
    client.revoked = True
    client.save(update_fields=["revoked"])
    AccessToken.objects.filter(application=client.application).delete()
    return client
