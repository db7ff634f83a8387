"""What every console page shares."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from console import permissions


def page(request: HttpRequest, template: str, context: dict | None = None, *,
         status: int = 200) -> HttpResponse:
    """Render ``template`` with the user's role and what they may do (for showing or hiding
    actions; the server checks again on every request)."""
    allowed = permissions.allowed_actions(request.user)
    response = render(request, template, {
        "role": permissions.role_of(request.user),
        "may": {action: action in allowed for action in permissions.ACTIONS},
        **(context or {})}, status=status)
    response["Cache-Control"] = "no-store"
    return response


def staff(request: HttpRequest) -> str:
    return request.user.get_username()
