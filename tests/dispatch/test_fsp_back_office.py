"""The FSP back office: an API client of FSP staff (``manage.py fsp staff-client``) sees
the FSP's sites, dispatches with their acknowledgements, availability and statements
across its registrations with several operators that share its FSP reference; another
FSP's records answer 404. Only the commercial role answers statements."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client as DjangoClient
from django.utils import timezone

from dispatch.models import AvailabilityDeclaration, DispatchUnit, ReportIntake
from tests.fixtures.api import OpenADRClient, new_actor
from tests.fixtures.dispatch import fsp_office_token, hour, timing

pytestmark = pytest.mark.django_db


class Api:
    def __init__(self, token: str):
        self.http = DjangoClient()
        self.headers = {"Authorization": f"Bearer {token}"}

    def get(self, path: str, query: dict | None = None):
        response = self.http.get(path, query or {}, headers=self.headers)
        return response.status_code, json.loads(response.content or b"null")


@pytest.fixture
def acme_twice(gb, issue):
    """acme is registered with ENWL and SPEN-D (FSP reference ACME-LTD), with a dispatch
    at each; zeta (ENWL) has one too."""
    from dispatch import issuing, onboarding, programs, registry, selectors

    onboarding.onboard_fsp(operator="SPEN-D", fsp="acme-sp", units=[
        registry.parse_unit_spec("sp1:300:export")])
    onboarding.create_contract(operator="SPEN-D", identifier="C-SP", fsp="acme-sp",
                             product="DYNAMIC", units=["sp1"])
    for operator, fsp in (("ENWL", "acme"), ("SPEN-D", "acme-sp")):
        call_command("fsp", "set-reference", "--operator", operator, "--fsp", fsp,
                     "--reference", "ACME-LTD", stdout=StringIO())
    issue(reference="E-1")
    issue("zeta/z1", reference="Z-1", timings=[timing(hour(2), 10)])
    start = hour(3)
    issuing.issue_dispatch(unit=selectors.find_unit("acme-sp/sp1"), reference="S-1",
                            service_start=start, service_end=start + timedelta(hours=1),
                            timings=[timing(start, 30)],
                            product=programs.find_product("DYNAMIC"), issued_by="test")


def test_the_back_office_sees_its_fsp_across_operators_and_nothing_else(acme_twice, gb):
    office = Api(fsp_office_token("ENWL", "acme", "read_only"))
    status, sites = office.get("/dispatch/api/v1/fsp/sites")
    assert status == 200
    assert sorted(s["site"] for s in sites) == ["ENWL/acme/north", "SPEN-D/acme-sp/main"]
    status, dispatches = office.get("/dispatch/api/v1/fsp/dispatches")
    assert sorted(d["reference"] for d in dispatches) == ["E-1", "S-1"]
    status, shown = office.get("/dispatch/api/v1/fsp/dispatches/SPEN-D/S-1")
    assert status == 200 and shown["revisions"][0]["acknowledgements"] == []
    assert "acknowledged" in shown["revisions"][0]
    missing_status, missing = office.get("/dispatch/api/v1/fsp/dispatches/ENWL/NOPE")
    status, other = office.get("/dispatch/api/v1/fsp/dispatches/ENWL/Z-1")
    assert status == missing_status == 404
    assert other["detail"].replace("Z-1", "X") == missing["detail"].replace("NOPE", "X")


def test_the_back_office_sees_declared_availability(acme_twice):
    unit = DispatchUnit.objects.get(reference="bat1")
    now = timezone.now().replace(microsecond=0)
    intake = ReportIntake.objects.create(site=unit.site, kind="availability", report_id="a",
                                         client_id="test", received_at=now)
    AvailabilityDeclaration.objects.create(unit=unit, start=now, end=now + timedelta(hours=2),
                                           available_kw=Decimal("120.5"), declared_at=now,
                                           intake=intake)
    office = Api(fsp_office_token("SPEN-D", "acme-sp", "read_only"))  # via the reference
    frm = (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    to = (now + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    status, rows = office.get("/dispatch/api/v1/fsp/availability", {"from": frm, "to": to})
    assert status == 200
    assert [(r["operator"], r["unit"], r["availableKw"]) for r in rows] == [
        ("ENWL", "bat1", "120.5")]
    assert office.get("/dispatch/api/v1/fsp/availability")[0] == 400


def test_only_back_office_clients_use_the_fsp_api_and_it_holds_no_openadr_right(acme_twice,
                                                                                gb):
    operator = Api(new_actor("ops", "bl", "3.1.0").token)
    gateway = Api(gb.acme.token)
    assert operator.get("/dispatch/api/v1/fsp/sites")[0] == 403
    assert gateway.get("/dispatch/api/v1/fsp/sites")[0] == 403
    token = fsp_office_token("ENWL", "acme", "commercial")
    assert OpenADRClient("3.1.0", token).get("/programs").status == 403
    assert Api(token).get("/dispatch/api/v1/dispatches")[0] == 403  # the operator API


def test_statements_of_both_registrations_are_listed_for_the_back_office(acme_twice):
    from dispatch import selectors
    from settlement import services

    month = services.Month.parse(timezone.now().strftime("%Y-%m"))
    for identifier in ("C-DYN", "C-SP", "C-Z"):
        services.issue(statement_id=services.settle_month(
            contract=selectors.find_contract(identifier), month=month).pk)
    office = Api(fsp_office_token("ENWL", "acme", "read_only"))
    status, rows = office.get("/settlement/api/v1/statements")
    assert status == 200
    assert sorted((r["operator"], r["contract"]) for r in rows) == [
        ("ENWL", "C-DYN"), ("SPEN-D", "C-SP")]


# --- the FSP's console pages --------------------------------------------------------------------

def fsp_staff(username: str, operator: str, fsp: str, role: str):
    from tests.fixtures.console import StaffUser

    out = StringIO()
    call_command("console_user", "create-fsp", "--username", username, "--operator",
                 operator, "--fsp", fsp, "--role", role, stdout=out)
    made = json.loads(out.getvalue())
    return StaffUser(username, role, made["password"], made["otpauth_uri"])


def test_fsp_staff_log_in_with_totp_and_see_their_fsp_only(acme_twice, client):
    from dispatch import selectors
    from settlement import services
    from tests.fixtures.console import log_in

    month = services.Month.parse(timezone.now().strftime("%Y-%m"))
    mine = services.issue(statement_id=services.settle_month(
        contract=selectors.find_contract("C-SP"), month=month).pk)
    theirs = services.issue(statement_id=services.settle_month(
        contract=selectors.find_contract("C-Z"), month=month).pk)
    log_in(client, fsp_staff("acme-clerk", "ENWL", "acme", "commercial"))
    page = client.get("/console/fsp")
    assert page.status_code == 200
    text = page.content.decode()
    for shown in ("ENWL/acme/north", "SPEN-D/acme-sp/main", "ENWL/E-1", "SPEN-D/S-1",
                  "SPEN-D/C-SP"):
        assert shown in text, shown
    for hidden in ("Z-1", "C-Z", "zeta"):
        assert hidden not in text, hidden
    assert client.get("/console/").status_code == 403  # not the operator's console
    assert client.post(f"/console/fsp/statements/{theirs.pk}/accept").status_code == 404
    assert client.post(f"/console/fsp/statements/{mine.pk}/accept").status_code == 302
    mine.refresh_from_db()
    assert mine.status == "accepted" and mine.answered_by == "console:acme-clerk"


def test_read_only_fsp_staff_cannot_answer_statements(acme_twice, client):
    from dispatch import selectors
    from settlement import services
    from tests.fixtures.console import log_in

    month = services.Month.parse(timezone.now().strftime("%Y-%m"))
    mine = services.issue(statement_id=services.settle_month(
        contract=selectors.find_contract("C-DYN"), month=month).pk)
    log_in(client, fsp_staff("acme-viewer", "ENWL", "acme", "read_only"))
    assert client.get("/console/fsp").status_code == 200
    assert client.post(f"/console/fsp/statements/{mine.pk}/dispute",
                       {"reason": "no"}).status_code == 403
    mine.refresh_from_db()
    assert mine.status == "issued"


# --- who may answer a statement ---------------------------------------------------------------

def _answer(token: str, statement_id: int, verb: str) -> int:
    body = json.dumps({"reason": "not ours"} if verb == "dispute" else {})
    return DjangoClient().post(f"/settlement/api/v1/statements/{statement_id}/{verb}", body,
                               content_type="application/json",
                               headers={"Authorization": f"Bearer {token}"}).status_code


def _issued(contract: str):
    from dispatch import selectors
    from settlement import services

    month = services.Month.parse(timezone.now().strftime("%Y-%m"))
    return services.issue(statement_id=services.settle_month(
        contract=selectors.find_contract(contract), month=month).pk)


def test_only_the_commercial_back_office_holds_the_scope_that_answers(acme_twice):
    from dispatch import fsp_office
    from tests.fixtures.api import OpenADRClient

    held = {}
    for role in ("read_only", "commercial"):
        issued = fsp_office.create_staff_client(operator="ENWL", fsp="acme", role=role,
                                                name=f"acme-{role}-office")
        held[role] = issued.client.scope_set
        # Asking the token endpoint for the scope does not give it either.
        status, body = OpenADRClient("3.1.0").request_token(
            issued.client.client_id, issued.client_secret, "read_fsp answer_statements")
        assert status == 200, body
        held[f"{role} token"] = set(body["scope"].split())
    assert held["read_only"] == held["read_only token"] == {"read_fsp"}
    assert held["commercial"] == held["commercial token"] == {"read_fsp",
                                                              "answer_statements"}


def test_a_read_only_back_office_token_cannot_answer_and_a_commercial_one_can(acme_twice):
    statement = _issued("C-DYN")
    viewer = fsp_office_token("ENWL", "acme", "read_only", name="acme-viewer-office")
    for verb in ("accept", "dispute"):
        assert _answer(viewer, statement.pk, verb) == 403
    statement.refresh_from_db()
    assert statement.status == "issued"
    commercial = fsp_office_token("ENWL", "acme", "commercial", name="acme-money-office")
    assert _answer(commercial, statement.pk, "dispute") == 200
    statement.refresh_from_db()
    assert statement.status == "disputed"


def test_a_sites_gateway_never_answers_a_statement(acme_twice, gb):
    from settlement import services
    from vtn.auth.services import ClientError, create_client
    from vtn.errors import Forbidden

    statement = _issued("C-DYN")
    for verb in ("accept", "dispute"):
        assert _answer(gb.acme.token, statement.pk, verb) == 403
    with pytest.raises(Forbidden):  # not even through the service
        services.accept(statement_id=statement.pk, client_id=gb.acme.onboarding["client_id"])
    with pytest.raises(Forbidden):
        services.dispute(statement_id=statement.pk, client_id=gb.acme.onboarding["client_id"],
                         reason="no", lines=[])
    statement.refresh_from_db()
    assert statement.status == "issued"
    for role in ("ven", "bl"):  # no OpenADR client may hold the scope
        with pytest.raises(ClientError):
            create_client(name=f"greedy-{role}", role=role,
                          scopes=["read_targets", "answer_statements"])
