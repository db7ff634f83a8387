"""What every console page shares."""

from __future__ import annotations

from django.core.paginator import Page, Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from console import permissions
from dispatch import scope as operator_scopes
from dispatch.registry import NETWORK_OPERATORS
from dispatch.scope import Scope

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


def operator_scope(request: HttpRequest) -> Scope:
    """The network operators the console user may see and act for."""
    return operator_scopes.for_user(request.user, request.META.get("REMOTE_ADDR", ""))


def narrow_form(form, scope: Scope):
    """Offer only the scope's operators (and their units) in ``form``. A submitted operator
    or unit outside the scope is then an invalid choice, the same answer as for one that
    does not exist, and the attempt is written to the security log."""
    operator = form.fields.get("operator")
    if operator is not None:
        operator.choices = [(code, label) for code, label in operator.choices
                            if not code or code in scope.operators]
        sent = str(form.data.get("operator", "")).upper() if form.is_bound else ""
        if sent in NETWORK_OPERATORS and not scope.allows(sent):
            scope.refuse("a console form", sent)
    unit = form.fields.get("unit")
    if unit is not None:
        everything = unit.queryset
        unit.queryset = everything.filter(fsp__operator__code__in=scope.operators)
        sent = str(form.data.get("unit", "")) if form.is_bound else ""
        if sent.isdigit():
            hidden = everything.exclude(fsp__operator__code__in=scope.operators).filter(
                pk=int(sent)).values_list("fsp__operator__code", flat=True).first()
            if hidden is not None:
                scope.refuse(f"dispatch unit {sent}", hidden)
    return form


def staff(request: HttpRequest) -> str:
    return request.user.get_username()


def paged(request: HttpRequest, rows, *, param: str = "page") -> Page:
    """One page (``PAGE_SIZE`` rows) of ``rows`` (a queryset or list), the number read
    from the query parameter ``param``; a number that is not a page gives the nearest
    page, not an error."""
    return Paginator(rows, PAGE_SIZE).get_page(request.GET.get(param))
