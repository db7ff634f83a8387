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

from oauth2_provider.oauth2_validators import OAuth2Validator

from vtn import mqtt_acl
from vtn.auth.mtls import META_THUMBPRINT
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


class VtnOAuth2Validator(OAuth2Validator):
    """Issue tokens only to live VTN clients, only for scopes the client holds, and to
    ``require_mtls`` clients only with their bound certificate."""

    def authenticate_client(self, request, *args, **kwargs) -> bool:
        presented = request.headers.get(META_THUMBPRINT) or None
        client_id, secret = presented_credentials(request)
        application = self._load_application(client_id, request) if client_id else None
        client = _vtn_client(application)
        if client is not None and client.require_mtls:
            if certificate_problem(client, presented) is not None:
                return False
            if secret and not super().authenticate_client(request, *args, **kwargs):
                return False  # a wrong secret is wrong even with the right certificate
            # tls_client_auth: the bound certificate alone authenticates the client.
            request.client = application
            request.client_id = application.client_id
            request.vtn_cert_binding = presented
            request.extra_credentials = (request.extra_credentials or {}) | {
                "cnf": {"x5t#S256": x5t_s256(presented)}}
            return not client.revoked
        if not super().authenticate_client(request, *args, **kwargs):
            return False
        client = _vtn_client(request.client)
        return client is not None and not client.revoked

    def _load_application(self, client_id, request):
        # A client_id with NUL names no client; PostgreSQL cannot even query for it (500).
        if client_id and "\x00" in client_id:
            return None
        return super()._load_application(client_id, request)

    def validate_scopes(self, client_id, scopes, client, request, *args, **kwargs) -> bool:
        vtn_client = _vtn_client(client)
        return vtn_client is not None and set(scopes) <= vtn_client.scope_set

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
