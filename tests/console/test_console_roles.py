"""Operator console roles: one table of who may open which action page and post which
action; refused requests answer 403 and change nothing."""

from __future__ import annotations

import pytest

from console import permissions
from dispatch.models import Contract, DispatchInstruction
from settlement.models import Statement

ROLES = ("viewer", "dispatcher", "settlement officer", "administrator")
MAY = {  # action -> roles allowed
    "dispatch": {"dispatcher", "administrator"},
    "settle": {"settlement officer", "administrator"},
    "registry": {"administrator"},
}


def test_the_rules_live_in_one_table():
    for action, roles in MAY.items():
        assert permissions.ACTIONS[action] == roles
    assert permissions.ACTIONS["view"] == set(ROLES)


@pytest.mark.parametrize("role", ROLES)
def test_every_role_reads_every_page(console, gb, role):
    client = console(role)
    for url in ("/console/", "/console/registry", "/console/dispatches", "/console/statements",
                "/console/audit", "/console/fragments/dashboard"):
        assert client.get(url).status_code == 200, url


@pytest.mark.parametrize("role", ROLES)
def test_each_role_gets_exactly_its_action_pages(console, gb, role):
    client = console(role)
    pages = {"dispatch": "/console/dispatches/new", "registry": "/console/registry/onboard"}
    for action, url in pages.items():
        expected = 200 if role in MAY[action] else 403
        assert client.get(url).status_code == expected, (role, url)


@pytest.mark.parametrize("role", ROLES)
def test_refused_posts_change_nothing(console, gb, role):
    client = console(role)
    contracts = Contract.objects.count()
    computed = client.post("/console/statements/compute", {
        "contract": "C-DYN", "operator": "ENWL", "month": "2026-09"})
    assert computed.status_code == (302 if role in MAY["settle"] else 403)
    assert Statement.objects.count() == (1 if role in MAY["settle"] else 0)
    recorded = client.post("/console/registry/contracts/new", {
        "operator": "ENWL", "identifier": f"C-{role[:3]}", "fsp": "acme",
        "product": "RESTORE", "units": "hp1", "availability_price": "0",
        "utilisation_price": "0"})
    assert recorded.status_code == (302 if role in MAY["registry"] else 403)
    assert Contract.objects.count() == contracts + (role in MAY["registry"])
    if role not in MAY["dispatch"]:
        assert client.post("/console/dispatches/new", {"step": "confirm"}).status_code == 403
    assert not DispatchInstruction.objects.exists()


def _verified_session(user):
    """A test client logged in as ``user`` with a TOTP device django-otp has verified."""
    from django.test import Client
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    http = Client()
    http.force_login(user)
    device = TOTPDevice.objects.create(user=user, name=user.username, confirmed=True)
    session = http.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return http


def test_the_django_admin_admits_superusers_only(db):
    """The admin is unscoped (every operator's records), so an operator's staff member
    is refused even with the staff flag and every model permission."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    users = get_user_model().objects
    staff = users.create_user("enwl-staff", "staff@example.org", "pw", is_staff=True)
    staff.user_permissions.set(Permission.objects.all())
    refused = _verified_session(staff)
    for url in ("/admin/", "/admin/vtn/subscription/", "/admin/dispatch/operatorgrant/"):
        response = refused.get(url, secure=True)
        assert response.status_code == 302 and "/admin/login/" in response["Location"], url
    root = _verified_session(users.create_superuser("root", "root@example.org", "pw"))
    for url in ("/admin/", "/admin/vtn/subscription/", "/admin/dispatch/operatorgrant/"):
        assert root.get(url, secure=True).status_code == 200, url
