"""django-oauth-toolkit validator: per-client scopes, revocation and certificate binding.

A client with ``require_mtls`` authenticates at the token endpoint with one of its bound
TLS client certificates, either alone (RFC 8705 ``tls_client_auth``: client_id and the
certificate, no secret) or together with its secret. The token it gets is bound to that
certificate's SHA-256 thumbprint (:class:`~vtn.models.TokenBinding`), which the response
reports as ``cnf.x5t#S256``. Other clients authenticate with their secret, as before.
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import unquote_plus

from django.contrib.auth.hashers import make_password
from oauth2_provider.models import get_application_model
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauthlib.oauth2.rfc6749.errors import InvalidScopeError

from vtn import mqtt_acl
from vtn.auth import hashers
from vtn.auth.mtls import META_THUMBPRINT
from vtn.auth.scopes import READ_ALL, READ_ALL_EQUIVALENTS
from vtn.models import Client, TokenBinding

# Why a certificate check failed (None: it passed); the token view logs these.
CERT_REQUIRED = "client certificate required"
CERT_NOT_BOUND = "client certificate not bound to this client"


def _vtn_client(application):
    return getattr(application, "vtn_client", None) if application is not None else None


def certificate_problem(client: Client | None, presented: str | None) -> str | None:
    """What is wrong with the certificate ``presented`` (thumbprint) for ``client``, if
    anything. Clients without ``require_mtls`` have no certificate requirement."""
    if client is None or not client.require_mtls:
        return None
    if not presented:
        return CERT_REQUIRED
    if not client.certificates.filter(sha256=presented).exists():
        return CERT_NOT_BOUND
    return None


def x5t_s256(thumbprint_hex: str) -> str:
    """The RFC 8705 ``x5t#S256`` value: base64url (no padding) of the SHA-256 digest."""
    return base64.urlsafe_b64encode(bytes.fromhex(thumbprint_hex)).rstrip(b"=").decode()


def presented_credentials(request) -> tuple[str, str]:
    """(client_id, client_secret) from HTTP Basic or the body; empty strings if absent."""
    auth = request.headers.get("HTTP_AUTHORIZATION", "") or request.headers.get(
        "Authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value.strip()).decode()
        except (binascii.Error, UnicodeDecodeError):
            return "", ""
        client_id, _, secret = decoded.partition(":")
        return unquote_plus(client_id), unquote_plus(secret)
    return (getattr(request, "client_id", None) or "",
            getattr(request, "client_secret", None) or "")


def _upgrade_stored_secret(application, secret: str) -> None:
    """Re-store a secret that just verified against an older hash (Django's slow password
    hasher) in the current form (:mod:`vtn.auth.hashers`): once per client, on its first
    token request after the upgrade."""
    stored = application.client_secret
    if not secret or not application.hash_client_secret or hashers.is_current(stored):
        return
    upgraded = make_password(secret, hasher=hashers.ALGORITHM)
    # update(), not save(): the value is already hashed, and a concurrent upgrade of the
    # same client must not overwrite a rotation that happened in between.
    get_application_model().objects.filter(pk=application.pk, client_secret=stored).update(
        client_secret=upgraded)
    application.client_secret = upgraded


def granted_scopes(requested: list[str], held: set[str] | frozenset[str]
                   ) -> tuple[list[str], list[str]]:
    """(granted, refused): the requested scopes the client holds and those it does not,
    each in request order without repeats.

    ``read_all`` asked by a client that does not hold it is granted as the read scopes
    it does hold (:data:`~vtn.auth.scopes.READ_ALL_EQUIVALENTS`), so a VEN that asks for
    ``read_all`` gets the reads a VEN may make.
    """
    granted: list[str] = []
    refused: list[str] = []
    for scope in dict.fromkeys(requested):
        if scope in held:
            granted.append(scope)
        elif scope == READ_ALL and any(s in held for s in READ_ALL_EQUIVALENTS):
            granted += [s for s in READ_ALL_EQUIVALENTS if s in held]
        else:
            refused.append(scope)
    return list(dict.fromkeys(granted)), refused


class VtnOAuth2Validator(OAuth2Validator):
    """Issue tokens only to live VTN clients, only for scopes the client holds, and to
    ``require_mtls`` clients only with their bound certificate."""

    def authenticate_client(self, request, *args, **kwargs) -> bool:
        presented = request.headers.get(META_THUMBPRINT) or None
        client_id, secret = presented_credentials(request)
        application = self._load_application(client_id, request) if client_id else None
        client = _vtn_client(application)
        if application is not None and client is not None and client.require_mtls:
            if presented is None or certificate_problem(client, presented) is not None:
                return False
            if secret:
                if not super().authenticate_client(request, *args, **kwargs):
                    return False  # a wrong secret is wrong even with the right certificate
                _upgrade_stored_secret(request.client, secret)
            # tls_client_auth: the bound certificate alone authenticates the client.
            request.client = application
            request.client_id = application.client_id
            request.vtn_cert_binding = presented
            request.extra_credentials = (request.extra_credentials or {}) | {
                "cnf": {"x5t#S256": x5t_s256(presented)}}
            return not client.revoked
        if not super().authenticate_client(request, *args, **kwargs):
            return False
        _upgrade_stored_secret(request.client, secret)
        client = _vtn_client(request.client)
        return client is not None and not client.revoked

    def _load_application(self, client_id, request):
        # A client_id with NUL names no client; PostgreSQL cannot even query for it (500).
        if client_id and "\x00" in client_id:
            return None
        return super()._load_application(client_id, request)

    def validate_scopes(self, client_id, scopes, client, request, *args, **kwargs) -> bool:
        """Grant the requested scopes the client holds (RFC 6749 section 3.3).

        The token gets the intersection of what was asked and what the client holds, in
        the request's order, and the response's ``scope`` says what was granted. Only an
        empty intersection is refused (``invalid_scope``), naming the client's scopes.
        """
        vtn_client = _vtn_client(client)
        if vtn_client is None:
            return False
        granted, refused = granted_scopes(scopes, vtn_client.scope_set)
        if not granted:
            raise InvalidScopeError(
                description=f"None of the requested scopes ({' '.join(refused)}) is granted "
                            f"to this client; it holds: "
                            f"{' '.join(sorted(vtn_client.scope_set))}.",
                request=request)
        request.scopes = granted
        return True

    def get_default_scopes(self, client_id, request, *args, **kwargs) -> list[str]:
        vtn_client = _vtn_client(request.client)
        return sorted(vtn_client.scope_set) if vtn_client else []

    def _create_access_token(self, expires, request, token, source_refresh_token=None):
        access_token = super()._create_access_token(expires, request, token,
                                                     source_refresh_token=source_refresh_token)
        binding = getattr(request, "vtn_cert_binding", None)
        if binding:
            TokenBinding.objects.create(access_token=access_token, certificate_sha256=binding)
        mqtt_acl.token_issued(access_token.application.client_id, access_token.token)
        return access_token
