"""Property-based robustness of the dispatch, settlement and conformance sandbox APIs:
whatever a client sends, no server error, and every error is an RFC 7807 problem document.

Schemathesis generates requests from the OpenAPI documents the two APIs publish
(drf-spectacular, generated here from the same URL configurations) and sends them
in-process through the WSGI application, each as the operator (a business-logic client),
as an FSP's VEN or anonymously (Hypothesis draws which). Path parameters are either
generated or the identifiers of seeded objects: a dispatch, a contract, a statement, a
site key, a conformance run. Self-service onboarding is enabled for the sandbox API.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig

from config.wsgi import application
from tests.fixtures import worlds
from tests.fixtures.dispatch import issue_dispatch

pytestmark = [pytest.mark.slow]

PROBLEM_JSON = "application/json"  # problem documents, as the API declares them
CONFIG = {"generation": {"max-examples": 10, "deterministic": True, "database": "none"},
          "phases": {"coverage": {"enabled": False}}}


def load(urlconf: str):
    generated = SchemaGenerator(urlconf=urlconf).get_schema(request=None, public=True)
    raw = json.loads(json.dumps(generated, default=str))
    schema = schemathesis.openapi.from_dict(raw, config=SchemathesisConfig.from_dict(CONFIG))
    schema.config.update(base_url="http://localhost")
    schema.app = application
    return schema


dispatch_schema = load("dispatch.api.schema_urls")
settlement_schema = load("settlement.api.schema_urls")
conformance_schema = load("conformance.schema_urls")

SEEDED: dict[str, str] = {}
TOKENS: dict[str, str] = {}


def _with_real_ids(context, path_parameters: dict):
    real = {name: SEEDED[name] for name in (path_parameters or {}) if name in SEEDED}
    if not real:
        return st.just(path_parameters)
    return st.sampled_from([path_parameters, {**path_parameters, **real}])


def _with_caller(context, case):
    def as_role(role: str):
        headers = dict(case.headers or {})
        headers.pop("Authorization", None)
        if role != "anonymous":
            headers["Authorization"] = f"Bearer {TOKENS[role]}"
        case.headers = headers
        return case

    return st.sampled_from(("bl", "ven", "anonymous")).map(as_role)


for _schema in (dispatch_schema, settlement_schema, conformance_schema):
    _schema.hook("flatmap_path_parameters")(_with_real_ids)
    _schema.hook("flatmap_case")(_with_caller)


def _seed(earlier: dict) -> dict:
    """The objects the generated requests may name, on top of ``gb``: a dispatch, a site
    key, a statement, a conformance run; and a business-logic client's token."""
    from conformance import runner
    from dispatch.models import Contract, FspSite
    from gbflex_profile import jose
    from settlement import services as settlement_services
    from tests.dispatch.test_dispatch_api import Api
    from tests.fixtures.api import new_actor

    dispatch = issue_dispatch(reference="FUZZ-1")
    public = jose.public_jwk(jose.generate_private_key(), "fuzz-key")
    status, _, _ = Api(earlier["gb"].acme.token).post("/site-keys", {
        "jwk": {k: public[k] for k in ("kty", "crv", "x", "kid")}})
    assert status == 201
    month = settlement_services.Month.of(datetime.now(UTC) - timedelta(days=40))
    statement = settlement_services.settle_month(
        contract=Contract.objects.get(identifier="C-DYN"), month=month)
    run = runner.create_run(site=FspSite.objects.get(fsp__identifier="zeta"), scenario="all")
    return {"ids": {"operator": "ENWL", "reference": dispatch.reference, "identifier": "C-DYN",
                    "statement_id": str(statement.pk), "kid": "fuzz-key", "run_id": str(run.pk)},
            "tokens": {"bl": new_actor("operator", "bl", "3.1.0").token,
                       "ven": earlier["gb"].acme.token}}


worlds.shared(__name__, "fuzz_seed", _seed)


@pytest.fixture
def fuzz_seed(request, gb, issue) -> dict:
    """What :func:`_seed` made, built once for the module's consecutive tests
    (``tests/fixtures/worlds.py``)."""
    return worlds.value(request, "fuzz_seed")


@pytest.fixture
def seeded(fuzz_seed, settings, tmp_path):
    from vtn import pki

    pki.init_pki(tmp_path / "pki")
    settings.VTN_PKI_DIR = tmp_path / "pki"
    settings.CONFORMANCE_SELF_SERVICE = True
    settings.CONFORMANCE_OPERATOR = "ENWL"
    SEEDED.update(fuzz_seed["ids"])
    TOKENS.update(fuzz_seed["tokens"])
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)
    SEEDED.clear()
    TOKENS.clear()


def error_is_problem(ctx, response, case) -> bool | None:
    if response.status_code < 400:
        return None
    content_type = (response.headers.get("content-type") or [""])[0].split(";")[0].strip()
    assert content_type == PROBLEM_JSON, f"{response.status_code} served as {content_type!r}"
    body = response.json()
    assert body.get("status") == response.status_code and body.get("title"), body
    return None


FIXTURE_SETTINGS = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


@dispatch_schema.parametrize()
@FIXTURE_SETTINGS
def test_the_dispatch_api_never_fails_on_client_input(case, seeded):
    case.call_and_validate(checks=[not_a_server_error], additional_checks=[error_is_problem])


@settlement_schema.parametrize()
@FIXTURE_SETTINGS
def test_the_settlement_api_never_fails_on_client_input(case, seeded):
    case.call_and_validate(checks=[not_a_server_error], additional_checks=[error_is_problem])


@conformance_schema.parametrize()
@FIXTURE_SETTINGS
def test_the_conformance_api_never_fails_on_client_input(case, seeded):
    case.call_and_validate(checks=[not_a_server_error], additional_checks=[error_is_problem])
