"""Statements: list with filters, a statement with its lines, totals and per-dispatch
charts, and the lifecycle actions (settlement officer). Writes are
``settlement.services``; exports are ``settlement.exports``, as the API serves them."""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_http_methods, require_POST

from console import charts, selectors
from console.forms import ComputeForm, ResolveForm, StatementFilterForm
from console.permissions import SETTLE, console_view
from console.services import violations
from console.views.common import page, paged
from dispatch import selectors as dispatch_selectors
from settlement import exports
from settlement import services as settlement_services
from settlement.models import Statement
from vtn.errors import Problem


def _statement(request: HttpRequest, statement_id: int) -> Statement | HttpResponse:
    try:
        return selectors.find_statement(statement_id)
    except Problem:
        return page(request, "console/not_found.html", {"what": f"statement {statement_id}"},
                    status=404)


@console_view()
def statement_list(request: HttpRequest) -> HttpResponse:
    form = StatementFilterForm(request.GET or None)
    rows: Iterable[Statement] = []
    problems: list[str] = []
    if form.is_bound and not form.is_valid():
        problems = ["check the filters"]
    else:
        data = form.cleaned_data if form.is_bound else {}
        rows = selectors.statements({name: data.get(name) or "" for name in (
            "month", "fsp", "status")})
    return page(request, "console/statements.html", {
        "form": form, "statements": paged(request, rows), "problems": problems,
        "compute_form": ComputeForm(auto_id="compute_%s")}, status=400 if problems else 200)


@console_view()
def statement_detail(request: HttpRequest, statement_id: int) -> HttpResponse:
    row = _statement(request, statement_id)
    if isinstance(row, HttpResponse):
        return row
    grouped = selectors.statement_dispatches(row.document)
    dispatch_charts = [{"reference": ref, "lines": lines,
                        "svg": mark_safe(charts.dispatch_chart(ref, lines))}
                       for ref, lines in grouped.items()]
    lines = selectors.statement_lines(row.document)
    return page(request, "console/statement.html", {
        "statement": row, "document": row.document, "charts": dispatch_charts,
        "lines": lines, "line_columns": selectors.LINE_COLUMNS,
        "held": [line for line in lines if line["kind"] == "held"],
        "resolve_form": ResolveForm(),
        "disputes": list(row.disputes.all())})


@console_view(SETTLE)
@require_POST
def compute(request: HttpRequest) -> HttpResponse:
    """Settle a contract's month now (a new or refreshed draft, or a new version)."""
    form = ComputeForm(request.POST, auto_id="compute_%s")
    problems: list[str] = []
    if form.is_valid():
        data = form.cleaned_data
        try:
            contract = dispatch_selectors.find_contract(data["contract"],
                                                        operator=data["operator"] or None)
            row = settlement_services.settle_month(
                contract=contract, month=settlement_services.Month.parse(data["month"]))
        except Problem as exc:
            problems = violations(exc)
        else:
            messages.success(request, f"Statement {row.pk} computed (version {row.version}, "
                                      f"{row.status}).")
            return redirect("console:statement", statement_id=row.pk)
    return page(request, "console/statements.html", {
        "form": StatementFilterForm(), "statements": [], "compute_form": form,
        "problems": problems or ["check the contract and month"]}, status=400)


def _act(request: HttpRequest, statement_id: int, action, done: str) -> HttpResponse:
    row = _statement(request, statement_id)
    if isinstance(row, HttpResponse):
        return row
    try:
        action(row)
    except Problem as exc:
        for message in violations(exc):
            messages.error(request, message)
    else:
        messages.success(request, f"Statement {row.pk} {done}.")
    return redirect("console:statement", statement_id=row.pk)


@console_view(SETTLE)
@require_POST
def issue(request: HttpRequest, statement_id: int) -> HttpResponse:
    return _act(request, statement_id,
                lambda row: settlement_services.issue(statement_id=row.pk), "issued")


@console_view(SETTLE)
@require_POST
def finalise(request: HttpRequest, statement_id: int) -> HttpResponse:
    return _act(request, statement_id,
                lambda row: settlement_services.finalise(statement_id=row.pk), "finalised")


@console_view(SETTLE)
@require_POST
def resolve(request: HttpRequest, statement_id: int) -> HttpResponse:
    form = ResolveForm(request.POST)
    if not form.is_valid():
        messages.error(request, "A resolution needs a text.")
        return redirect("console:statement", statement_id=statement_id)
    return _act(request, statement_id, lambda row: settlement_services.resolve(
        statement_id=row.pk, resolution=form.cleaned_data["resolution"]),
        "disputes resolved")


@console_view(SETTLE)
@require_http_methods(["GET"])
def export(request: HttpRequest, statement_id: int, fmt: str) -> HttpResponse:
    row = _statement(request, statement_id)
    if isinstance(row, HttpResponse):
        return row
    if fmt not in exports.FORMATS:
        return page(request, "console/not_found.html", {"what": f"export format {fmt}"},
                    status=404)
    content_type, render = exports.FORMATS[fmt]
    try:
        content = render(row.document)
    except Problem as exc:
        for message in violations(exc):
            messages.error(request, message)
        return redirect("console:statement", statement_id=row.pk)
    response = HttpResponse(content, content_type=content_type)
    name = exports.file_name(operator=row.contract.operator.code,
                             contract=row.contract.identifier, month=row.month,
                             version=row.version, fmt=fmt)
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
