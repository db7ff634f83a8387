"""`manage.py sandbox`: database, PKI, demo data and clients, ready for an FSP to try."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from tests.fixtures.api import OpenADRClient
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


def run_sandbox() -> dict:
    out = StringIO()
    call_command("sandbox", "--no-serve", stdout=out, stderr=StringIO())
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
    first = run_sandbox()
    counts = (Program.objects.count(), Event.objects.count(), Ven.objects.count(),
              Resource.objects.count(), Client.objects.count())

    second = run_sandbox()

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
