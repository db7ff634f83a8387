"""Who may do what in the console: the one place the role rules live.

Each staff user has one role, a Django group created by migration ``0002_roles``. Every
view names the action it needs (:func:`console_view`); the decorator refuses anyone who
has not passed both factors (password and TOTP) and answers 403 to a role without the
action, for GET and POST alike, before the view runs.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.models import AbstractUser, AnonymousUser
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

VIEWER = "viewer"
DISPATCHER = "dispatcher"
SETTLEMENT_OFFICER = "settlement officer"
ADMINISTRATOR = "administrator"
ROLES = (VIEWER, DISPATCHER, SETTLEMENT_OFFICER, ADMINISTRATOR)

VIEW = "view"  # read every page
DISPATCH = "dispatch"  # issue, revise, stop, emergency-stop dispatches
SETTLE = "settle"  # compute, issue, resolve, finalise and export statements
REGISTRY = "registry"  # onboard FSP sites, record contracts, download bundles

ACTIONS: dict[str, frozenset[str]] = {
    VIEW: frozenset(ROLES),
    DISPATCH: frozenset({DISPATCHER, ADMINISTRATOR}),
    SETTLE: frozenset({SETTLEMENT_OFFICER, ADMINISTRATOR}),
    REGISTRY: frozenset({ADMINISTRATOR}),
}


def role_of(user: AbstractUser | AnonymousUser) -> str | None:
    """The user's console role (the most capable of their console groups), or None."""
    if not user.is_authenticated or not user.is_active:
        return None
    names = set(user.groups.values_list("name", flat=True))
    for role in reversed(ROLES):
        if role in names:
            return role
    return None


def can(user: AbstractUser | AnonymousUser, action: str) -> bool:
    return role_of(user) in ACTIONS[action]


def allowed_actions(user: AbstractUser | AnonymousUser) -> set[str]:
    role = role_of(user)
    return {action for action, roles in ACTIONS.items() if role in roles}


def fully_authenticated(request: HttpRequest) -> bool:
    """Password and a verified TOTP device in this session (django-otp's middleware)."""
    user = request.user
    # is_verified() is added to the user by django-otp's OTPMiddleware.
    return bool(user.is_authenticated and user.is_active
                and user.is_verified())  # type: ignore[attr-defined]


def forbidden(request: HttpRequest, action: str) -> HttpResponse:
    return render(request, "console/forbidden.html",
                  {"action": action, "role": role_of(request.user)}, status=403)


def console_view(action: str = VIEW) -> Callable:
    """Decorate a view: both factors required (else to the login page), then ``action``
    (else 403, whatever the method)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown console action {action!r}")

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not fully_authenticated(request):
                return redirect_to_login(request.get_full_path())
            if not can(request.user, action):
                return forbidden(request, action)
            return view(request, *args, **kwargs)

        wrapped.console_action = action  # type: ignore[attr-defined]  # marks the action
        return wrapped

    return decorate
