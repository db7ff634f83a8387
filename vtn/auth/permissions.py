"""Scope checks: each view names, per HTTP method, the scopes that admit the call."""

from __future__ import annotations

from rest_framework.permissions import BasePermission

from vtn.auth.caller import Caller


class HasOperationScope(BasePermission):
    """Grant access when the caller holds one of ``view.scopes[request.method]``.

    A view without an entry for the method is open (e.g. the token endpoint).
    """

    message = "The access token lacks a scope this operation requires."

    def has_permission(self, request, view) -> bool:
        required = getattr(view, "scopes", {}).get(request.method)
        if required is None:
            return True
        caller = request.user
        if not isinstance(caller, Caller):
            return False
        return bool(caller.scopes & required)
