"""Bearer-token authentication against tokens issued by django-oauth-toolkit."""

from __future__ import annotations

import hashlib

from django.utils import timezone
from oauth2_provider.models import get_access_token_model
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from vtn.auth.caller import Caller

AccessToken = get_access_token_model()
REALM = 'Bearer realm="openadr"'


class InvalidToken(exceptions.AuthenticationFailed):
    auth_header = f'{REALM}, error="invalid_token"'


class ClientTokenAuthentication(BaseAuthentication):
    """Resolve ``Authorization: Bearer <token>`` to a :class:`Caller`.

    The token must exist, be unexpired and belong to a client that is not revoked.
    """

    def authenticate(self, request) -> tuple[Caller, AccessToken] | None:
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != b"bearer":
            return None
        if len(header) != 2:
            raise InvalidToken("Malformed Authorization header: expected 'Bearer <token>'.")
        try:
            raw = header[1].decode("ascii")
        except UnicodeDecodeError as exc:
            raise InvalidToken("The access token is not valid.") from exc
        checksum = hashlib.sha256(raw.encode()).hexdigest()
        token = (
            AccessToken.objects.select_related("application__vtn_client")
            .filter(token_checksum=checksum)
            .first()
        )
        if token is None or token.expires <= timezone.now():
            raise InvalidToken("The access token is unknown or has expired.")
        client = getattr(token.application, "vtn_client", None)
        if client is None or client.revoked:
            raise InvalidToken("The client of this access token has been revoked.")
        scopes = frozenset(token.scope.split()) & client.scope_set
        caller = Caller(client_id=token.application.client_id, name=client.name,
                        role=client.role, scopes=scopes)
        return caller, token

    def authenticate_header(self, request) -> str:
        return REALM
