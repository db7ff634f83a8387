"""The landing page at ``/``: server-rendered, no external assets, links to every part."""

from __future__ import annotations

import re

import pytest

from console.views.landing import APIS

pytestmark = pytest.mark.django_db

LINKS = ["/console/", "/conformance/", "/openadr3/3.1.0/docs", "/openadr3/3.0.1/docs",
         "/dispatch/api/v1/docs", "/settlement/api/v1/docs", "/.well-known/jwks.json"]


def test_the_root_is_an_html_page_linking_everything(client):
    response = client.get("/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    hrefs = set(re.findall(r'href="([^"]+)"', html))
    assert set(LINKS) <= hrefs
    assert "/static/console/console.css" in hrefs
    # Nothing from elsewhere: every link and asset is this server's own.
    assert not [h for h in hrefs | set(re.findall(r'src="([^"]+)"', html))
                if h.startswith(("http:", "https:", "//"))]


@pytest.mark.parametrize("path", [p for _, p, _ in APIS] + ["/conformance/"])
def test_every_linked_page_answers(client, path):
    assert client.get(path).status_code == 200


def test_the_console_link_leads_to_the_login(client):
    response = client.get("/console/")
    assert response.status_code == 302 and "/console/login" in response["Location"]


def test_the_sandbox_says_how_to_log_in_and_elsewhere_how_to_make_a_user(client, settings):
    settings.CONFORMANCE_SELF_SERVICE = False
    assert b"console_user create" in client.get("/").content
    settings.CONFORMANCE_SELF_SERVICE = True
    assert b"otpauth_uri" in client.get("/").content


@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_writing_to_the_root_is_refused_without_a_server_error(client, method):
    assert getattr(client, method)("/").status_code == 405
