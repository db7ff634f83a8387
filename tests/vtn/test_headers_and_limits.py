"""Headers and limits against a real VTN over HTTPS with its production defaults: a
Content-Security-Policy on HTML pages that the API docs still render under (checked in
chromium), 413 problems for bodies over the limit, and subscription callbacks refused
when they point into the VTN's own network."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import requests

from tests.fixtures.requirements import starts_processes
from tests.fixtures.server import E2EDatabase, VtnServer

LIMIT = 1024 * 1024
DOCS = ["/openadr3/3.1.0/docs", "/openadr3/3.0.1/docs", "/dispatch/api/v1/docs",
        "/settlement/api/v1/docs"]


@pytest.fixture(scope="module")
@starts_processes
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VtnServer]:
    workdir = tmp_path_factory.mktemp("headers_vtn")
    database = E2EDatabase(os.environ.get("DATABASE_URL", ""), workdir)
    vtn = VtnServer(workdir, database)
    for name in ("VTN_CALLBACK_ALLOW_PRIVATE", "VTN_MAX_BODY_BYTES", "VTN_CSP",
                 "VTN_CSP_DOCS"):
        vtn.env.pop(name, None)  # the defaults, as in production
    try:
        vtn.prepare()
        vtn.start()
        yield vtn
    finally:
        vtn.stop(graceful=False)
        database.drop()


@pytest.fixture(scope="module")
def bl(server: VtnServer) -> requests.Session:
    session = server.session(server.token(server.create_client("bl", "headers-bl")))
    yield session
    session.close()


@pytest.fixture(scope="module")
def program_id(server: VtnServer, bl) -> str:
    response = bl.post(server.url("3.1.0", "programs"), json={"programName": "headers"},
                       timeout=30)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def subscription(callback: str, program: str) -> dict:
    return {"clientName": "headers", "programID": program, "objectOperations": [
        {"objects": ["EVENT"], "operations": ["CREATE"], "callbackUrl": callback}]}


@pytest.mark.parametrize("callback", [
    "https://127.0.0.1/cb", "http://127.0.0.1:8080/cb", "https://localhost/cb",
    "https://app.localhost/cb", "https://[::1]/cb", "https://169.254.169.254/latest",
    "https://10.1.2.3/cb", "https://192.168.0.10/cb", "https://172.16.5.5/cb",
    "https://100.64.0.1/cb", "https://2130706433/cb", "https://0x7f.1/cb",
    "https://[::ffff:127.0.0.1]/cb", "https://[fe80::1]/cb", "https://0.0.0.0/cb",
    "https://[fd00::1]/cb", "ftp://ven.example.com/cb",
])
@pytest.mark.parametrize("version", ["3.1.0", "3.0.1"])
def test_callbacks_into_the_vtns_network_are_refused(server: VtnServer, bl, program_id,
                                                     version: str, callback: str) -> None:
    before = bl.get(server.url(version, "subscriptions"), timeout=30).json()
    response = bl.post(server.url(version, "subscriptions"),
                       json=subscription(callback, program_id), timeout=30)
    assert response.status_code == 400, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert "callbackUrl" in response.json()["detail"]
    assert bl.get(server.url(version, "subscriptions"), timeout=30).json() == before


def test_a_public_callback_is_accepted(server: VtnServer, bl, program_id) -> None:
    response = bl.post(server.url("3.1.0", "subscriptions"),
                       json=subscription("https://ven.example.com/openadr/callback",
                                         program_id),
                       timeout=30)
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("path", ["/openadr3/3.1.0/programs", "/openadr3/3.0.1/reports",
                                  "/dispatch/api/v1/dispatches",
                                  "/conformance/api/v1/onboard"])
def test_bodies_over_the_limit_get_413_with_a_problem(server: VtnServer, bl,
                                                      path: str) -> None:
    body = b'{"programName": "' + b"x" * LIMIT + b'"}'
    response = bl.post(f"{server.base_url}{path}", data=body,
                       headers={"Content-Type": "application/json"}, timeout=60)
    assert response.status_code == 413, response.text[:500]
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["status"] == 413 and str(LIMIT) in response.json()["detail"]
    # Just under the limit is read and judged on its content (not 413).
    small = bl.post(f"{server.base_url}{path}", data=b'{"programName": 1}',
                    headers={"Content-Type": "application/json"}, timeout=60)
    assert small.status_code != 413


@pytest.mark.parametrize("path", ["/console/login", "/admin/login/", *DOCS])
def test_html_pages_carry_the_content_security_policy(server: VtnServer, path: str) -> None:
    response = requests.get(f"{server.base_url}{path}", verify=server.ca_bundle, timeout=30)
    assert response.status_code == 200
    policy = response.headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["script-src"] == "'self'" and directives["default-src"] == "'self'"
    assert directives["style-src"] == ("'self' 'unsafe-inline'" if path in DOCS else "'self'")
    assert "frame-ancestors 'none'" in policy
    assert "<script>" not in response.text  # no inline script to be blocked


def test_the_docs_render_in_chromium_without_csp_violations(server: VtnServer,
                                                             browser) -> None:
    page = browser.new_page()
    messages: list[str] = []
    page.on("console", lambda message: messages.append(message.text))
    page.add_init_script("""
        window.__violations = [];
        document.addEventListener("securitypolicyviolation", (e) =>
            window.__violations.push(e.violatedDirective + " " + e.blockedURI));
    """)
    for path in DOCS:
        page.goto(f"{server.base_url}{path}")
        page.wait_for_selector(".swagger-ui .info .title")
        page.wait_for_selector(".opblock-summary")  # operations listed: the schema loaded
        violations = page.evaluate("window.__violations")
        assert violations == [], (path, violations)
    assert not [m for m in messages if "Content Security Policy" in m], messages
    # The console's login page also renders and runs its own script under the policy.
    page.goto(f"{server.base_url}/console/login")
    page.wait_for_selector("form button[type=submit]")
    assert page.evaluate("window.__violations") == []
