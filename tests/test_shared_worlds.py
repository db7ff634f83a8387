"""The harness's shared worlds (``tests/fixtures/worlds.py``): built once for a module's
consecutive tests, yet each test starts from the world's rows alone and its own copy."""

from __future__ import annotations

import pytest

from tests.fixtures import worlds

# One worker runs them in order, so the turns share one world.
pytestmark = pytest.mark.xdist_group("shared-worlds")
_seen_worlds: list[int] = []


@pytest.mark.django_db
@pytest.mark.parametrize("turn", [1, 2, 3])
def test_each_test_starts_from_the_world_alone(gb, turn):
    from dispatch import onboarding, registry
    from dispatch.models import Contract, Fsp

    assert set(Fsp.objects.values_list("identifier", flat=True)) == {"acme", "zeta"}
    assert set(Contract.objects.values_list("identifier", flat=True)) == {
        "C-DYN", "C-MW", "C-Z"}
    assert "written" not in gb.acme.onboarding  # an earlier turn's change to its copy
    assert worlds._open is not None
    _seen_worlds.append(id(worlds._open))
    assert len(set(_seen_worlds)) == 1  # built once for the turns run so far

    onboarding.onboard_fsp(operator="ENWL", fsp=f"written-{turn}", units=[
        registry.parse_unit_spec("w1:10")])
    gb.acme.onboarding["written"] = turn
    Contract.objects.filter(identifier="C-MW").delete()
    assert Fsp.objects.count() == 3


@pytest.mark.django_db(transaction=True)
def test_a_transactional_test_builds_the_world_inside_itself(gb):
    from dispatch.models import Fsp

    assert worlds._open is None
    assert set(Fsp.objects.values_list("identifier", flat=True)) == {"acme", "zeta"}
