"""A statement as a UFTP (Shapeshifter) ``FlexSettlement`` message, and its validation.

The message classes are those of the ``shapeshifter-uftp`` package, generated from the
official UFTP XSD and checked when built; they are serialised with xsdata as the package
itself does. The mapping from a statement document (see docs/settlement.md, "UFTP
export"):

* one ``FlexOrderSettlement`` per dispatch and London day (UFTP settles an order per
  Period, a calendar day), with one ``ISP`` per settlement period the dispatch covers
  (where a setpoint changes within a period, its prorated parts are added up);
  ``Start`` is the period's number within its day (``periodMinutes`` long: the ISP
  length the parties agreed, UFTP does not carry it in this message);
* ``Price`` is the utilisation payment of those lines, ``Penalty`` their deficiency
  penalty plus performance reduction, ``NetSettlement`` their net (Price minus Penalty,
  as UFTP defines it); amounts in the document's currency;
* one ``ContractSettlement`` for the contract with every day of the month: the
  availability declared across its units per ISP as ``ReservedPower`` (time-weighted
  where a declaration covers part of an ISP), runs of equal power as one ISP element,
  zero where nothing was declared. UFTP carries no availability money: the statement
  (JSON or CSV) has it.

Powers are whole watts (UFTP's unit; our kW x 1000, exact for the statement's three
decimals) with UFTP's sign convention, positive = consumption: baseline and actual power
as metered; ordered, delivered and deficient flex power negative for a *down* order and
positive for an *up* one.

Held lines are left out: they are not settled yet, and appear in a later statement
version once their data arrives. A statement with no settled dispatch at all cannot be
written, since UFTP requires at least one ``FlexOrderSettlement``
(:class:`NotExpressible`).
"""

from __future__ import annotations

import dataclasses
import io
import re
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from xml.etree import ElementTree

from shapeshifter_uftp.uftp import (
    ContractSettlement,
    ContractSettlementISP,
    ContractSettlementPeriod,
    FlexOrderSettlement,
    FlexOrderSettlementISP,
    FlexSettlement,
)
from xsdata.exceptions import ParserError
from xsdata.formats.dataclass.context import XmlContext
from xsdata.formats.dataclass.parsers import XmlParser
from xsdata.formats.dataclass.parsers.config import ParserConfig
from xsdata.formats.dataclass.parsers.handlers import XmlEventHandler
from xsdata.formats.dataclass.serializers import XmlSerializer
from xsdata.formats.dataclass.serializers.config import SerializerConfig
from xsdata.models.datatype import XmlDate

from settlement.calc.periods import (
    hours_between,
    periods_between,
    periods_of_month,
    utc_text,
)

_CONTEXT = XmlContext()
_SERIALIZER = XmlSerializer(context=_CONTEXT, config=SerializerConfig(indent="  "))
# The stdlib (expat) handler: the lxml one parses with recover=True, accepting broken XML.
_PARSER = XmlParser(context=_CONTEXT, handler=XmlEventHandler, config=ParserConfig(
    fail_on_unknown_properties=True, fail_on_unknown_attributes=True,
    fail_on_converter_warnings=True))
_WATT = Decimal(1)
_ZERO = Decimal(0)


class NotExpressible(ValueError):
    """The statement has nothing UFTP can carry (no settled dispatch)."""


class InvalidFlexSettlement(ValueError):
    """An XML document that is not a valid UFTP FlexSettlement."""


def _watts(kw: str | Decimal) -> int:
    return int((Decimal(kw) * 1000).quantize(_WATT, rounding=ROUND_HALF_UP))


def _sign(direction: str) -> int:
    return -1 if direction == "down" else 1


def _day(text: str) -> XmlDate:
    return XmlDate.from_date(date.fromisoformat(text))


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def conversation_id(document: dict) -> str:
    """The statement version's own UFTP conversation: the same for every export of it."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "urn:gb-settlement:{}:{}:{}:v{}".format(
        document["operator"], document["contract"], document["month"], document["version"])))


def entity_address(domain: str, month: str, unit: str) -> str:
    """The EA1 entity address of a unit as its own congestion point, under ``domain``."""
    return f"ea1.{month}.{domain}:{unit}"


def _order_settlements(document: dict, congestion_domain: str) -> list[FlexOrderSettlement]:
    groups: dict[tuple[str, str], list[dict]] = {}
    for line in document["lines"]:
        if line["kind"] == "utilisation":  # held lines are not settled yet
            groups.setdefault((line["dispatchRef"], line["day"]), []).append(line)
    settlements = []
    for (reference, day), lines in groups.items():
        isps: dict[int, FlexOrderSettlementISP] = {}
        for line in lines:
            sign = _sign(line["direction"])
            ordered, delivered, deficiency = (sign * _watts(line[name]) for name in (
                "orderedKw", "deliveredKw", "deficiencyKw"))
            isp = isps.get(line["period"])
            if isp is None:
                isps[line["period"]] = FlexOrderSettlementISP(
                    start=line["period"], duration=1,
                    baseline_power=_watts(line["baselineKw"]), ordered_flex_power=ordered,
                    actual_power=_watts(line["actualKw"]), delivered_flex_power=delivered,
                    power_deficiency=deficiency)
            else:  # a setpoint changed within the period: its prorated parts add up
                isp.ordered_flex_power += ordered
                isp.delivered_flex_power += delivered
                isp.power_deficiency += deficiency
        price = sum((Decimal(line["paymentGbp"]) + Decimal(line.get("urgencyPremiumGbp", "0"))
                     for line in lines), _ZERO)  # an emergency premium is paid as price
        penalty = sum((Decimal(line["penaltyGbp"]) + Decimal(line["performanceReductionGbp"])
                       for line in lines), _ZERO)
        settlements.append(FlexOrderSettlement(
            isps=list(isps.values()), order_reference=reference, period=_day(day),
            contract_id=document["contract"],
            baseline_reference=document["terms"]["baselineMethod"],
            congestion_point=entity_address(congestion_domain, document["month"],
                                            lines[0]["unit"]),
            price=price, penalty=penalty,
            net_settlement=sum((Decimal(line["netGbp"]) for line in lines), _ZERO)))
    return settlements


def _contract_settlement(document: dict) -> ContractSettlement:
    year, month = (int(part) for part in document["month"].split("-"))
    minutes = document["periodMinutes"]
    hours = Decimal(minutes) / 60
    reserved_kw: dict[datetime, Decimal] = defaultdict(Decimal)
    for line in document["lines"]:
        if line["kind"] != "availability":
            continue
        start, end = _utc(line["periodStart"]), _utc(line["periodEnd"])
        for period in periods_between(start, end, minutes):
            covered = hours_between(max(start, period.start_utc), min(end, period.end_utc))
            reserved_kw[period.start_utc] += Decimal(line["declaredKw"]) * covered / hours
    days: dict[date, list[ContractSettlementISP]] = {}
    for period in periods_of_month(year, month, minutes):
        watts = _watts(reserved_kw.get(period.start_utc, _ZERO))
        isps = days.setdefault(period.day, [])
        if isps and isps[-1].reserved_power == watts:
            isps[-1].duration += 1
        else:
            isps.append(ContractSettlementISP(start=period.number, duration=1,
                                              reserved_power=watts))
    return ContractSettlement(contract_id=document["contract"], periods=[
        ContractSettlementPeriod(period=XmlDate.from_date(day), isps=isps)
        for day, isps in days.items()])


def as_flex_settlement(document: dict, *, sender_domain: str, recipient_domain: str,
                       message_id: str | None = None,
                       time_stamp: datetime | None = None) -> bytes:
    """The UFTP FlexSettlement XML (UTF-8) of one statement document, from the DSO
    (``sender_domain``) to the AGR (``recipient_domain``); see the module docstring for
    the mapping. Held lines are left out. ``message_id`` (a UUID; new when None) and
    ``time_stamp`` (aware; now when None) are the only inputs not taken from the
    document: fixed, they give the same bytes every time. Raises
    :class:`NotExpressible` when no dispatch is settled, ValueError for a bad domain."""
    orders = _order_settlements(document, sender_domain)
    if not orders:
        raise NotExpressible(
            f"statement {document['contract']} {document['month']} v{document['version']} "
            "has no settled dispatch; a UFTP FlexSettlement needs at least one")
    year, month = (int(part) for part in document["month"].split("-"))
    after = date(year + (month == 12), month % 12 + 1, 1)
    stamp = (time_stamp or datetime.now(UTC)).astimezone(UTC)
    message = FlexSettlement(
        sender_domain=sender_domain, recipient_domain=recipient_domain,
        time_stamp=utc_text(stamp),
        message_id=message_id or str(uuid.uuid4()), conversation_id=conversation_id(document),
        flex_order_settlements=orders, contract_settlements=[_contract_settlement(document)],
        period_start=XmlDate(year, month, 1),
        period_end=XmlDate.from_date(after - timedelta(days=1)),
        currency=document["currency"])
    xml = _SERIALIZER.render(message)
    parse_flex_settlement(xml.encode())  # never hand out what a receiver would reject
    return xml.encode()


def _check(node: Any, path: str) -> None:
    """What the generated classes describe but xsdata does not enforce on parsing:
    required attributes present, patterns matched, minimum occurrences."""
    for item in dataclasses.fields(node):
        meta, value, where = item.metadata, getattr(node, item.name), \
            f"{path}/{item.metadata.get('name', item.name)}"
        if meta.get("required") and value is None:
            raise InvalidFlexSettlement(f"{where} is required")
        if value is not None and meta.get("pattern") and not re.fullmatch(
                meta["pattern"], str(value)):
            raise InvalidFlexSettlement(f"{where} {value!r} does not match {meta['pattern']}")
        if isinstance(value, list):
            if len(value) < meta.get("min_occurs", 0):
                raise InvalidFlexSettlement(f"{where} needs at least {meta['min_occurs']}")
            for index, child in enumerate(value, start=1):
                if dataclasses.is_dataclass(child):
                    _check(child, f"{where}[{index}]")
        elif dataclasses.is_dataclass(value):
            _check(value, where)


def parse_flex_settlement(xml: bytes) -> FlexSettlement:
    """Parse and validate a FlexSettlement against the UFTP schema as the
    ``shapeshifter-uftp`` classes describe it (the package ships no XSD file): the root
    element, no unknown elements or attributes, every value convertible, required
    attributes present, patterns (domains, UUIDs, entity addresses, currency) matched.
    Raises :class:`InvalidFlexSettlement` saying what is wrong."""
    try:
        _, root = next(ElementTree.iterparse(io.BytesIO(xml), events=("start",)))
        if root.tag != "FlexSettlement":  # xsdata parses into the class whatever the root
            raise InvalidFlexSettlement(f"the root element is {root.tag}, not FlexSettlement")
        message = _PARSER.from_bytes(xml, FlexSettlement)
    except (ElementTree.ParseError, ParserError, TypeError, ValueError) as exc:
        if isinstance(exc, InvalidFlexSettlement):
            raise
        raise InvalidFlexSettlement(str(exc)) from exc
    _check(message, "FlexSettlement")
    return message
