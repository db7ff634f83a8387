"""Settlement that honours the instruction: reactive power against its setpoints, the
instructed price per unit, urgency (advisory without penalty, an emergency premium) and
the deficiency in the totals. Pure rules first, then statements from stored dispatches
and readings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from dispatch.models import Contract, DispatchUnit, MeterReading, ReportIntake
from settlement import exports, services
from settlement.calc import instruction, reactive
from settlement.calc.delivery import DeliveryStatus
from settlement.calc.money import PerformanceScaling, UtilisationTerms
from settlement.models import SettlementTerms
from tests.fixtures.dispatch import timing

D = Decimal
MONTH = services.Month(2026, 9)
T0 = datetime(2026, 9, 16, 17, 0, tzinfo=UTC)


# -- the rules, pure ----------------------------------------------------------------------

CONTRACT = UtilisationTerms(price_gbp=D(300), penalty_rate_gbp=D(50),
                            scaling=PerformanceScaling())


def test_an_instructed_price_is_the_utilisation_price_of_its_period():
    terms = instruction.utilisation_terms_for(
        CONTRACT, urgency="warning", instructed_price_gbp_per_mwh=instruction.per_mwh(D("0.42")))
    assert (terms.price_gbp, terms.penalty_rate_gbp) == (D(420), D(50))


def test_without_an_instructed_price_the_contracts_applies():
    assert instruction.utilisation_terms_for(CONTRACT, urgency="warning") == CONTRACT


def test_advisory_is_voluntary_no_penalty_and_no_performance_cut():
    terms = instruction.utilisation_terms_for(CONTRACT, urgency="advisory")
    assert (terms.price_gbp, terms.penalty_rate_gbp, terms.scaling) == (D(300), D(0), None)


def test_the_emergency_premium_is_a_percentage_of_the_payment_for_emergencies_only():
    assert instruction.emergency_premium_gbp(D("12.00"), urgency="emergency",
                                             premium_percent=D("12.5")) == D("1.50")
    assert instruction.emergency_premium_gbp(D("12.00"), urgency="warning",
                                             premium_percent=D("12.5")) == D("0.00")
    assert instruction.emergency_premium_gbp(D("12.00"), urgency="emergency",
                                             premium_percent=None) == D("0.00")


def test_an_unknown_urgency_is_refused():
    with pytest.raises(ValueError):
        instruction.utilisation_terms_for(CONTRACT, urgency="someday")


def test_reactive_readings_turn_into_the_units_direction():
    assert reactive.in_direction({T0: D(-30), T0 + timedelta(minutes=30): None}, "export") == {
        T0: D(30), T0 + timedelta(minutes=30): None}
    assert reactive.in_direction({T0: D(-30)}, "import") == {T0: D(-30)}


def test_an_absolute_reactive_setpoint_is_a_level_measured_from_zero():
    result, base = reactive.delivered_reactive(
        start_utc=T0, end_utc=T0 + timedelta(hours=1), setpoint_type="absolute",
        volume_kvar=D(100), metered_kvar={T0: D(-80), T0 + timedelta(minutes=30): D(-120)},
        direction="export")
    assert base is None and result.status is DeliveryStatus.ASSESSED
    first, second = result.periods
    assert (first.ordered_kw, first.delivered_kw, first.deficiency_kw) == (D(100), D(80), D(20))
    assert (second.delivered_kw, second.over_delivery_kw, second.deficiency_kw) == (
        D(100), D(20), D(0))


def test_a_delta_reactive_setpoint_is_measured_from_the_periods_before():
    before = {T0 - timedelta(minutes=30 * k): D(10) for k in range(1, 5)}
    result, base = reactive.delivered_reactive(
        start_utc=T0, end_utc=T0 + timedelta(minutes=30), setpoint_type="delta",
        volume_kvar=D(50), metered_kvar=before | {T0: D(40)}, direction="import")
    assert base is not None and base.computed
    (period,) = result.periods
    assert (period.baseline_kw, period.delivered_kw, period.deficiency_kw) == (
        D(10), D(30), D(20))


def test_missing_reactive_readings_hold_never_zero():
    result, _ = reactive.delivered_reactive(
        start_utc=T0, end_utc=T0 + timedelta(hours=1), setpoint_type="absolute",
        volume_kvar=D(100), metered_kvar={T0: D(-80)}, direction="export")
    assert result.status is DeliveryStatus.HELD_MISSING_DATA
    assert result.missing_periods_utc == (T0 + timedelta(minutes=30),)
    held, _ = reactive.delivered_reactive(
        start_utc=T0, end_utc=T0 + timedelta(minutes=30), setpoint_type="delta",
        volume_kvar=D(100), metered_kvar={T0: D(-80)}, direction="export")
    assert held.status is DeliveryStatus.HELD_MISSING_DATA
    assert "reactive baseline" in held.reason


def test_a_delta_reactive_setpoint_takes_the_baseline_it_is_given():
    # 10, 10, 20, 20 kVAr before: the default (mean of 4) says 15, meter-before-2 says 20.
    before = {T0 - timedelta(minutes=30 * k): D(20 if k <= 2 else 10) for k in range(1, 5)}
    metered = before | {T0: D(80)}
    default, _ = reactive.delivered_reactive(
        start_utc=T0, end_utc=T0 + timedelta(minutes=30), setpoint_type="delta",
        volume_kvar=D(100), metered_kvar=metered, direction="import")
    chosen, base = reactive.delivered_reactive(
        start_utc=T0, end_utc=T0 + timedelta(minutes=30), setpoint_type="delta",
        volume_kvar=D(100), metered_kvar=metered, direction="import",
        delta_baseline=reactive.meter_before(2))
    assert (default.periods[0].baseline_kw, default.periods[0].delivered_kw) == (D(15), D(65))
    assert (chosen.periods[0].baseline_kw, chosen.periods[0].delivered_kw) == (D(20), D(60))
    assert base is not None and base.parameters["n_periods"] == 2


# -- statements ---------------------------------------------------------------------------


def readings(unit: str, start: datetime, values: list, kind: str = "USAGE") -> None:
    """Half-hourly readings of ``unit`` from ``start``: kWh (USAGE) or kVArh (GB_REACTIVE)."""
    row = DispatchUnit.objects.get(reference=unit)
    intake = ReportIntake.objects.create(site=row.site, kind="metering", report_id="test",
                                         client_id="test", received_at=T0 + timedelta(days=1))
    for index, value in enumerate(values):
        begin = start + timedelta(minutes=30 * index)
        MeterReading.objects.create(
            unit=row, reading_type=kind, start=begin, end=begin + timedelta(minutes=30),
            value=Decimal(str(value)), quality="OK", version=1,
            received_at=intake.received_at, intake=intake)


@pytest.fixture
def contract(gb):
    """C-DYN (bat1 export, hp1 import) with a meter-before-2 baseline, 300 GBP/MWh, 50
    GBP/MW/h penalty, 20 GBP/MVArh for reactive power and a 10 % emergency premium; bat1
    offers 400 kVAr."""
    DispatchUnit.objects.filter(reference="bat1").update(capacity_kvar=D(400))
    Contract.objects.filter(identifier="C-DYN").update(
        baseline_method="meter-before-2", reactive_utilisation_price=D(20),
        emergency_premium_percent=D(10))
    found = Contract.objects.get(identifier="C-DYN")
    SettlementTerms.objects.create(contract=found, penalty_rate_gbp=D(50))
    return found


def turn_down(issue, reference: str, **overrides):
    """hp1: 100 kW delta turn-down 17:00-18:00 against a 200 kW baseline, delivering 80 then
    120 kW (so 20 kW short in the first half-hour)."""
    arguments = {"reference": reference, "service_start": T0,
                 "service_end": T0 + timedelta(hours=1), "timings": [timing(T0, 100)],
                 "now": T0 - timedelta(hours=1)} | overrides
    dispatch = issue("acme/hp1", **arguments)
    readings("hp1", T0 - timedelta(hours=1), [100, 100, 60, 40])
    return dispatch


def lines_of(document: dict, kind: str) -> list[dict]:
    return [line for line in document["lines"] if line["kind"] == kind]


def test_a_reactive_dispatch_is_settled_on_its_own_line_type(contract, issue):
    issue("acme/bat1", reference="Q-1", service_start=T0, service_end=T0 + timedelta(hours=1),
          timings=[timing(T0, 300, "absolute", service_type="reactive")], urgency="warning",
          now=T0 - timedelta(hours=1))
    readings("bat1", T0, [-120, -150], kind="GB_REACTIVE")  # supplying 240 then 300 kVAr
    row = services.settle_month(contract=contract, month=MONTH)
    first, second = lines_of(row.document, "reactive")
    assert not lines_of(row.document, "utilisation")
    assert (first["instructedKvar"], first["actualKvar"], first["deliveredKvar"],
            first["deficiencyKvar"], first["deliveredMvarh"]) == ("300", "240", "240", "60",
                                                                  "0.12")
    # 0.12 MVArh x 20 GBP; 60 kVAr short x 0.5 h x 50 GBP/MW/h = 1.50
    assert (first["priceGbp"], first["paymentGbp"], first["penaltyGbp"],
            first["netGbp"]) == ("20.0000", "2.40", "1.50", "0.90")
    assert (second["deliveredKvar"], second["netGbp"]) == ("300", "3.00")
    totals = row.document["totals"]
    assert (totals["reactiveDeliveredMvarh"], totals["reactiveDeficiencyMvarh"],
            totals["utilisationGbp"], totals["penaltiesGbp"], totals["netGbp"],
            totals["deliveredMwh"]) == ("0.27", "0.03", "5.40", "1.50", "3.90", "0")
    assert row.document["terms"]["reactivePriceGbpPerMvarh"] == "20.0000"


def test_the_instructed_price_is_paid_as_instructed(contract, issue):
    turn_down(issue, "P-1", timings=[timing(T0, 100, price_gbp_per_kwh=D("0.5"))])
    row = services.settle_month(contract=contract, month=MONTH)
    first, second = lines_of(row.document, "utilisation")
    # 0.04 MWh x 500 GBP/MWh (0.50 GBP/kWh) instead of the contract's 300
    assert (first["priceGbp"], first["priceSource"], first["paymentGbp"]) == (
        "500.0", "instructed", "20.00")
    assert second["paymentGbp"] == "25.00"


def test_an_advisory_dispatch_carries_no_non_delivery_penalty(contract, issue):
    turn_down(issue, "A-1", urgency="advisory")
    row = services.settle_month(contract=contract, month=MONTH)
    first, _ = lines_of(row.document, "utilisation")
    assert (first["urgency"], first["deficiencyKw"], first["paymentGbp"], first["penaltyGbp"],
            first["netGbp"]) == ("advisory", "20", "12.00", "0.00", "12.00")


def test_a_warning_dispatch_is_penalised_as_contracted(contract, issue):
    turn_down(issue, "W-1", urgency="warning")
    first, _ = lines_of(services.settle_month(contract=contract, month=MONTH).document,
                        "utilisation")
    assert (first["penaltyGbp"], first["urgencyPremiumGbp"], first["netGbp"]) == (
        "0.50", "0.00", "11.50")


def test_an_emergency_dispatch_earns_the_contracts_premium(contract, issue):
    turn_down(issue, "E-1", urgency="emergency")
    row = services.settle_month(contract=contract, month=MONTH)
    first, second = lines_of(row.document, "utilisation")
    # 10 % of 12.00 and of 15.00, added to the net
    assert (first["urgencyPremiumGbp"], first["netGbp"]) == ("1.20", "12.70")
    assert (second["urgencyPremiumGbp"], second["netGbp"]) == ("1.50", "16.50")
    totals = row.document["totals"]
    assert (totals["urgencyPremiumGbp"], totals["netGbp"]) == ("2.70", "29.20")
    assert row.net_gbp == D("29.20")


def test_without_a_contract_premium_an_emergency_pays_as_a_warning(contract, issue):
    Contract.objects.filter(pk=contract.pk).update(emergency_premium_percent=None)
    turn_down(issue, "E-2", urgency="emergency")
    row = services.settle_month(contract=Contract.objects.get(pk=contract.pk), month=MONTH)
    assert row.document["totals"]["urgencyPremiumGbp"] == "0.00"
    assert row.document["terms"]["emergencyPremiumPercent"] is None


def test_the_urgency_of_the_revision_in_force_decides_each_period(contract, issue):
    from dispatch import issuing

    dispatch = turn_down(issue, "U-1", urgency="advisory")
    issuing.revise_dispatch(dispatch=dispatch, urgency="warning", issued_by="test",
                            now=T0 + timedelta(minutes=30))
    first, second = lines_of(services.settle_month(contract=contract, month=MONTH).document,
                             "utilisation")
    assert (first["urgency"], second["urgency"]) == ("advisory", "warning")


def test_monthly_totals_carry_the_deficiency_quantity_and_exports_show_it(contract, issue):
    turn_down(issue, "D-1")
    row = services.settle_month(contract=contract, month=MONTH)
    totals = row.document["totals"]
    assert (totals["deliveredMwh"], totals["deficiencyMwh"]) == ("0.09", "0.01")
    from settlement.api.serializers import StatementSerializer

    assert StatementSerializer(row).data["totals"]["deficiencyMwh"] == "0.01"
    header, *_, total = exports.as_csv(row.document).decode().splitlines()
    column = header.split(",").index("deficiencyMwh")
    assert total.split(",")[column] == "0.01"


def test_the_per_dispatch_settlement_includes_reactive_lines_and_premiums(contract, issue):
    dispatch = issue("acme/bat1", reference="Q-2", service_start=T0,
                     service_end=T0 + timedelta(minutes=30), urgency="emergency",
                     timings=[timing(T0, 300, "absolute", service_type="reactive")],
                     now=T0 - timedelta(hours=1))
    readings("bat1", T0, [-150], kind="GB_REACTIVE")
    settled = services.save_dispatch_settlement(instruction=dispatch)
    assert settled is not None and settled.status == "settled"
    (line,) = settled.lines
    # 0.15 MVArh x 20 = 3.00, plus 10 %
    assert (line["kind"], line["urgencyPremiumGbp"], line["netGbp"]) == (
        "reactive", "0.30", "3.30")
    assert settled.net_gbp == D("3.30")


# -- the reactive baseline method: a contract term -------------------------------------------


def set_reactive_baseline(contract: Contract, method: str) -> None:
    contract.reactive_baseline_method = method  # stored as is: unchecked below the services
    contract.save(update_fields=["reactive_baseline_method"])


def reactive_delta(issue, reference: str) -> None:
    """bat1 (export): 100 kVAr more reactive power 17:00-17:30, supplying 10, 10, 20 and
    20 kVAr in the four half-hours before and 80 kVAr during it."""
    issue("acme/bat1", reference=reference, service_start=T0,
          service_end=T0 + timedelta(minutes=30),
          timings=[timing(T0, 100, "delta", service_type="reactive")],
          now=T0 - timedelta(hours=3))
    readings("bat1", T0 - timedelta(hours=2), [-5, -5, -10, -10, -40], kind="GB_REACTIVE")


@pytest.mark.parametrize(("method", "shown", "baseline", "delivered"), [
    ("", "meter-before-4", "15", "65"),
    ("meter-before-2", "meter-before-2", "20", "60"),
], ids=["default", "meter-before-2"])
def test_delta_reactive_setpoints_are_measured_by_the_contracts_reactive_baseline(
        contract, issue, method, shown, baseline, delivered):
    set_reactive_baseline(contract, method)
    reactive_delta(issue, "QD-1")
    row = services.settle_month(contract=contract, month=MONTH)
    (line,) = lines_of(row.document, "reactive")
    assert (line["baselineKvar"], line["actualKvar"], line["deliveredKvar"]) == (
        baseline, "80", delivered)
    assert row.document["terms"]["reactiveBaselineMethod"] == shown
    (record,) = [r for r in row.document["baselines"] if r.get("serviceType") == "reactive"]
    assert record["method"] == "meter_before"


def test_a_history_day_reactive_baseline_uses_the_reactive_readings_of_those_days(
        contract, issue):
    # average-2 over the two working days before Wednesday 16 September: 20 and 40 kVAr
    # supplied at every period of Monday and Tuesday (London days, BST).
    set_reactive_baseline(contract, "average-2")
    issue("acme/bat1", reference="QH-1", service_start=T0, service_end=T0 + timedelta(minutes=30),
          timings=[timing(T0, 100, "delta", service_type="reactive")],
          now=T0 - timedelta(hours=3))
    readings("bat1", datetime(2026, 9, 13, 23, 0, tzinfo=UTC), [-10] * 48, kind="GB_REACTIVE")
    readings("bat1", datetime(2026, 9, 14, 23, 0, tzinfo=UTC), [-20] * 48, kind="GB_REACTIVE")
    readings("bat1", T0, [-40], kind="GB_REACTIVE")
    row = services.settle_month(contract=contract, month=MONTH)
    (line,) = lines_of(row.document, "reactive")
    assert (line["baselineKvar"], line["actualKvar"], line["deliveredKvar"]) == (
        "30", "80", "50")
    (record,) = [r for r in row.document["baselines"] if r.get("serviceType") == "reactive"]
    assert (record["method"], record["daysUsed"]) == ("average_of_y", ["2026-09-15",
                                                                       "2026-09-14"])


def test_a_history_day_reactive_baseline_without_enough_days_holds_with_the_reason(
        contract, issue):
    set_reactive_baseline(contract, "high-3-of-5")
    reactive_delta(issue, "QH-2")  # only the four half-hours before: no whole day
    row = services.settle_month(contract=contract, month=MONTH)
    (held,) = lines_of(row.document, "held")
    assert not lines_of(row.document, "reactive")
    assert held["reason"].startswith("held: no reactive baseline")


def test_a_stored_unknown_reactive_baseline_method_holds_only_delta_reactive_dispatches(
        contract, issue):
    set_reactive_baseline(contract, "nominated")
    reactive_delta(issue, "QU-1")
    issue("acme/bat1", reference="QU-2", service_start=T0 + timedelta(hours=1),
          service_end=T0 + timedelta(hours=1, minutes=30),
          timings=[timing(T0 + timedelta(hours=1), 50, "absolute", service_type="reactive")],
          now=T0 - timedelta(hours=3))
    readings("bat1", T0 + timedelta(hours=1), [-30], kind="GB_REACTIVE")
    row = services.settle_month(contract=contract, month=MONTH)
    (held,) = lines_of(row.document, "held")
    assert (held["dispatchRef"], held["reason"]) == (
        "QU-1", "the contract's reactive baseline method 'nominated' is not known")
    (absolute,) = lines_of(row.document, "reactive")  # an absolute setpoint needs none
    assert (absolute["dispatchRef"], absolute["deliveredKvar"]) == ("QU-2", "50")
