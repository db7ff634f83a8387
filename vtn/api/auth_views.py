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

from vtn.api.problems import PROBLEM_CONTENT_TYPE, problem_body, too_many_requests
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
    certificate and the response says so in ``cnf``. Tokens issued are limited per
    client (``VTN_TOKEN_RATE``). Failed authentications are counted per (address, client)
    for a known client_id and per address for an unknown one
    (:func:`vtn.auth.ratelimit.register_failure`): over budget the *failing* requests get
    429 with Retry-After, while correct credentials still get their token. Every issued
    and refused token is written to the security log (over budget: once per window).
    """

    http_method_names = ["post", "options"]

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        address = mtls.client_address(request)
        client_id = _claimed_client_id(request)
        if "\x00" in client_id:  # names no client; PostgreSQL cannot store or query it
            return _problem(401, "invalid_client", _DESCRIPTIONS["invalid_client"])
        limited = _over_token_rate(address, client_id)
        if limited is not None:
            return limited
        response = self._token_response(request, *args, **kwargs)
        if response.status_code == 200:
            ratelimit.hit(ratelimit.TOKEN, "client", client_id)
        return _record_outcome(request, response, address, client_id)

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


def _over_token_rate(address: str, client_id: str) -> JsonResponse | None:
    """429 if ``client_id`` has had its budget of tokens (``VTN_TOKEN_RATE``) in this
    window. Only tokens actually issued count, so naming a client in failed requests
    cannot use up its budget."""
    wait = ratelimit.retry_after(ratelimit.TOKEN, "client", client_id)
    if wait is None:
        return None
    if ratelimit.first_time_in_window(ratelimit.TOKEN, "client", client_id):
        security_log.record(security_log.Kind.RATE_LIMITED, client_id=client_id,
                            remote_addr=address,
                            detail="token endpoint: token budget exceeded by this client")
    return too_many_requests(
        f"Too many token requests from this client; retry after {wait} s.", wait,
        error="too_many_requests")


def _record_outcome(request: HttpRequest, response: HttpResponse, address: str,
                    client_id: str) -> HttpResponse:
    """Log the outcome; a failed client authentication over its failure budget becomes 429
    (logged once per window)."""
    peer = getattr(request, "client_cert", None)
    thumbprint = peer.sha256 if peer else ""
    if response.status_code == 200:
        security_log.record(security_log.Kind.TOKEN_ISSUED, client_id=client_id,
                            remote_addr=address, cert_sha256=thumbprint,
                            detail="certificate-bound" if b'"cnf"' in response.content
                            else "bearer")
        return response
    try:
        error = json.loads(response.content).get("error", "")
    except ValueError:
        error = ""
    kind = security_log.Kind.TOKEN_REFUSED
    detail = error or f"HTTP {response.status_code}"
    if error == "invalid_client":
        client = (Client.objects.filter(application__client_id=client_id).first()
                  if client_id else None)
        # A known client_id counts per (address, client); one that names nothing, per
        # address. Neither touches the real client's requests, which succeed.
        verdict = ratelimit.register_failure(
            address, f"client:{client_id}" if client is not None else None)
        if verdict.wait is not None:
            subject = "for this client" if client is not None else "from this address"
            if verdict.first:
                security_log.record(security_log.Kind.RATE_LIMITED, client_id=client_id,
                                    remote_addr=address, cert_sha256=thumbprint,
                                    detail=f"token endpoint: auth failures over budget "
                                           f"({verdict.dimension})")
            return too_many_requests(
                f"Too many failed authentications {subject} from this address; retry "
                f"after {verdict.wait} s.", verdict.wait, error="too_many_requests")
        problem = certificate_problem(client, thumbprint or None)
        if problem is not None:
            kind, detail = security_log.Kind.CERT_MISMATCH, problem
    security_log.record(kind, client_id=client_id, remote_addr=address,
                        cert_sha256=thumbprint, detail=detail)
    return response


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
