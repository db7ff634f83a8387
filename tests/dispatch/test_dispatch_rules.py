"""Product rules: what a dispatch revision may say, per product parameters."""

from __future__ import annotations

from datetime import timedelta

import pytest

from dispatch import onboarding, programs, selectors
from dispatch.models import DispatchInstruction
from tests.fixtures.dispatch import hour, timing
from vtn.errors import BadRequest, Conflict

pytestmark = pytest.mark.django_db


def refused(issue, match: str, **overrides) -> None:
    with pytest.raises(BadRequest) as caught:
        issue(**overrides)
    assert any(match in error for error in caught.value.errors), caught.value.errors


def test_a_valid_dynamic_dispatch_is_accepted(issue):
    dispatch = issue()
    assert dispatch.revision == 1 and dispatch.status == "run"
    assert dispatch.urgency == "emergency"  # the product's default urgency


def test_notice_period_is_enforced(issue):
    soon = hour(0) + timedelta(minutes=5)
    refused(issue, "needs 15 minute(s) notice", service_start=soon,
            timings=[timing(soon, 10)])


def test_sustain_needs_a_week_of_notice(gb, issue):
    onboarding.create_contract(operator="ENWL", identifier="C-S", fsp="acme", product="SUSTAIN",
                               units=["hp1"])
    product = programs.find_product("sustain")
    refused(issue, "needs 7 day(s) notice", unit="acme/hp1", product=product)
    start = hour(24 * 8)
    assert issue(unit="acme/hp1", product=product, service_start=start,
                 timings=[timing(start, 50)]).revision == 1


def test_setpoints_must_be_within_capacity(issue):
    start = hour(2)
    refused(issue, "exceeds the unit's capacity of 1500", timings=[timing(start, 1501)])


def test_setpoints_must_be_within_the_service_window(issue):
    start = hour(2)
    refused(issue, "setpointTime must be within", timings=[timing(start + timedelta(hours=3), 1)])
    refused(issue, "strictly increasing", timings=[timing(start + timedelta(hours=1), 1),
                                                   timing(start, 1)])
    refused(issue, "serviceEnd must be after", service_end=start)


def test_absolute_or_delta_per_product(gb, issue):
    mw = programs.find_product("MW_DISPATCH")
    start = hour(2)
    refused(issue, "takes absolute setpoints, not delta", product=mw,
            timings=[timing(start, 0, "delta")])
    dispatch = issue(product=mw, timings=[timing(start, 0, "absolute")])
    assert dispatch.contract.identifier == "C-MW"


def test_fixed_quantity_products_keep_one_volume(gb, issue):
    mw = programs.find_product("MW_DISPATCH")
    start = hour(2)
    refused(issue, "fixed quantity", product=mw,
            timings=[timing(start, 0, "absolute"), timing(start + timedelta(hours=1), 5,
                                                          "absolute")])


def test_mw_dispatch_contracts_take_export_units_over_1_mw_only(gb):
    from dispatch import registry

    onboarding.onboard_fsp(operator="ENWL", fsp="acme", site="south", units=[
        registry.parse_unit_spec("pv1:1000:export"), registry.parse_unit_spec("wt1:1000.5:export")])
    for unit, why in (("hp1", "applies to export units; this unit is import"),
                      ("pv1", "applies to units over 1000 kW; this unit has 1000 kW")):
        with pytest.raises(BadRequest) as caught:
            onboarding.create_contract(operator="ENWL", identifier=f"C-MW-{unit}", fsp="acme",
                                     product="MW_DISPATCH", units=[unit])
        assert caught.value.errors == [f"{unit}: product MW_DISPATCH {why}"]
    made = onboarding.create_contract(operator="ENWL", identifier="C-MW-wt1", fsp="acme",
                                    product="MW_DISPATCH", units=["wt1"])
    assert made.units.get().reference == "wt1"
    # Other products take the small units.
    onboarding.create_contract(operator="ENWL", identifier="C-DYN-pv1", fsp="acme",
                             product="DYNAMIC", units=["pv1"])


def test_a_dispatch_to_a_unit_of_1_mw_or_less_under_mw_dispatch_is_refused():
    from datetime import UTC, datetime
    from decimal import Decimal

    from dispatch import rules

    start = datetime(2026, 1, 5, 17, tzinfo=UTC)
    draft = rules.DispatchDraft(
        network_operator="ENWL", reference="R", revision=1, status="run", urgency="warning",
        fsp="acme", unit="pv1", contract="C", product="MW_DISPATCH",
        instruction_time=start - timedelta(hours=1), service_start=start,
        service_end=start + timedelta(hours=1),
        timings=(rules.Timing(setpoint_time=start, volume=Decimal(0),
                              setpoint_type="absolute"),))
    product = rules.ProductRules(code="MW_DISPATCH", notice_period=timedelta(0),
                                 quantity="fixed", setpoint_types=("absolute",),
                                 directions=("export",))
    small = rules.UnitLimits(capacity_kw=Decimal(900), capacity_kvar=None, direction="export")
    large = rules.UnitLimits(capacity_kw=Decimal(1500), capacity_kvar=None, direction="export")
    assert rules.check(draft, product, small) == [
        "product MW_DISPATCH applies to units over 1000 kW; this unit has 900 kW"]
    assert rules.check(draft, product, large) == []


def test_mw_dispatch_without_setpoints_turns_to_zero(gb, issue):
    dispatch = issue(product=programs.find_product("MW_DISPATCH"), timings=[])
    timings = dispatch.revisions.get().document["serviceTimings"]
    assert [(t["volume"], t["setpointType"]) for t in timings] == [(0, "ABSOLUTE")]


def test_reactive_power_needs_reactive_capacity(issue):
    start = hour(2)
    refused(issue, "no reactive capacity", timings=[timing(start, 5, service_type="reactive")])


def test_contract_service_windows_bound_the_dispatch(gb, issue):
    start = hour(2)
    onboarding.create_contract(operator="ENWL", identifier="C-W", fsp="zeta", product="SECURE",
                               units=["z1"], service_windows=[(hour(48), hour(50))])
    product = programs.find_product("SECURE")
    refused(issue, "outside the contract's service windows", unit="z1", product=product,
            service_start=hour(30), timings=[timing(hour(30), 5)])
    assert issue(unit="z1", product=product, service_start=hour(48),
                 timings=[timing(hour(48), 5)]).revision == 1
    # The DYNAMIC contract C-Z has no windows and stays usable at any time.
    assert issue(unit="z1", timings=[timing(start, 5)]).contract.identifier == "C-Z"


def test_a_unit_without_a_contract_for_the_product_is_refused(gb, issue):
    with pytest.raises(BadRequest, match="no contract covers"):
        issue(unit="z1", product=programs.find_product("RESTORE"))


def test_references_are_unique_per_operator(issue):
    issue(reference="NO-1")
    with pytest.raises(Conflict):
        issue(reference="NO-1")
    assert DispatchInstruction.objects.count() == 1


def test_a_new_dispatch_cannot_start_stopped(issue):
    with pytest.raises(BadRequest, match="pre-notify or run"):
        issue(status="stop")


def test_find_unit_reports_unknown_units(gb):
    with pytest.raises(Exception, match="no dispatch unit"):
        selectors.find_unit("acme/nothing")
