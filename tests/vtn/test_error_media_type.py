"""Problem documents in the media type the documents declare, or the one Accept prefers.

Both OpenADR documents declare error bodies as ``application/json`` (``problem``
schema): that is the default. A client preferring ``application/problem+json`` (by
quality values) gets that instead; the body is the same. The dispatch and settlement
APIs do the same, and their OpenAPI descriptions say so.
"""

from __future__ import annotations

import pytest
import requests
import yaml

from tests.fixtures.server import VERSIONS, VtnServer
from vtn.api.problems import problem_media_type

JSON = "application/json"
PROBLEM = "application/problem+json"

NEGOTIATION = [
    ("", JSON),
    ("*/*", JSON),
    ("application/json", JSON),
    ("application/problem+json", PROBLEM),
    ("application/problem+json, application/json;q=0.5", PROBLEM),
    ("application/json;q=0.9, application/problem+json", PROBLEM),
    ("application/json, application/problem+json", JSON),  # a tie keeps the default
    ("application/problem+json;q=0.5, application/json", JSON),
    ("application/problem+json;q=0.8, */*;q=0.1", PROBLEM),
    ("application/*;q=0.2, application/problem+json;q=0.3", PROBLEM),
    ("application/problem+json;q=0, */*", JSON),
    ("APPLICATION/PROBLEM+JSON", PROBLEM),
    ("application/problem+json;q=bogus, application/json;q=0.1", JSON),
    ("text/html", JSON),  # nothing acceptable: still JSON, never a 406
]


@pytest.mark.parametrize(("accept", "expected"), NEGOTIATION)
def test_negotiation_by_quality_values(accept: str, expected: str) -> None:
    assert problem_media_type(accept) == expected


def problem(response: requests.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"], body
    assert "Accept" in response.headers.get("Vary", "")
    return response.headers["Content-Type"].split(";")[0]


def errors_of_every_kind(server: VtnServer, version: str, token: str) -> list[tuple]:
    """(method, url, kwargs, status) of errors from each layer that produces them."""
    return [
        ("GET", server.url(version, "programs"), {}, 401),  # authentication
        ("GET", server.url(version, "programs/missing0id"), {"token": True}, 404),  # DRF
        ("POST", server.url(version, "programs"), {"token": True, "data": "{"}, 400),
        ("GET", server.url(version, "programs"), {"token": True,
                                                  "params": {"skip": "-1"}}, 400),
        ("POST", server.url(version, "auth/token"), {"json": {"a": 1}}, 400),  # token view
        ("POST", server.url(version, "auth/token"),
         {"data": {"grant_type": "client_credentials", "client_id": "nobody",
                   "client_secret": "x"}}, 401),
        ("GET", f"{server.base_url}/openadr3/{version}/no-such-path", {}, 404),  # Django
    ]


@pytest.mark.parametrize("version", VERSIONS)
def test_openadr_errors_default_to_application_json(vtn_server: VtnServer,
                                                    version: str) -> None:
    token = vtn_server.token(vtn_server.create_client("bl", "media-bl"))
    for method, url, kwargs, status in errors_of_every_kind(vtn_server, version, token):
        for accept, expected in ((None, JSON), ("*/*", JSON), (PROBLEM, PROBLEM),
                                 (f"{JSON};q=0.5, {PROBLEM}", PROBLEM),
                                 (f"{PROBLEM};q=0.5, {JSON}", JSON)):
            headers = {"Accept": accept} if accept else {}
            if kwargs.get("token"):
                headers["Authorization"] = f"Bearer {token}"
            response = requests.request(
                method, url, headers=headers, data=kwargs.get("data"),
                json=kwargs.get("json"), params=kwargs.get("params"),
                verify=vtn_server.ca_bundle, timeout=30)
            assert problem(response, status) == expected, (method, url, accept)
    # Successful answers are unaffected.
    ok = requests.get(vtn_server.url(version, "programs"), verify=vtn_server.ca_bundle,
                      headers={"Authorization": f"Bearer {token}", "Accept": PROBLEM},
                      timeout=30)
    assert ok.status_code == 200 and ok.headers["Content-Type"].startswith(JSON)


@pytest.mark.parametrize("api", ["dispatch", "settlement"])
def test_operator_api_errors_negotiate_too(vtn_server: VtnServer, api: str) -> None:
    path = {"dispatch": "/dispatch/api/v1/dispatches",
            "settlement": "/settlement/api/v1/statements"}[api]
    url = vtn_server.base_url + path
    plain = requests.get(url, verify=vtn_server.ca_bundle, timeout=30)
    assert problem(plain, 401) == JSON
    preferred = requests.get(url, headers={"Accept": PROBLEM}, verify=vtn_server.ca_bundle,
                             timeout=30)
    assert problem(preferred, 401) == PROBLEM
    token = vtn_server.token(vtn_server.create_client("bl", f"media-{api}"))
    bad = requests.get(url, params={"limit": "many"} if api == "dispatch" else {
        "month": "never"}, headers={"Authorization": f"Bearer {token}"},
        verify=vtn_server.ca_bundle, timeout=30)
    assert problem(bad, 400) == JSON


@pytest.mark.parametrize("api", ["dispatch", "settlement"])
def test_operator_api_descriptions_state_both_media_types(vtn_server: VtnServer,
                                                          api: str) -> None:
    response = requests.get(f"{vtn_server.base_url}/{api}/api/v1/openapi.yaml",
                            verify=vtn_server.ca_bundle, timeout=30)
    assert response.status_code == 200, response.text
    description = yaml.safe_load(response.content)
    assert description["components"]["schemas"]["Problem"]["required"] == [
        "type", "title", "status", "detail"]
    operations = [operation for item in description["paths"].values()
                  for operation in item.values() if isinstance(operation, dict)]
    assert operations
    for operation in operations:
        for status in ("400", "401", "403", "429", "500"):
            content = operation["responses"][status]["content"]
            assert set(content) == {JSON, PROBLEM}, (operation.get("operationId"), status)
            assert content[JSON]["schema"] == {"$ref": "#/components/schemas/Problem"}


@pytest.mark.parametrize("version", VERSIONS)
def test_requests_the_server_cannot_parse_get_a_400_problem(vtn_server: VtnServer,
                                                            version: str) -> None:
    """A request line or a header field over the server's limits is refused before the
    application sees it: a 400 problem in application/json naming the natural status,
    never an HTML page nor a status the documents do not list (414, 431)."""
    token = vtn_server.token(vtn_server.create_client("bl", "media-too-long"))
    long_query = {"targets": [f"group-{n:04d}-{'x' * 40}" for n in range(120)]}
    too_long = requests.get(vtn_server.url(version, "programs"), params=long_query,
                            headers={"Authorization": f"Bearer {token}", "Accept": PROBLEM},
                            verify=vtn_server.ca_bundle, timeout=30)
    huge_header = requests.get(vtn_server.url(version, "programs"),
                               headers={"Authorization": f"Bearer {token}",
                                        "X-Padding": "p" * 10_000},
                               verify=vtn_server.ca_bundle, timeout=30)
    for response, title in ((too_long, "URI Too Long"),
                            (huge_header, "Request Header Fields Too Large")):
        assert response.status_code == 400, response.text
        assert response.headers["Content-Type"] == JSON
        body = response.json()
        assert body["status"] == 400 and body["title"] == "Bad Request", body
        assert body["detail"].startswith(f"{title}: "), body
    # The same targets fit when fewer are asked at once.
    fits = requests.get(vtn_server.url(version, "programs"),
                        params={"targets": long_query["targets"][:20]},
                        headers={"Authorization": f"Bearer {token}"},
                        verify=vtn_server.ca_bundle, timeout=30)
    assert fits.status_code == 200, fits.text
