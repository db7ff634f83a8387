"""The token endpoint (`<base>/auth/token`) and token discovery (`<base>/auth/server`)."""

from __future__ import annotations

import base64
import binascii
import json
from urllib.parse import unquote_plus

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_exempt
from oauth2_provider.views import TokenView
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from vtn.api.problems import PROBLEM_CONTENT_TYPE, problem_body
from vtn.auth import mtls, ratelimit, security_log
from vtn.auth.validator import certificate_problem
from vtn.models import Client

FORM = "application/x-www-form-urlencoded"


@method_decorator(csrf_exempt, name="dispatch")
class ClientCredentialsTokenView(TokenView):
    """OAuth2 client-credentials token endpoint.

    Accepts the documents' form-encoded ``clientCredentialRequest`` (credentials in the
    body, or HTTP Basic) and answers a ``clientCredentialResponse``. Errors carry the
    RFC 6749 ``error`` code inside an RFC 7807 problem document.

    A ``require_mtls`` client must present a bound TLS client certificate, with or
    without its secret (RFC 8705 ``tls_client_auth``); its token is bound to that
    certificate and the response says so in ``cnf``. Requests are limited per client_id
    and per source address (``VTN_TOKEN_RATE``), and so are failed authentications
    (``VTN_AUTH_FAILURE_RATE``): over either budget the answer is 429 with Retry-After.
    Every issued and refused token is written to the security log.
    """

    http_method_names = ["post", "options"]

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        address = mtls.client_address(request)
        client_id = _claimed_client_id(request)
        if "\x00" in client_id:  # names no client; PostgreSQL cannot store or query it
            return _problem(401, "invalid_client", _DESCRIPTIONS["invalid_client"])
        limited = _over_budget(address, client_id)
        if limited is not None:
            return limited
        ratelimit.hit(ratelimit.TOKEN, "addr", address)
        ratelimit.hit(ratelimit.TOKEN, "client", client_id)
        response = self._token_response(request, *args, **kwargs)
        _record_outcome(request, response, address, client_id)
        return response

    def _token_response(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        content_type = request.content_type or ""
        if content_type != FORM:
            # RFC 6749 section 5.2 and both documents: 400 invalid_request, not 415.
            return _problem(400, "invalid_request",
                            f"The token request must be sent as {FORM}, not "
                            f"{content_type or 'without a Content-Type'}.")
        if request.POST.get("grant_type") is None:
            return _problem(400, "invalid_request", "grant_type is required.")
        if request.POST.get("grant_type") != "client_credentials":
            return _problem(400, "unsupported_grant_type",
                            "Only the client_credentials grant is supported.")
        response = super().post(request, *args, **kwargs)
        response["Cache-Control"] = "no-store"
        if response.status_code == 200:
            return response
        try:
            oauth_error = json.loads(response.content)
        except ValueError:
            oauth_error = {"error": "invalid_request"}
        status_code = 401 if oauth_error.get("error") == "invalid_client" else response.status_code
        return _problem(status_code, oauth_error.get("error", "invalid_request"),
                        oauth_error.get("error_description") or _DESCRIPTIONS.get(
                            oauth_error.get("error"), "The token request was refused."))

    def http_method_not_allowed(self, request, *args, **kwargs) -> HttpResponse:
        response = _problem(405, "invalid_request", "Use POST to request a token.")
        response["Allow"] = "POST"
        return response


def _claimed_client_id(request: HttpRequest) -> str:
    """The client_id the request claims (HTTP Basic or body), unverified: for rate limits
    and the security log only."""
    scheme, _, value = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() == "basic" and value:
        try:
            return unquote_plus(base64.b64decode(value.strip()).decode().partition(":")[0])
        except (binascii.Error, UnicodeDecodeError):
            return ""
    if request.content_type == FORM:
        return request.POST.get("client_id", "")
    return ""


def _over_budget(address: str, client_id: str) -> JsonResponse | None:
    """429 if the address or client is over its failure or request budget."""
    for budget, message in ((ratelimit.FAILURE, "Too many failed authentications"),
                            (ratelimit.TOKEN, "Too many token requests")):
        exceeded = ratelimit.first_exceeded(budget, addr=address, client=client_id)
        if exceeded is None:
            continue
        dimension, wait = exceeded
        subject = "this address" if dimension == "addr" else "this client"
        if ratelimit.first_time_in_window(budget, dimension,
                                          address if dimension == "addr" else client_id):
            security_log.record(security_log.Kind.RATE_LIMITED, client_id=client_id,
                                remote_addr=address,
                                detail=f"token endpoint: {budget} budget exceeded by "
                                       f"{subject}")
        return mtls.too_many_requests(f"{message} from {subject}; retry after {wait} s.",
                                      wait, error="too_many_requests")
    return None


def _record_outcome(request: HttpRequest, response: HttpResponse, address: str,
                    client_id: str) -> None:
    peer = getattr(request, "client_cert", None)
    thumbprint = peer.sha256 if peer else ""
    if response.status_code == 200:
        security_log.record(security_log.Kind.TOKEN_ISSUED, client_id=client_id,
                            remote_addr=address, cert_sha256=thumbprint,
                            detail="certificate-bound" if b'"cnf"' in response.content
                            else "bearer")
        return
    try:
        error = json.loads(response.content).get("error", "")
    except ValueError:
        error = ""
    kind = security_log.Kind.TOKEN_REFUSED
    detail = error or f"HTTP {response.status_code}"
    if error == "invalid_client":
        ratelimit.hit(ratelimit.FAILURE, "addr", address)
        ratelimit.hit(ratelimit.FAILURE, "client", client_id)
        client = Client.objects.filter(application__client_id=client_id).first()
        problem = certificate_problem(client, thumbprint or None)
        if problem is not None:
            kind, detail = security_log.Kind.CERT_MISMATCH, problem
    security_log.record(kind, client_id=client_id, remote_addr=address,
                        cert_sha256=thumbprint, detail=detail)


_DESCRIPTIONS = {
    "invalid_client": "Client authentication failed: unknown client, wrong secret or "
                      "certificate, or revoked.",
    "invalid_scope": "The requested scope is not granted to this client.",
    "unauthorized_client": "This client may not use the requested grant type.",
}


def _problem(status_code: int, error: str, description: str) -> JsonResponse:
    body = problem_body(status_code, description) | {"error": error,
                                                     "error_description": description}
    response = JsonResponse(body, status=status_code, content_type=PROBLEM_CONTENT_TYPE)
    response["Cache-Control"] = "no-store"
    if status_code == 401:
        response["WWW-Authenticate"] = 'Basic realm="openadr"'
    return response


class AuthServerView(APIView):
    """Token endpoint discovery (3.1): where to trade client credentials for a token."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    def get(self, request: Request) -> Response:
        return Response({"tokenURL": request.build_absolute_uri("token")})
