"""The audit log: search, and a dispatch's evidence bundle (``dispatch.audit.export``,
the same document as ``dispatch audit-export``)."""

from __future__ import annotations

import json

from django.http import HttpRequest, HttpResponse

from console import selectors
from console.forms import AuditFilterForm
from console.permissions import console_view
from console.views.common import page
from dispatch import audit
from dispatch import selectors as dispatch_selectors
from vtn.api.problems import Problem


@console_view()
def audit_log(request: HttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET or None)
    entries, problems = [], []
    if form.is_bound and not form.is_valid():
        problems = ["check the filters"]
    else:
        data = form.cleaned_data if form.is_bound else {}
        entries = selectors.audit_entries(selectors.AuditFilters(
            operator=data.get("operator", ""), dispatch_ref=data.get("dispatch_ref", ""),
            kind=data.get("kind", ""), since=data.get("since"), until=data.get("until")))
    return page(request, "console/audit.html", {"form": form, "entries": entries,
                                                "problems": problems})


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
