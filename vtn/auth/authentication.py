"""Bearer-token authentication against tokens issued by django-oauth-toolkit."""

from __future__ import annotations

import hashlib
import time

from django.utils import timezone
from oauth2_provider.models import get_access_token_model
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from vtn import generations
from vtn.auth.caller import Caller

AccessToken = get_access_token_model()
REALM = 'Bearer realm="openadr"'

# Resolved tokens of this process, keyed by (token checksum, auth generation): a revoked
# or rotated client moves the auth generation, so its cached tokens stop matching.
_resolved_tokens = generations.ProcessCache()


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
        targeting, auth = generations.current()
        cached = _resolved_tokens.get((checksum, auth))
        if cached is not None and cached[0] > time.time():
            _, client_id, name, role, scopes, token = cached
            return Caller(client_id=client_id, name=name, role=role, scopes=scopes,
                          targeting_generation=targeting), token
        try:
            token = AccessToken.objects.select_related("application__vtn_client").get(
                token_checksum=checksum)
        except AccessToken.DoesNotExist:
            token = None
        if token is None or token.expires <= timezone.now():
            raise InvalidToken("The access token is unknown or has expired.")
        client = getattr(token.application, "vtn_client", None)
        if client is None or client.revoked:
            raise InvalidToken("The client of this access token has been revoked.")
        scopes = frozenset(token.scope.split()) & client.scope_set
        caller = Caller(client_id=token.application.client_id, name=client.name,
                        role=client.role, scopes=scopes, targeting_generation=targeting)
        _resolved_tokens.put((checksum, auth), (token.expires.timestamp(), caller.client_id,
                                                caller.name, caller.role, scopes, token))
        return caller, token

    def authenticate_header(self, request) -> str:
        return REALM
