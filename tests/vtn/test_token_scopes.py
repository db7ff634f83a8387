"""Token requests that name scopes (RFC 6749 section 3.3), over real HTTPS, both versions.

Independent OpenADR clients ask for scopes in different ways: a certified 3.0 VEN always
sends ``scope=read_all``, others send every scope they know of, or none. The VTN grants
the requested scopes the client holds (``read_all`` asked by a client without it means
the reads the client holds), says what it granted in ``scope``, and refuses with
``invalid_scope`` only when nothing requested can be granted, naming the scopes the
client holds. Each token is then used: the calls its scopes admit succeed, the others
answer 403.

The same holds with a client secret, with HTTP Basic and with RFC 8705 certificate
authentication (a ``pki onboard`` site, the clients the conformance sandbox hands out).
"""

from __future__ import annotations

import base64

import pytest
import requests

from tests.fixtures.server import VERSIONS, VtnServer
from tests.vtn.test_transport_security import cert_session, onboard

VEN_HOLDS = {"read_targets", "read_ven_objects", "write_reports", "write_subscriptions",
             "write_vens"}
BL_HOLDS = {"read_all", "write_programs", "write_events", "write_reports",
            "write_subscriptions", "write_vens"}
EVERYTHING_A_CLIENT_KNOWS = "read_all write_reports write_subscriptions write_vens read_targets"

# (role, requested scope or None, granted scopes or None for invalid_scope)
CASES = [
    ("ven", "read_all", {"read_targets", "read_ven_objects"}),
    ("ven", EVERYTHING_A_CLIENT_KNOWS, VEN_HOLDS),
    ("ven", None, VEN_HOLDS),
    ("ven", "write_programs write_events", None),
    ("bl", "read_all", {"read_all"}),
    ("bl", EVERYTHING_A_CLIENT_KNOWS, {"read_all", "write_reports", "write_subscriptions",
                                       "write_vens"}),
    ("bl", None, BL_HOLDS),
    ("bl", "read_targets read_ven_objects", None),
]

# Which scopes admit a read or a create of each collection (any one is enough).
READS = {"programs": {"read_all", "read_targets"}, "events": {"read_all", "read_targets"},
         "reports": {"read_all", "read_ven_objects"},
         "subscriptions": {"read_all", "read_ven_objects"},
         "vens": {"read_all", "read_ven_objects"}}
WRITES = {"programs": "write_programs", "events": "write_events", "reports": "write_reports",
          "subscriptions": "write_subscriptions", "vens": "write_vens"}


def ask(server: VtnServer, version: str, client: dict, scope: str | None, *,
        basic: bool = False, cert: tuple[str, str] | None = None) -> requests.Response:
    data = {"grant_type": "client_credentials"}
    headers = {}
    if basic:
        pair = f"{client['client_id']}:{client['client_secret']}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    else:
        data["client_id"] = client["client_id"]
        if client.get("client_secret"):
            data["client_secret"] = client["client_secret"]
    if scope is not None:
        data["scope"] = scope
    return requests.post(server.url(version, "auth/token"), data=data, headers=headers,
                         cert=cert, verify=server.ca_bundle, timeout=30)


def assert_granted(response: requests.Response, granted: set[str] | None,
                   holds: set[str]) -> str | None:
    """The token on success; on refusal checks the invalid_scope problem."""
    if granted is None:
        assert response.status_code == 400, response.text
        body = response.json()
        assert body["error"] == "invalid_scope", body
        assert body["status"] == 400
        for scope in holds:  # the detail names what the client holds
            assert scope in body["error_description"], body
        return None
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body["scope"].split()) == granted, body
    return body["access_token"]


def assert_scopes_apply(session: requests.Session, server: VtnServer, version: str,
                        granted: set[str]) -> None:
    """Reads and creates answer as the granted scopes say: allowed calls are performed
    (a read answers 200; a create gets past the scope check to body validation, 400),
    the others answer 403."""
    for collection, admitting in READS.items():
        response = session.get(server.url(version, collection), timeout=30)
        expected = 200 if granted & admitting else 403
        assert response.status_code == expected, (collection, granted, response.text)
    for collection, scope in WRITES.items():
        response = session.post(server.url(version, collection), json={}, timeout=30)
        expected = 400 if scope in granted else 403
        assert response.status_code == expected, (collection, granted, response.text)
        if expected == 403:
            assert "scope" in response.json()["detail"]


@pytest.fixture(scope="module")
def clients(vtn_server: VtnServer) -> dict[str, dict]:
    """One VEN and one business-logic client, shared: each case asks its own token."""
    return {"ven": vtn_server.create_client("ven", "scopes-ven", ven="scopes-ven"),
            "bl": vtn_server.create_client("bl", "scopes-bl")}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("role", "scope", "granted"), CASES,
                         ids=[f"{r}-{s or 'no-scope'}" for r, s, _ in CASES])
def test_token_for_the_scopes_the_client_holds(vtn_server: VtnServer, clients: dict,
                                               version: str, role: str, scope: str | None,
                                               granted: set[str] | None) -> None:
    client = clients[role]
    holds = VEN_HOLDS if role == "ven" else BL_HOLDS
    token = assert_granted(ask(vtn_server, version, client, scope), granted, holds)
    if token is None:
        return
    with vtn_server.session(token) as session:
        assert_scopes_apply(session, vtn_server, version, granted)


def test_a_granted_create_is_performed_and_a_refused_one_changes_nothing(
        vtn_server: VtnServer) -> None:
    bl = vtn_server.create_client("bl", "scopes-writer")
    name = vtn_server.unique("scoped-program")
    body = {"programName": name}
    narrow = assert_granted(ask(vtn_server, "3.1.0", bl, "read_all"), {"read_all"}, BL_HOLDS)
    wide = assert_granted(ask(vtn_server, "3.1.0", bl, "read_all write_programs"),
                          {"read_all", "write_programs"}, BL_HOLDS)
    with vtn_server.session(narrow) as session:
        assert session.post(vtn_server.url("3.1.0", "programs"), json=body,
                            timeout=30).status_code == 403
        listed = session.get(vtn_server.url("3.1.0", "programs"), timeout=30).json()
        assert name not in {program["programName"] for program in listed}
    with vtn_server.session(wide) as session:
        created = session.post(vtn_server.url("3.1.0", "programs"), json=body, timeout=30)
        assert created.status_code == 201, created.text
        assert session.delete(vtn_server.url("3.1.0", f"programs/{created.json()['id']}"),
                              timeout=30).status_code == 200


@pytest.mark.parametrize("version", VERSIONS)
def test_http_basic_credentials_with_read_all(vtn_server: VtnServer, version: str) -> None:
    client = vtn_server.create_client("ven", "scopes-basic", ven="scopes-basic-ven")
    token = assert_granted(ask(vtn_server, version, client, "read_all", basic=True),
                           {"read_targets", "read_ven_objects"}, VEN_HOLDS)
    with vtn_server.session(token) as session:
        assert_scopes_apply(session, vtn_server, version,
                            {"read_targets", "read_ven_objects"})


@pytest.mark.parametrize("version", VERSIONS)
def test_certificate_authenticated_site_asking_read_all(vtn_server: VtnServer,
                                                        version: str) -> None:
    """A ``pki onboard`` site authenticates with its certificate alone (RFC 8705)."""
    site = onboard(vtn_server, site="scopes-site")
    client = {"client_id": site["client_id"]}
    response = ask(vtn_server, version, client, "read_all", cert=site.cert)
    token = assert_granted(response, {"read_targets", "read_ven_objects"}, VEN_HOLDS)
    assert "cnf" in response.json()  # still bound to the certificate
    with cert_session(vtn_server, token, site) as session:
        assert_scopes_apply(session, vtn_server, version,
                            {"read_targets", "read_ven_objects"})
    # With its secret as well, asking everything it knows: all it holds.
    client["client_secret"] = site["client_secret"]
    token = assert_granted(ask(vtn_server, version, client, EVERYTHING_A_CLIENT_KNOWS,
                               cert=site.cert), VEN_HOLDS, VEN_HOLDS)
    # Only scopes it lacks: refused, and no token issued.
    assert_granted(ask(vtn_server, version, client, "write_programs", cert=site.cert),
                   None, VEN_HOLDS)


@pytest.mark.parametrize("version", VERSIONS)
def test_json_token_request_is_invalid_request(vtn_server: VtnServer, version: str) -> None:
    client = vtn_server.create_client("ven", "scopes-json", ven="scopes-json-ven")
    response = requests.post(vtn_server.url(version, "auth/token"), json={
        "grant_type": "client_credentials", "client_id": client["client_id"],
        "client_secret": client["client_secret"]}, verify=vtn_server.ca_bundle, timeout=30)
    assert response.status_code == 400, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["error"] == "invalid_request"
    assert "application/x-www-form-urlencoded" in response.json()["error_description"]
