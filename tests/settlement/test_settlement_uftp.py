"""The statement as a UFTP FlexSettlement: exported through the API, parsed back and
validated with the shapeshifter-uftp classes; each settled period is an ISP with the
statement's numbers, held lines stay out, the same statement gives the same bytes, and a
tampered message is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from dispatch.models import AvailabilityDeclaration, DispatchUnit, ReportIntake
from settlement import exports, services, uftp
from tests.fixtures.dispatch import timing
from tests.settlement.test_settlement_statements import (  # noqa: F401 - settled is a fixture
    MONTH,
    T0,
    Api,
    settled,
    utilisation,
)

pytestmark = pytest.mark.django_db

STAMP = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
MESSAGE_ID = "0b5f6c2e-8a4d-4c1e-9f3a-2d7b6e1c9a40"


@pytest.fixture
def statement_row(settled, issue):  # noqa: F811
    """The ``settled`` statement plus a dispatch with no meter data (held) and 150 kW of
    hp1 declared available 16:00-18:00 UTC on 16 September; issued."""
    contract, _ = settled
    held_start = T0 + timedelta(days=2)
    issue("acme/hp1", reference="SET-HELD", service_start=held_start,
          service_end=held_start + timedelta(hours=1), timings=[timing(held_start, 50)],
          now=held_start - timedelta(hours=1))
    unit = DispatchUnit.objects.get(reference="hp1")
    intake = ReportIntake.objects.create(site=unit.site, kind="availability", report_id="a",
                                         client_id="test", received_at=T0 - timedelta(days=1))
    AvailabilityDeclaration.objects.create(
        unit=unit, start=T0 - timedelta(hours=1), end=T0 + timedelta(hours=1),
        available_kw=Decimal(150), declared_at=intake.received_at, intake=intake)
    row = services.settle_month(contract=contract, month=MONTH)
    return services.issue(statement_id=row.pk)


def exported(gb, row) -> tuple[bytes, uftp.FlexSettlement]:
    status, response = Api(gb.acme.token).get(f"/statements/{row.pk}/export",
                                              {"format": "uftp"})
    assert status == 200, response.content
    assert response["Content-Type"] == "application/xml"
    return response.content, uftp.parse_flex_settlement(response.content)


def test_the_export_is_a_valid_flex_settlement_of_the_month(statement_row, gb):
    _, message = exported(gb, statement_row)
    assert (message.sender_domain, message.recipient_domain) == (
        "enwl.dso.example", "acme.agr.example")
    assert (str(message.period_start), str(message.period_end), message.currency) == (
        "2026-09-01", "2026-09-30", "GBP")
    assert message.conversation_id == uftp.conversation_id(statement_row.document)


def test_each_settled_period_is_an_isp_with_the_statements_numbers_in_watts(
        statement_row, gb):
    _, message = exported(gb, statement_row)
    (order,) = message.flex_order_settlements
    lines = utilisation(statement_row.document)
    assert (order.order_reference, str(order.period), order.contract_id) == (
        "SET-1", "2026-09-16", "C-DYN")
    assert [(isp.start, isp.duration, isp.baseline_power, isp.ordered_flex_power,
             isp.actual_power, isp.delivered_flex_power, isp.power_deficiency)
            for isp in order.isps] == [
        (line["period"], 1, 200_000, -100_000, int(Decimal(line["actualKw"]) * 1000),
         -int(Decimal(line["deliveredKw"]) * 1000), -int(Decimal(line["deficiencyKw"]) * 1000))
        for line in lines]  # a down order: flex powers are negative (less consumption)
    assert [isp.delivered_flex_power for isp in order.isps] == [-80_000, -100_000]
    assert (order.price, order.penalty, order.net_settlement) == (
        Decimal("27.0000"), Decimal("0.5000"), Decimal("26.5000"))
    assert order.price - order.penalty == sum(Decimal(line["netGbp"]) for line in lines)


def test_held_lines_are_left_out(statement_row, gb):
    held = [line for line in statement_row.document["lines"] if line["kind"] == "held"]
    assert [line["dispatchRef"] for line in held] == ["SET-HELD"]
    xml, message = exported(gb, statement_row)
    assert [o.order_reference for o in message.flex_order_settlements] == ["SET-1"]
    assert b"SET-HELD" not in xml


def test_declared_availability_is_reserved_power_for_every_day_of_the_month(
        statement_row, gb):
    _, message = exported(gb, statement_row)
    (contract,) = message.contract_settlements
    assert contract.contract_id == "C-DYN"
    assert [str(p.period) for p in contract.periods] == [
        f"2026-09-{day:02d}" for day in range(1, 31)]
    day = next(p for p in contract.periods if str(p.period) == "2026-09-16")
    # 16:00-18:00 UTC is 17:00-19:00 in London: periods 35 to 38 (BST)
    assert [(isp.start, isp.duration, isp.reserved_power) for isp in day.isps] == [
        (1, 34, 0), (35, 4, 150_000), (39, 10, 0)]
    other = next(p for p in contract.periods if str(p.period) == "2026-09-01")
    assert [(isp.start, isp.duration, isp.reserved_power) for isp in other.isps] == [
        (1, 48, 0)]


def test_the_same_statement_exports_the_same_bytes(statement_row, gb):
    document = statement_row.document
    assert exports.as_uftp(document, time_stamp=STAMP) == exports.as_uftp(document,
                                                                          time_stamp=STAMP)
    one = uftp.as_flex_settlement(document, sender_domain="enwl.dso.example",
                                  recipient_domain="acme.agr.example",
                                  message_id=MESSAGE_ID, time_stamp=STAMP)
    assert one == uftp.as_flex_settlement(document, sender_domain="enwl.dso.example",
                                          recipient_domain="acme.agr.example",
                                          message_id=MESSAGE_ID, time_stamp=STAMP)
    assert b'TimeStamp="2026-10-01T09:00:00Z"' in one and MESSAGE_ID.encode() in one
    first, second = exported(gb, statement_row)[1], exported(gb, statement_row)[1]
    assert first.message_id == second.message_id  # a repeat, not a new settlement


@pytest.mark.parametrize("tamper", [
    pytest.param(lambda xml: xml.replace(b"<ISP ", b"<Bonus/><ISP ", 1), id="unknown element"),
    pytest.param(lambda xml: xml.replace(b' BaselinePower="200000"', b"", 1),
                 id="missing required attribute"),
    pytest.param(lambda xml: xml.replace(b'Currency="GBP"', b'Currency="pounds"'),
                 id="pattern"),
    pytest.param(lambda xml: xml.replace(b' Price="', b' Prize="', 1), id="unknown attribute"),
    pytest.param(lambda xml: xml.replace(b"FlexSettlement", b"FlexOrder"), id="root"),
    pytest.param(lambda xml: xml.replace(b'Start="1"', b'Start="first"', 1), id="not a number"),
    pytest.param(lambda xml: xml[:-40], id="truncated"),
])
def test_a_tampered_message_fails_validation(statement_row, tamper):
    xml = exports.as_uftp(statement_row.document, time_stamp=STAMP)
    uftp.parse_flex_settlement(xml)
    with pytest.raises(uftp.InvalidFlexSettlement):
        uftp.parse_flex_settlement(tamper(xml))


def test_a_statement_with_nothing_settled_is_a_conflict(settled, gb):  # noqa: F811
    contract, _ = settled
    from tests.settlement.test_settlement_statements import readings

    readings("hp1", T0, [None])  # the dispatch is held: missing data
    row = services.issue(statement_id=services.settle_month(contract=contract,
                                                            month=MONTH).pk)
    status, response = Api(gb.acme.token).get(f"/statements/{row.pk}/export",
                                              {"format": "uftp"})
    assert status == 409 and b"no settled dispatch" in response.content


def test_the_prorated_parts_of_a_period_with_a_setpoint_change_are_one_isp():
    def part(ordered, delivered, deficiency, net):
        return {"kind": "utilisation", "dispatchRef": "D-1", "unit": "hp1", "day": "2026-09-16",
                "period": 37, "direction": "down", "baselineKw": "200", "actualKw": "120",
                "orderedKw": ordered, "deliveredKw": delivered, "deficiencyKw": deficiency,
                "paymentGbp": net, "penaltyGbp": "0.00", "performanceReductionGbp": "0.00",
                "netGbp": net}

    document = {"operator": "ENWL", "contract": "C-DYN", "fsp": "acme", "month": "2026-09",
                "version": 1, "currency": "GBP", "periodMinutes": 30,
                "terms": {"baselineMethod": "meter-before-2"},
                "lines": [part("33.333", "26.667", "6.666", "4.00"),
                          part("33.333", "33.333", "0", "5.00")]}
    xml = uftp.as_flex_settlement(document, sender_domain="enwl.dso.example",
                                  recipient_domain="acme.agr.example", message_id=MESSAGE_ID,
                                  time_stamp=STAMP)
    (order,) = uftp.parse_flex_settlement(xml).flex_order_settlements
    assert [(i.start, i.ordered_flex_power, i.delivered_flex_power, i.power_deficiency)
            for i in order.isps] == [(37, -66_666, -60_000, -6_666)]
    assert order.net_settlement == Decimal("9.00")
