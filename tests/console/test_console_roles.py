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
