"""Bearer-token authentication against tokens issued by django-oauth-toolkit.

A token bound to a TLS client certificate (RFC 8705) is accepted only together with that
certificate; a token of a ``require_mtls`` client that is not bound is not accepted at
all. Failed authentications are counted (:func:`vtn.auth.ratelimit.register_failure`): per
source address and client for a token of a known client, per source address for a token
that names nothing. Over budget, *failing* requests get 429 with Retry-After; a valid token
is never refused by these budgets, cached in this process or not.
"""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Any, cast

from django.utils import timezone
from oauth2_provider.models import AbstractAccessToken, get_access_token_model
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from vtn import generations
from vtn.auth import mtls, ratelimit, security_log
from vtn.auth.caller import Caller

AccessToken = get_access_token_model()
REALM = 'Bearer realm="openadr"'

# Resolved tokens of this process, keyed by (token checksum, auth generation): a revoked
# or rotated client, a revoked certificate or a changed binding moves the auth generation,
# so its cached tokens stop matching. Each entry carries the token's certificate binding
# (or None) and whether its client requires mTLS, so binding checks run on cache hits too.
# (token checksum, auth generation) -> (expires, client_id, name, role, scopes, token,
# bound certificate thumbprint, require_mtls)
_resolved_tokens: generations.ProcessCache[tuple[str, int], tuple[Any, ...]] = \
    generations.ProcessCache(max_entries=50_000)
# A process loads every live token in bulk once per auth generation (see prime_tokens), so
# a fleet's first polls after a start or a revocation cost one query per process instead
# of one per token. At most this many tokens are loaded; beyond it tokens resolve one by one.
PRIME_LIMIT = 40_000
_PRIMED = ""  # (_PRIMED, auth) is in the cache once that generation's tokens were loaded
_prime_lock = threading.Lock()


def caller_of(request: Request) -> Caller:
    """The :class:`Caller` an authenticated API request acts as. The OpenADR, dispatch,
    settlement and conformance APIs authenticate with :class:`ClientTokenAuthentication`,
    which puts a Caller in ``request.user``; this says so to the type checker."""
    return cast(Caller, request.user)


def cached_caller(request, raw: str, checksum: str | None = None, address: str = ""
                  ) -> tuple[Caller, AbstractAccessToken] | None:
    """The caller of bearer token ``raw`` if this process resolved it under the current auth
    generation and it has not expired, else None (ask the database). Raises
    :class:`InvalidToken` when the token's certificate binding is not met."""
    checksum = checksum or hashlib.sha256(raw.encode()).hexdigest()
    targeting, auth = mtls.current_generations(request)
    cached = _resolved_tokens.get((checksum, auth))
    if cached is None and prime_tokens(auth):
        cached = _resolved_tokens.get((checksum, auth))
    if cached is None or cached[0] <= time.time():
        return None
    _, client_id, name, role, scopes, token, bound, require_mtls = cached
    _check_binding(request, client_id, bound, require_mtls)
    return Caller(client_id=client_id, name=name, role=role, scopes=scopes,
                  targeting_generation=targeting, auth_generation=auth,
                  remote_addr=address or mtls.client_address(request)), token


def _entry(token: AbstractAccessToken) -> tuple[Any, ...]:
    """What the token cache keeps of an unexpired token of a client that is not revoked."""
    client = token.application.vtn_client  # type: ignore[attr-defined]
    binding = getattr(token, "vtn_binding", None)
    return (token.expires.timestamp(), token.application.client_id, client.name, client.role,
            frozenset(token.scope.split()) & client.scope_set, token,
            binding.certificate_sha256 if binding is not None else None, client.require_mtls)


def prime_tokens(auth: int) -> bool:
    """Load every unexpired token of a client that is not revoked into this process's
    cache under auth generation ``auth``, once per generation (at most
    :data:`PRIME_LIMIT`). True if this call loaded them. A thread that finds another
    loading does not wait: it resolves its own token with a query.

    The generation is read before the rows, so what is loaded is at least as new as it:
    a revocation committed meanwhile moves the generation and these entries stop
    matching, exactly as for a token resolved alone."""
    marker = (_PRIMED, auth)
    if _resolved_tokens.get(marker) is not None or not _prime_lock.acquire(blocking=False):
        return False
    try:
        if _resolved_tokens.get(marker) is not None:
            return False
        tokens = (AccessToken.objects
                  .filter(expires__gt=timezone.now(), application__vtn_client__revoked=False)
                  .select_related("application__vtn_client", "vtn_binding")
                  .order_by("-expires")[:PRIME_LIMIT])
        for token in tokens.iterator(chunk_size=2000):
            _resolved_tokens.put((token.token_checksum, auth), _entry(token))
        _resolved_tokens.put(marker, ())
        return True
    finally:
        _prime_lock.release()


class InvalidToken(exceptions.AuthenticationFailed):
    auth_header = f'{REALM}, error="invalid_token"'


class TooManyFailures(exceptions.Throttled):
    default_detail = "Too many failed authentications; try again later."


class ClientTokenAuthentication(BaseAuthentication):
    """Resolve ``Authorization: Bearer <token>`` to a :class:`Caller`.

    The token must exist, be unexpired and belong to a client that is not revoked.
    """

    def authenticate(self, request) -> tuple[Caller, AbstractAccessToken] | None:
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != b"bearer":
            return None
        address = mtls.client_address(request)
        try:
            return self._resolve(request, header, address)
        except InvalidToken as exc:
            self._failed(request, address, exc)
            raise

    def _resolve(self, request, header: list[bytes], address: str
                 ) -> tuple[Caller, AbstractAccessToken]:
        if len(header) != 2:
            raise InvalidToken("Malformed Authorization header: expected 'Bearer <token>'.")
        try:
            raw = header[1].decode("ascii")
        except UnicodeDecodeError as exc:
            raise InvalidToken("The access token is not valid.") from exc
        checksum = hashlib.sha256(raw.encode()).hexdigest()
        targeting, auth = mtls.current_generations(request)
        known = cached_caller(request, raw, checksum, address)
        if known is not None:
            return known
        # Not a token this process already knows: ask the database (never the cache, so
        # authentication works whether or not Redis does).
        try:
            token = AccessToken.objects.select_related(
                "application__vtn_client", "vtn_binding").get(token_checksum=checksum)
        except AccessToken.DoesNotExist:
            token = None
        if token is None:
            raise InvalidToken("The access token is unknown or has expired.")
        if token.expires <= timezone.now():
            # Names a real client: counted per (address, client), not against neighbours.
            raise KnownClientTokenRefused("The access token is unknown or has expired.",
                                          token.application.client_id)
        client = getattr(token.application, "vtn_client", None)
        if client is None or client.revoked:
            raise KnownClientTokenRefused(
                "The client of this access token has been revoked.",
                token.application.client_id)
        entry = _entry(token)
        _, client_id, name, role, scopes, _, bound, require_mtls = entry
        caller = Caller(client_id=client_id, name=name, role=role, scopes=scopes,
                        targeting_generation=targeting, auth_generation=auth,
                        remote_addr=address)
        _resolved_tokens.put((checksum, auth), entry)
        _check_binding(request, client_id, bound, require_mtls)
        return caller, token

    @staticmethod
    def _failed(request, address: str, exc: InvalidToken) -> None:
        """Count the failure; over budget, answer 429 instead (logged once per window)."""
        request.vtn_auth_error = "invalid_token"  # for the challenge (authenticate_header)
        client_id = getattr(exc, "client_id", "")
        # Per (address, client) when the token names a known client, else per address: a
        # leaked token used without its certificate slows whoever uses it, not the client
        # or its neighbours behind the same address.
        verdict = ratelimit.register_failure(address,
                                             f"client:{client_id}" if client_id else None)
        peer = getattr(request, "client_cert", None)
        if verdict.wait is not None:
            if verdict.first:
                security_log.record(security_log.Kind.RATE_LIMITED, client_id=client_id,
                                    remote_addr=address,
                                    cert_sha256=peer.sha256 if peer else "",
                                    detail=f"auth failures over budget ({verdict.dimension}) "
                                           f"at {request.method} {request.path}")
            raise TooManyFailures(wait=verdict.wait) from exc
        security_log.record(getattr(exc, "event_kind", security_log.Kind.AUTH_FAILED),
                            client_id=client_id, remote_addr=address,
                            cert_sha256=peer.sha256 if peer else "",
                            detail=f"{request.method} {request.path}: {exc.detail}")

    def authenticate_header(self, request) -> str:
        # DRF replaces the exception's own challenge with this one: keep the RFC 6750 error.
        error = getattr(request, "vtn_auth_error", None)
        return f'{REALM}, error="{error}"' if error else REALM


class KnownClientTokenRefused(InvalidToken):
    """A token of a known client, refused: failures count per (address, that client)."""

    def __init__(self, detail: str, client_id: str):
        super().__init__(detail)
        self.client_id = client_id


class CertificateMismatch(KnownClientTokenRefused):
    event_kind = security_log.Kind.CERT_MISMATCH


def _check_binding(request, client_id: str, bound: str | None, require_mtls: bool) -> None:
    """Refuse a bound token without its certificate, and an unbound token of a client that
    must use mTLS (e.g. issued before the requirement was switched on)."""
    if bound is None and not require_mtls:
        return
    peer = getattr(request, "client_cert", None)
    if bound is None:
        raise CertificateMismatch("This client must use a certificate-bound access token; "
                                  "request a new token with its TLS client certificate.",
                                  client_id)
    if peer is None:
        raise CertificateMismatch("This access token is bound to a TLS client certificate, "
                                  "and none was presented.", client_id)
    if peer.sha256 != bound:
        raise CertificateMismatch("This access token is bound to a different TLS client "
                                  "certificate.", client_id)
