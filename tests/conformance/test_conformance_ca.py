"""The conformance sandbox's getting-started page says where an outside FSP gets the CA
certificate its first command (``curl --cacert ca.pem``) needs, and serves it."""

from __future__ import annotations

import pytest
from cryptography import x509

from vtn import pki

pytestmark = pytest.mark.django_db


def test_the_page_links_the_ca_and_shows_its_fingerprint(client, settings, tmp_path):
    pki.init_pki(tmp_path / "pki")
    settings.VTN_PKI_DIR = tmp_path / "pki"
    page = client.get("/conformance/").content.decode()
    expected = pki.fingerprint(pki.load_certificate(tmp_path / "pki" / "ca.pem"))
    assert f'<code id="ca-fingerprint">{expected}</code>' in page
    assert "/conformance/ca.pem" in page and "openssl x509" in page
    download = client.get("/conformance/ca.pem")
    assert download.status_code == 200
    body = b"".join(download.streaming_content)
    assert pki.fingerprint(x509.load_pem_x509_certificate(body)) == expected
    assert b"PRIVATE" not in body


def test_without_a_ca_of_its_own_the_page_says_so(client, settings, tmp_path):
    settings.VTN_PKI_DIR = tmp_path / "none"
    page = client.get("/conformance/").content.decode()
    assert "does not publish a CA certificate" in page
    missing = client.get("/conformance/ca.pem")
    assert missing.status_code == 404
    assert missing["Content-Type"] == "application/json"


def test_the_sandbox_trusts_the_public_cas_and_its_own_on_callbacks(tmp_path):
    import ssl

    from requests.utils import DEFAULT_CA_BUNDLE_PATH

    from conformance.fleet import webhook_trust

    pki.init_pki(tmp_path / "pki")
    bundle = webhook_trust(tmp_path / "pki")

    def certificates(path) -> int:
        context = ssl.create_default_context(cafile=str(path))
        return len(context.get_ca_certs())

    # Every public CA a production VTN trusts, plus the sandbox's own, and nothing else.
    assert certificates(bundle) == certificates(DEFAULT_CA_BUNDLE_PATH) + 1
    assert bundle.read_text().endswith((tmp_path / "pki" / "ca.pem").read_text())
