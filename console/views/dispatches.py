"""Dispatches: list, issue (check, confirm), the timeline page, revise, stop and
emergency stop. Every write is ``dispatch.issuing``; the check before confirming is
that module's check step (``console.services.preview_issue``), which writes nothing."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from console import selectors, services
from console.filters import DispatchFilter
from console.forms import DispatchForm, ReviseForm, StopForm
from console.permissions import DISPATCH, console_view
from console.templatetags.console import utc
from console.views.common import narrow_form, operator_scope, page, paged, staff
from dispatch import issuing
from dispatch import selectors as dispatch_selectors
from dispatch.models import DispatchInstruction
from vtn.errors import Problem


def _find(request: HttpRequest, operator: str,
          reference: str) -> DispatchInstruction | None:
    try:
        return dispatch_selectors.find_dispatch(reference, operator=operator,
                                                scope=operator_scope(request))
    except Problem:
        return None


def _not_found(request: HttpRequest, operator: str, reference: str) -> HttpResponse:
    return page(request, "console/not_found.html",
                {"what": f"dispatch {operator}/{reference}"}, status=404)


def _url(dispatch: DispatchInstruction) -> str:
    return f"/console/dispatches/{dispatch.operator.code}/{dispatch.reference}"


@console_view()
def dispatch_list(request: HttpRequest) -> HttpResponse:
    """Every dispatch, newest first, filtered and paged (invalid filters: none)."""
    filters = DispatchFilter(request.GET, queryset=dispatch_selectors.dispatches(
        scope=operator_scope(request)))
    problems = [] if filters.is_valid() else ["check the filters"]
    rows = [] if problems else filters.qs
    return page(request, "console/dispatches.html", {
        "form": filters.form, "dispatches": paged(request, rows), "problems": problems},
        status=400 if problems else 200)


@console_view(DISPATCH)
@require_http_methods(["GET", "POST"])
def issue(request: HttpRequest) -> HttpResponse:
    """GET: the form. POST ``step=check``: the product's rules are checked and either every
    violation is shown next to the form or a summary with a Confirm button. POST
    ``step=confirm``: issued, exactly once (the reference is fixed at the check)."""
    if request.method == "GET":
        return page(request, "console/dispatch_form.html", {
            "form": narrow_form(DispatchForm(), operator_scope(request))})
    form = narrow_form(DispatchForm(request.POST), operator_scope(request))
    if not form.is_valid():
        return page(request, "console/dispatch_form.html", {"form": form}, status=400)
    data = form.cleaned_data
    reference = data["reference"] or issuing.new_reference()
    arguments = services.issue_arguments(
        unit=data["unit"], product=data["product"], start=data["start"], end=data["end"],
        kw=data["kw"], setpoint_type=data["setpoint_type"], status=data["status"],
        urgency=data["urgency"], reference=reference, staff=staff(request),
        reason=data["reason"], confirm_comms_loss=data["confirm_comms_loss"],
        service_type=data["service_type"] or "real", price=data["price"])
    if request.POST.get("step") == "confirm":
        try:
            dispatch = issuing.issue_dispatch(**arguments)
        except Problem as exc:
            return page(request, "console/dispatch_form.html",
                        {"form": form, "problems": services.violations(exc)}, status=400)
        messages.success(request, f"Dispatch {dispatch.operator.code}/{dispatch.reference} "
                                  "issued (revision 1).")
        return redirect(_url(dispatch))
    problems, document = services.preview_issue(**arguments)
    if problems:
        return page(request, "console/dispatch_form.html",
                    {"form": form, "problems": problems}, status=400)
    confirmed = narrow_form(DispatchForm({**request.POST.dict(), "reference": reference}),
                            operator_scope(request))
    confirmed.is_valid()
    return page(request, "console/dispatch_confirm.html", {
        "form": confirmed, "data": data, "reference": reference, "document": document})


@console_view()
def dispatch_detail(request: HttpRequest, operator: str, reference: str) -> HttpResponse:
    dispatch = _find(request, operator, reference)
    if dispatch is None:
        return _not_found(request, operator, reference)
    return page(request, "console/dispatch.html", {
        "dispatch": dispatch, "timeline": selectors.timeline(dispatch),
        "final": dispatch.status in ("stop", "emergency-stop")})


@console_view()
def dispatch_timeline(request: HttpRequest, operator: str, reference: str) -> HttpResponse:
    dispatch = _find(request, operator, reference)
    if dispatch is None:
        return _not_found(request, operator, reference)
    return page(request, "console/fragments/timeline.html", {
        "dispatch": dispatch, "timeline": selectors.timeline(dispatch)})


def _expected_revision(request: HttpRequest, dispatch: DispatchInstruction) -> int:
    text = request.POST.get("revision", "")
    return int(text) if text.isdigit() else dispatch.revision


@console_view(DISPATCH)
@require_http_methods(["GET", "POST"])
def revise(request: HttpRequest, operator: str, reference: str) -> HttpResponse:
    """Change the volume (from a time on), the end or the status: checked, then
    confirmed, as a new revision."""
    dispatch = _find(request, operator, reference)
    if dispatch is None:
        return _not_found(request, operator, reference)
    context = {"dispatch": dispatch, "earliest": services.earliest_change(dispatch)}
    if request.method == "GET":
        return page(request, "console/revise_form.html", context | {"form": ReviseForm()})
    form = ReviseForm(request.POST)
    if not form.is_valid():
        return page(request, "console/revise_form.html", context | {"form": form},
                    status=400)
    data = form.cleaned_data
    expected = _expected_revision(request, dispatch)
    revision = dispatch.revisions.filter(number=expected).first() or \
        dispatch.revisions.latest("number")
    arguments = services.revise_arguments(
        dispatch=dispatch, revision=revision, kw=data["kw"], effective=data["effective"],
        end=data["end"], status=data["status"] or None, staff=staff(request),
        reason=data["reason"])
    if request.POST.get("step") == "confirm":
        try:
            made = issuing.revise_dispatch(**arguments)
        except Problem as exc:
            return page(request, "console/revise_form.html",
                        context | {"form": form, "problems": services.violations(exc)},
                        status=400)
        messages.success(request, f"Revision {made.number} issued.")
        return redirect(_url(dispatch))
    problems = services.check_revision(**arguments)
    if problems:
        return page(request, "console/revise_form.html",
                    context | {"form": form, "problems": problems}, status=400)
    return page(request, "console/revise_confirm.html", context | {
        "form": form, "data": data, "revision": expected,
        "timings": arguments.get("timings")})


def _stop(request: HttpRequest, operator: str, reference: str, *,
          emergency: bool) -> HttpResponse:
    dispatch = _find(request, operator, reference)
    if dispatch is None:
        return _not_found(request, operator, reference)
    form = StopForm(request.POST or None)
    context = {"dispatch": dispatch, "emergency": emergency, "form": form}
    if request.method == "GET" or not form.is_valid():
        return page(request, "console/stop_confirm.html", context)
    try:
        made = issuing.stop_dispatch(
            dispatch=dispatch, emergency=emergency,
            expected_revision=_expected_revision(request, dispatch),
            issued_by=f"console:{staff(request)}", reason=form.cleaned_data["reason"])
    except Problem as exc:
        return page(request, "console/stop_confirm.html",
                    context | {"problems": services.violations(exc)}, status=409)
    what = "Emergency stop" if emergency else "Stop"
    messages.success(request, f"{what} issued as revision {made.number} at "
                              f"{utc(timezone.now())}.")
    return redirect(_url(dispatch))


@console_view(DISPATCH)
@require_http_methods(["GET", "POST"])
def stop(request: HttpRequest, operator: str, reference: str) -> HttpResponse:
    return _stop(request, operator, reference, emergency=False)


@console_view(DISPATCH)
@require_http_methods(["GET", "POST"])
def emergency_stop(request: HttpRequest, operator: str, reference: str) -> HttpResponse:
    return _stop(request, operator, reference, emergency=True)
