"""The token endpoint (`<base>/auth/token`) and token discovery (`<base>/auth/server`)."""

from __future__ import annotations

import json

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_exempt
from oauth2_provider.views import TokenView
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from vtn.api.problems import PROBLEM_CONTENT_TYPE, problem_body

FORM = "application/x-www-form-urlencoded"


@method_decorator(csrf_exempt, name="dispatch")
class ClientCredentialsTokenView(TokenView):
    """OAuth2 client-credentials token endpoint.

    Accepts the documents' form-encoded ``clientCredentialRequest`` (credentials in the
    body, or HTTP Basic) and answers a ``clientCredentialResponse``. Errors carry the
    RFC 6749 ``error`` code inside an RFC 7807 problem document.
    """

    http_method_names = ["post", "options"]

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        content_type = request.content_type or ""
        if content_type != FORM:
            return _problem(415, "invalid_request",
                            f"The token request must be sent as {FORM}.")
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


_DESCRIPTIONS = {
    "invalid_client": "Client authentication failed: unknown client, wrong secret or revoked.",
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
