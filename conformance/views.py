"""The conformance sandbox over HTTP: the getting-started page, the profile text,
self-service onboarding, and runs (start, list, fetch as JSON or HTML). Thin: parse,
call a service, render."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import get_object_or_404, render
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from conformance import onboarding, runner
from conformance import report as reports
from conformance.models import ConformanceRun
from conformance.scenarios import ORDER, SCENARIOS, Options
from conformance.schema import OnboardSerializer, RunRequestSerializer
from dispatch import site_keys
from vtn import pki
from vtn.auth import mtls
from vtn.auth.authentication import caller_of
from vtn.auth.permissions import HasOperationScope
from vtn.auth.scopes import READ_ALL, READ_VEN_OBJECTS, WRITE_REPORTS
from vtn.errors import BadRequest, NotFound

DOCS = Path(settings.BASE_DIR) / "docs"
DOCUMENTS = {"profile": "gb-dispatch-profile.md", "guide": "conformance.md",
             "agent": "fsp-agent.md"}
# Options a caller may set on a run (seconds), with their bounds.
OPTION_BOUNDS = {"pollIntervalSeconds": ("poll_interval_s", 0.2, 600),
                 "marginSeconds": ("margin_s", 0, 600),
                 "deadlineSeconds": ("deadline_s", 1, 1800),
                 "heartbeatIntervalSeconds": ("heartbeat_interval_s", 1, 3600),
                 "faultSeconds": ("fault_s", 1, 1800),
                 "retryAfterSeconds": ("retry_after_s", 1, 120),
                 "meteringDeadlineSeconds": ("metering_deadline_s", 5, 3600),
                 "pushWithinSeconds": ("push_within_s", 0.5, 60),
                 "programRefreshSeconds": ("program_refresh_s", 1, 3600),
                 "changedHeartbeatSeconds": ("changed_heartbeat_s", 10, 3600)}

CSP = "Content-Security-Policy"
# The report is a standalone page with inline styles and no scripts at all; it sets its
# own policy, which the site-wide middleware (webserver/security_headers.py) leaves alone.
INLINE_STYLE_ONLY_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
                         "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def _ca_path() -> Path:
    """The operator CA's certificate (public): it signs the VTN's TLS certificate and the
    sites' client certificates (``pki init``)."""
    return Path(getattr(settings, "VTN_PKI_DIR", Path(settings.VAR_DIR) / "pki")) / pki.CA_CERT


def _ca_fingerprint() -> str | None:
    try:
        return pki.fingerprint(pki.load_certificate(_ca_path()))
    except (OSError, ValueError, IndexError):
        return None


def getting_started(request):
    base = request.build_absolute_uri("/").rstrip("/")
    response = render(request, "conformance/getting_started.html", {
        "base": base, "scenarios": [SCENARIOS[name] for name in ORDER],
        "self_service": getattr(settings, "CONFORMANCE_SELF_SERVICE", False),
        "operator": getattr(settings, "CONFORMANCE_OPERATOR", "ENWL"),
        "ca_fingerprint": _ca_fingerprint()})
    response[CSP] = INLINE_STYLE_ONLY_CSP  # inline styles, no scripts
    return response


def ca_certificate(request):
    """The operator CA's certificate as PEM, for ``--cacert`` (404 when this VTN has no
    PKI of its own, e.g. behind a publicly trusted certificate)."""
    if _ca_fingerprint() is None:
        raise Http404("no CA certificate")
    response = FileResponse(_ca_path().open("rb"), content_type="application/x-pem-file",
                            as_attachment=True, filename="ca.pem")
    return response


def document(request, name: str):
    """A profile document as plain text (markdown source)."""
    if name not in DOCUMENTS or not (DOCS / DOCUMENTS[name]).is_file():
        raise Http404("no such document")
    return FileResponse((DOCS / DOCUMENTS[name]).open("rb"),
                        content_type="text/markdown; charset=utf-8")


def run_html(request, run_id):
    """The HTML report; the random run id is the capability (no login)."""
    run = get_object_or_404(ConformanceRun, pk=run_id)
    if not run.done or not run.report:
        return HttpResponse(f"Run {run.pk} is {run.status}"
                            + (f" ({run.current_scenario})" if run.current_scenario else "")
                            + "; reload this page when it has finished.\n",
                            content_type="text/plain; charset=utf-8", status=202,
                            headers={"Refresh": "10"})
    return HttpResponse(reports.to_html(run.report), content_type="text/html; charset=utf-8",
                        headers={CSP: INLINE_STYLE_ONLY_CSP})  # inline styles, no scripts


class Onboard(APIView):
    authentication_classes: list = []
    permission_classes: list = []

    @extend_schema(request=OnboardSerializer, responses={201: dict})
    def post(self, request: Request) -> Response:
        if not getattr(settings, "CONFORMANCE_SELF_SERVICE", False):
            raise NotFound("self-service onboarding is not enabled on this VTN")
        body = request.data if isinstance(request.data, dict) else {}
        result = onboarding.onboard(fsp=str(body.get("fsp", "")), units=body.get("units"),
                                    remote_addr=mtls.client_address(request))
        return Response(result, status=status.HTTP_201_CREATED)


class IsVenOrOperator(BasePermission):
    message = "Runs are started by the VEN client of an onboarded FSP site."

    def has_permission(self, request, view) -> bool:
        caller = request.user  # a Caller, or AnonymousUser without a token
        if request.method == "POST":
            return bool(getattr(caller, "is_ven", False))
        return bool(getattr(caller, "is_ven", False) or getattr(caller, "is_bl", False))


def _run_summary(run: ConformanceRun, request) -> dict:
    return {"id": str(run.pk), "status": run.status, "scenarios": run.scenarios,
            "operator": run.site.fsp.operator.code, "fsp": run.site.fsp.identifier,
            "site": run.site.name, "created": run.created.isoformat(),
            "started": run.started.isoformat() if run.started else None,
            "finished": run.finished.isoformat() if run.finished else None,
            "currentScenario": run.current_scenario or None, "awaiting": run.awaiting,
            "error": run.error or None,
            "html": request.build_absolute_uri(f"/conformance/runs/{run.pk}.html")}


def _visible_runs(request):
    runs = ConformanceRun.objects.select_related("site__fsp__operator")
    caller = caller_of(request)
    if caller.is_ven:
        runs = runs.filter(site__ven__client_id=caller.client_id)
    return runs


class SandboxApiView(APIView):
    """A request to the sandbox's own API is not a sign of life of the site's VEN
    (dispatch.middleware.LastSeenMiddleware), so polling a run's status during the
    comms-loss outage does not keep the site online."""

    def finalize_response(self, request, response, *args, **kwargs):
        request._request.user = AnonymousUser()
        return super().finalize_response(request, response, *args, **kwargs)


class Runs(SandboxApiView):
    permission_classes = [HasOperationScope, IsVenOrOperator]
    scopes = {"GET": frozenset({READ_VEN_OBJECTS, READ_ALL}),
              "POST": frozenset({WRITE_REPORTS})}

    def get(self, request: Request) -> Response:
        return Response([_run_summary(r, request) for r in _visible_runs(request)[:50]])

    @extend_schema(request=RunRequestSerializer, responses={202: dict})
    def post(self, request: Request) -> Response:
        body = request.data if isinstance(request.data, dict) else {}
        site = site_keys.site_of_client(caller_of(request).client_id)
        options: dict[str, Any] = {}
        for name, (field, low, high) in OPTION_BOUNDS.items():
            if body.get(name) is None:
                continue
            try:
                value = float(body[name])
            except (TypeError, ValueError) as exc:
                raise BadRequest(f"{name} must be a number") from exc
            if not low <= value <= high:
                raise BadRequest(f"{name} must be within [{low}, {high}]")
            options[field] = int(value) if field == "retry_after_s" else value
        try:
            run = runner.create_run(site=site, scenario=str(body.get("scenario", "all")),
                                    options=Options(**options),
                                    requested_by=caller_of(request).client_id)
        except runner.RunError as exc:
            raise BadRequest(str(exc)) from exc
        runner.start_in_background(run)
        return Response(_run_summary(run, request), status=status.HTTP_202_ACCEPTED,
                        headers={"Location": f"/conformance/api/v1/runs/{run.pk}"})


class RunDetail(SandboxApiView):
    permission_classes = [HasOperationScope, IsVenOrOperator]
    scopes = {"GET": frozenset({READ_VEN_OBJECTS, READ_ALL})}

    def get(self, request: Request, run_id) -> Response:
        run = _visible_runs(request).filter(pk=run_id).first()
        if run is None:
            raise NotFound(f"no run {run_id}")
        body = _run_summary(run, request)
        body["report"] = run.report
        return Response(body)
