"""What every console page shares."""

from __future__ import annotations

from django.core.paginator import Page, Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from console import permissions

# Rows per page of every console list.
PAGE_SIZE = 50


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


def paged(request: HttpRequest, rows, *, param: str = "page") -> Page:
    """One page (``PAGE_SIZE`` rows) of ``rows`` (a queryset or list), the number read
    from the query parameter ``param``; a number that is not a page gives the nearest
    page, not an error."""
    return Paginator(rows, PAGE_SIZE).get_page(request.GET.get(param))
