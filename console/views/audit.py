"""The audit log: search, and a dispatch's evidence bundle (``dispatch.audit.export``,
the same document as ``dispatch audit-export``)."""

from __future__ import annotations

import json

from django.http import HttpRequest, HttpResponse

from console.filters import AuditFilter
from console.permissions import console_view
from console.views.common import page, paged
from dispatch import audit
from dispatch import selectors as dispatch_selectors
from dispatch.models import AuditEntry
from vtn.errors import Problem


@console_view()
def audit_log(request: HttpRequest) -> HttpResponse:
    """Every audit entry, newest first, filtered and paged (invalid filters: none)."""
    filters = AuditFilter(request.GET, queryset=AuditEntry.objects.order_by("-sequence"))
    problems = [] if filters.is_valid() else ["check the filters"]
    rows = [] if problems else filters.qs
    return page(request, "console/audit.html", {
        "form": filters.form, "entries": paged(request, rows), "problems": problems},
        status=400 if problems else 200)


@console_view()
def evidence(request: HttpRequest, operator: str, reference: str) -> HttpResponse:
    """The offline-verifiable audit export of one dispatch, as a download."""
    try:
        dispatch = dispatch_selectors.find_dispatch(reference, operator=operator)
    except Problem:
        return page(request, "console/not_found.html",
                    {"what": f"dispatch {operator}/{reference}"}, status=404)
    document = audit.export(dispatch)
    response = HttpResponse(json.dumps(document, indent=2, sort_keys=True),
                            content_type="application/json")
    response["Content-Disposition"] = (
        f'attachment; filename="{dispatch.operator.code}-{dispatch.reference}-audit.json"')
    return response
