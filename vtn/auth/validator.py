"""django-oauth-toolkit validator: per-client scopes and revocation."""

from __future__ import annotations

from oauth2_provider.oauth2_validators import OAuth2Validator


def _vtn_client(application):
    return getattr(application, "vtn_client", None) if application is not None else None


class VtnOAuth2Validator(OAuth2Validator):
    """Issue tokens only to live VTN clients, and only for scopes the client holds."""

    def authenticate_client(self, request, *args, **kwargs) -> bool:
        if not super().authenticate_client(request, *args, **kwargs):
            return False
        client = _vtn_client(request.client)
        return client is not None and not client.revoked

    def validate_scopes(self, client_id, scopes, client, request, *args, **kwargs) -> bool:
        vtn_client = _vtn_client(client)
        return vtn_client is not None and set(scopes) <= vtn_client.scope_set

    def get_default_scopes(self, client_id, request, *args, **kwargs) -> list[str]:
        vtn_client = _vtn_client(request.client)
        return sorted(vtn_client.scope_set) if vtn_client else []
