"""The demo fleet's past: a month of meter readings, a few past dispatches with their
acknowledgements, and a settled statement, so the console's settlement pages and charts
have something to show on a fresh sandbox.

Everything goes through the real paths, as the fleet site's VEN and as the operator:

- readings are a readings CSV turned into metering reports by the agent's own parser
  (``ven_client.reports``) and written as the site's VEN through ``vtn.services``; the
  VTN's report intake (``dispatch.intake``) stores them;
- dispatches are issued with ``dispatch.issuing.issue_dispatch`` at a past instruction
  time; their RECEIVED and ACTIONED acknowledgements are signed with the site's key by
  the profile code the agent signs with (``gbflex_profile.acks``), sent as reports and judged by
  ``dispatch.acknowledgements.record_acknowledgements`` at the time the site would have sent them;
- the previous month's statement is computed, issued, accepted as the FSP's commercial
  back office (``dispatch.fsp_office.commercial_client_id``) and finalised with
  ``settlement.services``.

:func:`load` is idempotent: readings are sent only for periods after the latest stored
one, dispatches are found by their reference, and a finalised statement whose inputs are
unchanged is left alone. Called by ``manage.py sandbox`` after :func:`conformance.fleet.prepare`.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from conformance.fleet import FLEET_FSP, Fleet, FleetSite
from dispatch import acknowledgements, fsp_events, fsp_office, issuing
from dispatch.models import (
    Contract,
    DispatchInstruction,
    DispatchUnit,
    FspSite,
    MeterReading,
)
from dispatch.rules import Timing, iso
from gbflex_profile import acks, jose, report_signing
from gbflex_profile.vocabulary import ACTIONED, METERING, RECEIVED
from settlement import services as settlement
from settlement.models import Statement
from ven_client import reports as csv_reports
from vtn import services as vtn_services
from vtn.auth.caller import Caller
from vtn.auth.scopes import DEFAULT_SCOPES
from vtn.wire.v31 import Wire31

SITE = "north"
PRODUCT = "DYNAMIC"
HALF_HOUR = timedelta(minutes=30)
# Readings start this long before the previous month, so its first days have baselines.
LEAD_IN = timedelta(days=7)
# Past dispatches: (day of the previous month, or None for "three days ago"), unit,
# start hour UTC, hours, kW of the delta setpoint.
DISPATCH_PLAN = ((6, "bat1", 17, 2, 250), (13, "hp1", 7, 1, 100), (20, "bat1", 16, 2, 300),
                 (27, "hp1", 18, 1, 80), (None, "bat1", 17, 1, 200))
_WIRE = Wire31()


@dataclass
class HistorySummary:
    readings_sent: int = 0
    dispatches: list[str] = field(default_factory=list)
    acknowledgements: int = 0
    statement: dict | None = None

    def as_dict(self) -> dict:
        return {"readings_sent": self.readings_sent, "dispatches": self.dispatches,
                "acknowledgements": self.acknowledgements, "statement": self.statement}


def _half_hour_floor(instant: datetime) -> datetime:
    instant = instant.astimezone(UTC).replace(second=0, microsecond=0)
    return instant.replace(minute=0 if instant.minute < 30 else 30)


def _caller(site: FspSite) -> Caller:
    """The site's VEN, as the VTN sees it when the agent calls."""
    return Caller(client_id=site.ven.client_id, name=site.ven.ven_name, role="ven",
                  scopes=frozenset(DEFAULT_SCOPES["ven"]))


def _plan(now: datetime) -> list[tuple[str, str, datetime, datetime, int]]:
    """(reference, unit, start, end, kW) of the past dispatches, all ended before now."""
    first = settlement.Month.of(now).previous().first_day
    planned = []
    for day, unit, hour, hours, kw in DISPATCH_PLAN:
        if day is None:
            date = (now - timedelta(days=3)).date()
        else:
            date = first.replace(day=day)
        start = datetime(date.year, date.month, date.day, hour, tzinfo=UTC)
        end = start + timedelta(hours=hours)
        if end < now - timedelta(hours=1):
            planned.append((f"DEMO-{start:%Y%m%d}-{unit.upper()}", unit, start, end, kw))
    return planned


def _kwh(unit: DispatchUnit, start: datetime, plan: list) -> float:
    """A plausible half-hour of metered energy (kWh, import positive): a daily shape per
    unit, with the instructed change during a dispatch."""
    hour = start.hour + start.minute / 60
    if unit.reference == "hp1":  # a heat pump: imports most in the morning and evening
        base = 40 + 25 * math.cos((hour - 7) / 24 * 2 * math.pi) ** 2
    else:  # a battery: charges overnight, exports in the evening peak
        base = 60.0 if 1 <= hour < 5 else (-75.0 if 16 <= hour < 20 else 2.0)
    base += (start.day % 5) - 2  # day-to-day variation, no randomness
    for _reference, ref_unit, begin, end, kw in plan:
        if ref_unit == unit.reference and begin <= start < end:
            # Delivered a little short of the instruction: an import unit imports less,
            # an export unit exports less (settlement/calc/delivery.py).
            change = kw * 0.5 * 0.9
            base += change if unit.direction == "export" else -change
    return round(base, 1)


def _send_readings(site: FspSite, units: list[DispatchUnit], since: datetime,
                   until: datetime, plan: list, metering_event_id: str, key,
                   kid: str) -> int:
    latest = MeterReading.objects.filter(unit__in=units).aggregate(Max("start"))["start__max"]
    start = max(since, latest + HALF_HOUR) if latest else since
    rows = ["unit,start,duration,type,value"]
    while start + HALF_HOUR <= until:
        rows += [f"{unit.reference},{iso(start)},PT30M,USAGE,{_kwh(unit, start, plan)}"
                 for unit in units]
        start += HALF_HOUR
    if len(rows) == 1:
        return 0
    parsed = csv_reports.parse_readings("\n".join(rows) + "\n", name="demo-history",
                                        units={unit.reference for unit in units})
    _save_reports(site, [report_signing.sign_report(body, kind=METERING,
                                                    fsp=site.fsp.identifier, key=key, kid=kid)
                         for body in parsed.reports], metering_event_id)
    return parsed.rows


def _save_reports(site: FspSite, bodies: list[dict], event_id: str) -> None:
    """Report bodies from the agent's CSV parser, signed with the site key as the agent
    signs them, written as the site's VEN."""
    caller = _caller(site)
    for body in bodies:
        data = _WIRE.report_in({**body, "eventID": event_id, "clientName": site.ven.ven_name})
        vtn_services.save_report(caller=caller, data=data)  # the intake stores them


def _acknowledge(site: FspSite, instruction: DispatchInstruction, key, kid: str,
                 issued_at: datetime) -> int:
    """RECEIVED, then ACTIONED ACCEPTED, as the site's agent would have sent them."""
    revision = instruction.revisions.latest("number")
    caller = _caller(site)
    recorded = 0
    for minutes, signed in (
            (1, acks.read_back(revision.document, stage=RECEIVED)),
            (2, acks.read_back(revision.document, stage=ACTIONED, outcome="ACCEPTED"))):
        body = {"eventID": instruction.event_id, "clientName": site.ven.ven_name,
                "reportName": f"ack {instruction.reference} r{revision.number} "
                              f"{signed['stage']}",
                "resources": [{"resourceName": instruction.unit.reference, "intervals": [
                    {"id": 0, "payloads": acks.ack_payloads(signed, key, kid)}]}]}
        with transaction.atomic():
            report = vtn_services.save_report(caller=caller, data=_WIRE.report_in(body))
            # Judged at the time it was sent; the receiver after commit sees it recorded.
            recorded += len(acknowledgements.record_acknowledgements(
                report, now=issued_at + timedelta(minutes=minutes)))
    return recorded


def _settle(contract: Contract, month: settlement.Month, site: FspSite) -> dict:
    row = settlement.settle_month(contract=contract, month=month)
    if row.status == Statement.Status.DRAFT:
        row = settlement.issue(statement_id=row.pk)
    if row.status == Statement.Status.ISSUED:
        # As the FSP's commercial back office: a site's gateway never answers statements.
        row = settlement.accept(statement_id=row.pk, client_id=fsp_office.commercial_client_id(
            operator=site.fsp.operator.code, fsp=site.fsp.identifier))
    if row.status == Statement.Status.ACCEPTED:
        row = settlement.finalise(statement_id=row.pk)
    return {"id": row.pk, "contract": contract.identifier, "month": str(month),
            "version": row.version, "status": row.status}


def load(fleet: Fleet, *, now: datetime | None = None) -> HistorySummary:
    """Give the fleet's north site its history (idempotent); returns what was added."""
    now = now or timezone.now()
    fleet_site: FleetSite = next(s for s in fleet.sites if s.name == SITE)
    site = FspSite.objects.select_related("ven", "fsp__operator").get(
        ven__client_id=fleet_site.client_id)
    contract = Contract.objects.get(operator=site.fsp.operator,
                                    identifier=f"FLEET-{SITE}-{PRODUCT}")
    units = list(DispatchUnit.objects.filter(site=site).order_by("reference"))
    config = tomllib.loads(fleet_site.config_path.read_text())
    key = jose.load_private_key(Path(config["signing_key"]).read_bytes())
    summary = HistorySummary()
    plan = _plan(now)

    for reference, unit_ref, start, end, kw in plan:
        if DispatchInstruction.objects.filter(operator=site.fsp.operator,
                                              reference=reference).exists():
            continue
        issued_at = start - timedelta(hours=2)
        instruction = issuing.issue_dispatch(
            unit=next(u for u in units if u.reference == unit_ref), service_start=start,
            service_end=end, product=contract.product, contract=contract.identifier,
            timings=[Timing(setpoint_time=start, volume=Decimal(kw), setpoint_type="delta")],
            reference=reference, issued_by="demo history", reason="demo: a past dispatch",
            now=issued_at)
        summary.acknowledgements += _acknowledge(site, instruction, key,
                                                 config["signing_kid"], issued_at)
        summary.dispatches.append(reference)

    month = settlement.Month.of(now).previous()
    metering = fsp_events.ensure_event(site.fsp.operator, FLEET_FSP, fsp_events.METERING)
    first, _ = month.bounds()
    summary.readings_sent = _send_readings(site, units, first - LEAD_IN,
                                           _half_hour_floor(now), plan, metering.pk, key,
                                           config["signing_kid"])
    summary.statement = _settle(contract, month, site)
    return summary
