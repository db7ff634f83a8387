"""`manage.py sandbox`: database, PKI, demo data and clients, ready for an FSP to try."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from dispatch import programs
from dispatch.models import Acknowledgement, DispatchInstruction, MeterReading, ReportIntake
from settlement.models import Statement
from settlement.services import Month
from tests.fixtures.api import OpenADRClient
from tests.fixtures.console import totp_code
from tests.spec import VERSION_31, VERSION_301
from vtn.demo import load_demo_data
from vtn.models import Client, Event, Program, Resource, Ven

pytestmark = pytest.mark.django_db

GB_PRODUCTS = {"GB-SUSTAIN", "GB-SECURE", "GB-DYNAMIC", "GB-RESTORE", "GB-MW-DISPATCH"}


@pytest.fixture
def sandbox_var(settings, tmp_path, fast_hashing):
    """A private var directory, so the development PKI lands in tmp_path."""
    settings.VAR_DIR = tmp_path
    return tmp_path


def run_sandbox(*, fleet: bool = False) -> dict:
    """The sandbox's JSON; without the demo fleet (and its history) unless asked."""
    out = StringIO()
    call_command("sandbox", "--no-serve", *([] if fleet else ["--no-fleet"]), stdout=out,
                 stderr=StringIO())
    return json.loads(out.getvalue())


def token(version: str, client: dict) -> str:
    status, body = OpenADRClient(version).request_token(client["client_id"],
                                                        client["client_secret"])
    assert status == 200, body
    return body["access_token"]


def test_prints_credentials_of_both_clients_and_where_to_connect(sandbox_var):
    report = run_sandbox()

    for role in ("bl", "ven"):
        client = report["clients"][role]
        assert client["client_id"] and client["client_secret"]
        assert client["role"] == role
    assert report["clients"]["ven"]["ven_name"] == "demo-fsp-north"
    assert report["vtn"] == {"3.1.0": "https://127.0.0.1:8443/openadr3/3.1.0",
                             "3.0.1": "https://127.0.0.1:8443/openadr3/3.0.1"}
    assert report["docs"]["3.1.0"].endswith("/openadr3/3.1.0/docs")
    assert report["ca_certificate"] == str(sandbox_var / "pki" / "ca.pem")
    for name in ("ca.pem", "server.pem", "server.key"):
        assert (sandbox_var / "pki" / name).is_file()


def test_loads_a_program_for_each_gb_product(sandbox_var):
    run_sandbox()

    assert GB_PRODUCTS <= set(Program.objects.values_list("program_name", flat=True))


def test_running_twice_is_idempotent_and_both_clients_stay_usable(sandbox_var):
    first = run_sandbox(fleet=True)
    counts = (Program.objects.count(), Event.objects.count(), Ven.objects.count(),
              Resource.objects.count(), Client.objects.count())

    second = run_sandbox(fleet=True)

    assert (Program.objects.count(), Event.objects.count(), Ven.objects.count(),
            Resource.objects.count(), Client.objects.count()) == counts
    for role in ("bl", "ven"):
        assert second["clients"][role]["client_id"] == first["clients"][role]["client_id"]
        assert token(VERSION_31, second["clients"][role])


def test_rerun_rotates_secrets_so_the_old_ones_stop_working(sandbox_var):
    first = run_sandbox()
    run_sandbox()

    old = first["clients"]["bl"]
    status, _ = OpenADRClient(VERSION_31).request_token(old["client_id"], old["client_secret"])
    assert status == 401


@pytest.mark.parametrize("version", [VERSION_31, VERSION_301])
def test_demo_ven_sees_its_upcoming_events_and_not_other_fsps(sandbox_var, version):
    report = run_sandbox()
    ven = OpenADRClient(version, token(version, report["clients"]["ven"]))

    status, events = ven.get("/events", {"active": "true"} if version == VERSION_31 else None)

    assert status == 200
    names = {event["eventName"] for event in events}
    assert {"demo-sustain-north-peak", "demo-dynamic-north-window"} <= names
    assert "demo-secure-south-evening" not in names


def test_demo_ven_owns_its_resources(sandbox_var):
    report = run_sandbox()
    ven_client = report["clients"]["ven"]
    ven = OpenADRClient(VERSION_31, token(VERSION_31, ven_client))

    status, resources = ven.get("/resources", validate=False)

    assert status == 200
    assert {r["resourceName"] for r in resources} == {"battery-01", "ev-depot-01"}
    assert {r["clientID"] for r in resources} == {ven_client["client_id"]}


def test_demo_events_that_have_ended_move_forward_on_the_next_run():
    load_demo_data(now=timezone.now() - timedelta(days=30))
    count = Event.objects.count()

    summary = load_demo_data()

    assert "event demo-sustain-north-peak" in summary.refreshed
    assert Event.objects.count() == count
    now = timezone.now()
    assert all(event.starts_at > now for event in Event.objects.all())


def test_prints_a_console_user_who_can_log_in_with_password_and_totp(sandbox_var, client):
    report = run_sandbox()
    user = report["console"]

    assert user["url"] == "https://127.0.0.1:8443/console/"
    assert user["role"] == "administrator"
    assert user["otpauth_uri"].startswith("otpauth://totp/sandbox-admin?secret=")
    assert f"secret={user['totp_secret']}&" in user["otpauth_uri"]
    response = client.post("/console/login", {"username": user["username"],
                                               "password": user["password"],
                                               "otp_token": totp_code(user["otpauth_uri"])})
    assert response.status_code == 302 and response["Location"] == "/console/"
    assert client.get("/console/statements").status_code == 200


def test_a_rerun_rotates_the_console_password_but_keeps_the_enrolled_authenticator(
        sandbox_var, client):
    first = run_sandbox()["console"]
    second = run_sandbox()["console"]

    assert second["password"] != first["password"]
    assert second["totp_secret"] == first["totp_secret"]
    code = totp_code(second["otpauth_uri"])
    refused = client.post("/console/login", {"username": "sandbox-admin",
                                              "password": first["password"],
                                              "otp_token": code})
    assert refused.status_code == 401
    accepted = client.post("/console/login", {"username": "sandbox-admin",
                                               "password": second["password"],
                                               "otp_token": code})
    assert accepted.status_code == 302


def _history_counts() -> tuple:
    # (Meter readings are left out: a half hour may end between two runs.)
    return (DispatchInstruction.objects.count(), Acknowledgement.objects.count(),
            Statement.objects.count())


# Transactional: the VTN records readings from a report after its transaction commits.
# (Not serialized rollback: restoring it collides with the content types an earlier
# transactional test's flush re-creates on PostgreSQL.) A flush also removes the products
# the data migration loaded, so load them as a fresh database has them.
@pytest.mark.django_db(transaction=True)
def test_the_fleet_gets_a_month_of_history_settled_through_the_real_services(sandbox_var):
    programs.load_products()
    now = timezone.now()
    report = run_sandbox(fleet=True)
    history = report["history"]

    previous = Month.of(now).previous()
    first, after = previous.bounds()
    # Every half hour of the previous month, for both units of the north site.
    month_readings = MeterReading.objects.filter(start__gte=first, start__lt=after,
                                                 unit__site__name="north")
    assert month_readings.count() == 2 * (after - first) // timedelta(minutes=30)
    assert not ReportIntake.objects.filter(rejected__gt=0).exists()
    # Past dispatches, each acknowledged RECEIVED and ACTIONED by the site's signed reports.
    assert len(history["dispatches"]) >= 4
    for reference in history["dispatches"]:
        dispatch = DispatchInstruction.objects.get(reference=reference)
        assert dispatch.service_end < now
        acks = Acknowledgement.objects.filter(revision__instruction=dispatch)
        assert sorted((a.stage, a.outcome, a.result) for a in acks) == [
            ("actioned", "accepted", "ACCEPTED"), ("received", "accepted", "")]
        assert all(a.received_at < dispatch.service_start for a in acks)
    # The previous month's statement: settled (final), with money and no held lines.
    statement = Statement.objects.get(pk=history["statement"]["id"])
    assert (statement.status, statement.month) == (Statement.Status.FINAL, previous.first_day)
    totals = statement.document["totals"]
    assert Decimal(totals["netGbp"]) > 0 and totals["heldLines"] == 0
    assert Decimal(totals["deliveredMwh"]) > 0
    # Accepted as the FSP's commercial back office, never as the site's gateway.
    answerer = Client.objects.get(application__client_id=statement.answered_by)
    assert answerer.role == "fsp" and answerer.fsp_grant.role == "commercial"
    assert "answer_statements" in answerer.scope_set
    assert not Ven.objects.filter(client_id=statement.answered_by).exists()

    counts = _history_counts()
    again = run_sandbox(fleet=True)["history"]

    assert again["dispatches"] == [] and again["statement"] == history["statement"]
    assert _history_counts() == counts


def test_the_sandbox_operator_client_is_a_client_of_the_whole_vtn(sandbox_var):
    from dispatch import scope
    from dispatch.registry import NETWORK_OPERATORS

    report = run_sandbox()
    granted = scope.operators_of_client(report["clients"]["bl"]["client_id"])
    assert granted == frozenset(NETWORK_OPERATORS)
    api = OpenADRClient(VERSION_31, token(VERSION_31, report["clients"]["bl"]))
    status, programs = api.get("/programs", {"limit": 50}, validate=False)
    assert status == 200
    assert GB_PRODUCTS <= {p["programName"] for p in programs}  # the unowned demo programs
