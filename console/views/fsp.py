"""The FSP's own pages (FSP staff, password and TOTP like operator staff): its sites,
dispatches with their acknowledgements, declared availability and statements, across
its registrations that share its FSP reference (``dispatch.fsp_office``); the
commercial role accepts or disputes issued statements. Nothing of another FSP is shown;
naming another FSP's statement answers 404."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import wraps

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from console.permissions import fully_authenticated
from console.services import violations
from dispatch import fsp_office
from dispatch.api.serializers import DispatchSerializer, SiteSerializer
from settlement import selectors as settlement_selectors
from settlement import services as settlement_services
from vtn.errors import Problem


def fsp_staff_view(*, commercial: bool = False) -> Callable:
    """Both factors, then FSP staff (and the commercial role when asked); else 403."""
    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not fully_authenticated(request):
                return redirect_to_login(request.get_full_path())
            office = fsp_office.office_of_user(request.user)
            if office is None or (commercial and not office.commercial):
                return render(request, "console/forbidden.html", {
                    "action": "answer statements" if office else "the FSP pages",
                    "role": office.role if office else None}, status=403)
            return view(request, office, *args, **kwargs)
        return wrapped
    return decorate


@fsp_staff_view()
def home(request: HttpRequest, office: fsp_office.Office) -> HttpResponse:
    now = timezone.now()
    statements = settlement_selectors.visible_statements(client_id="", is_operator=False,
                                                         office=office)
    response = render(request, "console/fsp.html", {
        "office": office,
        "sites": SiteSerializer(fsp_office.sites(office), many=True, transitions=5).data,
        "dispatches": DispatchSerializer(fsp_office.dispatches(office)[:50], many=True).data,
        "availability": [fsp_office.declaration_as_dict(row) for row in
                         fsp_office.declarations(office, now - timedelta(days=1),
                                                 now + timedelta(days=7))],
        "statements": list(statements.order_by("-month", "-version")[:50])})
    response["Cache-Control"] = "no-store"
    return response


@fsp_staff_view(commercial=True)
@require_POST
def answer(request: HttpRequest, office: fsp_office.Office, statement_id: int,
           verb: str) -> HttpResponse:
    """Accept, or dispute with a reason, an issued statement of the FSP."""
    if verb not in ("accept", "dispute"):
        return render(request, "console/not_found.html", {"what": f"action {verb}"},
                      status=404)
    try:
        row = settlement_selectors.find_statement(str(statement_id), client_id="",
                                                  is_operator=False, office=office)
    except Problem:
        return render(request, "console/not_found.html",
                      {"what": f"statement {statement_id}"}, status=404)
    who = f"console:{request.user.get_username()}"
    try:
        if verb == "accept":
            settlement_services.accept(statement_id=row.pk, client_id=who)
        else:
            settlement_services.dispute(statement_id=row.pk, client_id=who,
                                        reason=request.POST.get("reason", ""), lines=[])
    except Problem as exc:
        for message in violations(exc):
            messages.error(request, message)
    else:
        messages.success(request, f"Statement {row.pk} {verb}d.")
    return redirect("/console/fsp")
