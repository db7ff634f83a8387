"""Every read of the dispatch app with rules: lookups that report clearly, filters, the
published JWKS, and the JSON shape of a dispatch (shared by the API and the commands)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import Q, QuerySet
from django.utils import timezone

from dispatch import readings
from dispatch.comms import effective_interval, sites_with_intervals
from dispatch.models import (
    Acknowledgement,
    AvailabilityDeclaration,
    Contract,
    DispatchInstruction,
    DispatchRevision,
    DispatchUnit,
    FspSite,
    MeterReading,
    NetworkOperator,
    OperatorProgram,
    ReportIntake,
    SigningKey,
    SiteSigningKey,
)
from dispatch.rules import iso
from dispatch.services import product_parameters_as_dict
from vtn.errors import BadRequest, NotFound


def find_unit(reference: str, *, fsp: str | None = None,
              operator: str | None = None) -> DispatchUnit:
    """A unit by reference, or ``FSP/REF``; ``fsp`` and ``operator`` narrow an ambiguous one."""
    if "/" in reference and fsp is None:
        fsp, reference = reference.split("/", 1)
    units = DispatchUnit.objects.select_related("fsp__operator", "resource").filter(
        reference=reference)
    if fsp:
        units = units.filter(fsp__identifier=fsp)
    if operator:
        units = units.filter(fsp__operator__code=operator.upper())
    found = list(units[:2])
    if not found:
        raise NotFound(f"no dispatch unit {reference!r}" + (f" of FSP {fsp!r}" if fsp else ""))
    if len(found) > 1:
        raise BadRequest(f"unit reference {reference!r} is used by several FSPs; name the FSP")
    return found[0]


def find_operator(code: str) -> NetworkOperator:
    """The network operator with ``code`` (404 when the VTN does not have it)."""
    found = NetworkOperator.objects.filter(code=(code or "").upper()).first()
    if found is None:
        raise NotFound(f"no network operator {code!r}")
    return found


def product_parameter_rows() -> list[dict]:
    """Every operator product program with the parameters it applies (see
    :func:`dispatch.services.product_parameters_as_dict`)."""
    return [product_parameters_as_dict(row.operator, row.product) for row in
            OperatorProgram.objects.select_related("operator", "product").order_by(
                "operator__code", "product__code")]


def find_dispatch(reference: str, *, operator: str | None = None) -> DispatchInstruction:
    """A dispatch by its NO dispatch reference (``operator`` narrows an ambiguous one)."""
    return _one_per_operator(DispatchInstruction.objects.select_related(
        "operator", "contract__product", "unit__fsp", "unit__site").filter(reference=reference),
        f"dispatch {reference!r}", operator)


def _one_per_operator(rows: QuerySet, what: str, operator: str | None):
    """The one row of ``rows`` (narrowed to ``operator``): 404 when none, 400 when the
    identifier is used by several operators and none was named."""
    if operator:
        rows = rows.filter(operator__code=operator.upper())
    found = list(rows[:2])
    if not found:
        raise NotFound(f"no {what}" + (f" of {operator}" if operator else ""))
    if len(found) > 1:
        raise BadRequest(f"{what} is used by several operators; name the operator")
    return found[0]


@dataclass(frozen=True)
class DispatchFilters:
    operator: str | None = None
    fsp: str | None = None
    unit: str | None = None
    status: str | None = None
    product: str | None = None
    active_from: datetime | None = None  # service period overlaps [active_from, active_to)
    active_to: datetime | None = None


def dispatches(filters: DispatchFilters = DispatchFilters()) -> QuerySet[DispatchInstruction]:
    queryset = DispatchInstruction.objects.select_related(
        "operator", "contract__product", "unit__fsp", "unit__site")
    if filters.operator:
        queryset = queryset.filter(operator__code=filters.operator.upper())
    if filters.fsp:
        queryset = queryset.filter(unit__fsp__identifier=filters.fsp)
    if filters.unit:
        queryset = queryset.filter(unit__reference=filters.unit)
    if filters.status:
        queryset = queryset.filter(status=filters.status)
    if filters.product:
        queryset = queryset.filter(contract__product__code=filters.product.upper())
    if filters.active_from:
        queryset = queryset.filter(service_end__gt=filters.active_from)
    if filters.active_to:
        queryset = queryset.filter(service_start__lt=filters.active_to)
    return queryset.order_by("-created", "-id")


def published_keys(now: datetime | None = None) -> QuerySet[SigningKey]:
    """Signing keys whose public half is published: active ones and retired ones whose
    verification period has not ended."""
    now = now or timezone.now()
    return SigningKey.objects.filter(Q(verify_until__isnull=True) | Q(verify_until__gt=now))


def jwks(now: datetime | None = None) -> dict:
    return {"keys": [key.public_jwk for key in published_keys(now).order_by("created", "id")]}


def acknowledgement_as_dict(ack: Acknowledgement) -> dict:
    return {"stage": ack.stage, "outcome": ack.outcome, "result": ack.result or None,
            "reason": ack.reason, "detail": ack.detail, "receivedAt": iso(ack.received_at),
            "claimedRevision": ack.claimed_revision, "reportID": ack.report_id,
            "clientID": ack.client_id, "kid": ack.kid}


def acknowledgement_state(acks: list[Acknowledgement]) -> dict:
    """When each stage was first accepted (null: not yet), the actioned result, and the
    reason of a refusal (null: not refused)."""
    state: dict = {"received": None, "actioned": None, "actionedResult": None,
                   "refused": None, "refusedReason": None}
    for ack in acks:
        if ack.outcome == Acknowledgement.Outcome.ACCEPTED and state.get(ack.stage) is None:
            state[ack.stage] = iso(ack.received_at)
            if ack.stage == Acknowledgement.Stage.ACTIONED:
                state["actionedResult"] = ack.result
            elif ack.stage == Acknowledgement.Stage.REFUSED:
                state["refusedReason"] = ack.reason
    return state


def revision_as_dict(revision: DispatchRevision) -> dict:
    acks = list(revision.acknowledgements.order_by("received_at", "id"))
    return {"revision": revision.number, "status": revision.status,
            "urgency": revision.urgency, "instructionTime": iso(revision.instruction_time),
            "issuedAt": iso(revision.created),
            "kid": revision.signing_key.kid, "issuedBy": revision.issued_by,
            "reason": revision.reason, "document": revision.document,
            "signature": revision.signature,
            "acknowledged": acknowledgement_state(acks),
            "acknowledgements": [acknowledgement_as_dict(ack) for ack in acks]}


def site_key_as_dict(key: SiteSigningKey) -> dict:
    return {"kid": key.kid, "jwk": key.public_jwk, "created": iso(key.created),
            "revokedAt": iso(key.revoked_at) if key.revoked_at else None,
            "site": f"{key.site.fsp.operator.code}/{key.site.fsp.identifier}/{key.site.name}"}


def dispatch_as_dict(dispatch: DispatchInstruction, *, history: bool = False) -> dict:
    """The JSON shape of a dispatch; ``history`` adds every revision, oldest first."""
    body = {
        "networkOperator": dispatch.operator.code,
        "reference": dispatch.reference,
        "fsp": dispatch.unit.fsp.identifier,
        "unit": dispatch.unit.reference,
        "contract": dispatch.contract.identifier,
        "product": dispatch.contract.product.code,
        "status": dispatch.status,
        "urgency": dispatch.urgency,
        "revision": dispatch.revision,
        "serviceStart": iso(dispatch.service_start),
        "serviceEnd": iso(dispatch.service_end),
        "eventID": dispatch.event_id,
        "programID": dispatch.event.program_id if dispatch.event is not None else None,
        "created": iso(dispatch.created),
        "modified": iso(dispatch.modified),
    }
    body["comms"] = comms_as_dict(dispatch.unit.site)
    latest = dispatch.revisions.select_related("signing_key").order_by("-number").first()
    body["current"] = revision_as_dict(latest) if latest else None
    if history:
        body["revisions"] = [revision_as_dict(r) for r in
                             dispatch.revisions.select_related("signing_key").order_by("number")]
    return body


# --- comms --------------------------------------------------------------------------------------

def comms_as_dict(site: FspSite) -> dict:
    """A site's comms state in brief (also shown with each of its dispatches)."""
    return {"site": f"{site.fsp.operator.code}/{site.fsp.identifier}/{site.name}",
            "state": site.comms_state,
            "lastSeen": iso(site.last_seen) if site.last_seen else None,
            "changed": iso(site.comms_changed) if site.comms_changed else None}


def sites() -> QuerySet[FspSite]:
    return sites_with_intervals().order_by("fsp__operator__code", "fsp__identifier", "name")


def site_as_dict(site: FspSite, *, transitions: int = 20) -> dict:
    """A site with its comms state, heartbeat interval (with its operator's own values),
    units with their last reported state, and latest transitions."""
    interval = effective_interval(site)
    recent = list(site.transitions.order_by("-at", "-id")[:transitions])
    return comms_as_dict(site) | {
        "operator": site.fsp.operator.code, "fsp": site.fsp.identifier, "name": site.name,
        "venID": site.ven_id,
        "heartbeatIntervalSeconds": int(interval.total_seconds()) if interval else None,
        "units": [{"reference": unit.reference, "commsState": unit.comms_state,
                   "operatingState": unit.operating_state or None,
                   "availableKw": None if unit.available_kw is None else str(unit.available_kw),
                   "stateReportedAt": iso(unit.state_reported_at)
                   if unit.state_reported_at else None}
                  for unit in site.units.order_by("reference")],
        "transitions": [{"from": t.from_state, "to": t.to_state, "at": iso(t.at),
                         "lastSeen": iso(t.last_seen) if t.last_seen else None,
                         "detail": t.detail} for t in reversed(recent)],
    }


# --- meter readings, availability declarations, report intakes ----------------------------------

def _amount(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(), "f")


@dataclass(frozen=True)
class ReadingFilters:
    operator: str | None = None
    fsp: str | None = None
    unit: str | None = None  # unit reference (with fsp) or FSP/REF
    reading_type: str | None = None
    start: datetime | None = None  # readings starting at or after
    end: datetime | None = None  # readings starting before
    history: bool = False  # include superseded versions


def meter_readings(filters: ReadingFilters = ReadingFilters()) -> QuerySet[MeterReading]:
    rows = MeterReading.objects.select_related("unit__fsp__operator", "intake")
    if filters.unit:
        rows = rows.filter(unit=find_unit(filters.unit, fsp=filters.fsp,
                                          operator=filters.operator))
    else:
        if filters.operator:
            rows = rows.filter(unit__fsp__operator__code=filters.operator.upper())
        if filters.fsp:
            rows = rows.filter(unit__fsp__identifier=filters.fsp)
    if filters.reading_type:
        if filters.reading_type not in readings.READING_TYPES:
            raise BadRequest(f"type must be one of {', '.join(readings.READING_TYPES)}")
        rows = rows.filter(reading_type=filters.reading_type)
    if filters.start:
        rows = rows.filter(start__gte=filters.start)
    if filters.end:
        rows = rows.filter(start__lt=filters.end)
    if not filters.history:
        rows = rows.filter(superseded_at__isnull=True)
    return rows.order_by("unit__fsp__identifier", "unit__reference", "reading_type", "start",
                         "version")


def reading_as_dict(row: MeterReading) -> dict:
    return {"fsp": row.unit.fsp.identifier, "unit": row.unit.reference,
            "type": row.reading_type, "start": iso(row.start), "end": iso(row.end),
            "value": _amount(row.value), "units": "KWH" if row.reading_type == "USAGE" else "KW",
            "quality": row.quality, "version": row.version, "receivedAt": iso(row.received_at),
            "reportID": row.intake.report_id,
            "supersededAt": iso(row.superseded_at) if row.superseded_at else None}


def intakes(*, operator: str | None = None, fsp: str | None = None,
            kind: str | None = None) -> QuerySet[ReportIntake]:
    rows = ReportIntake.objects.select_related("site__fsp__operator")
    if operator:
        rows = rows.filter(site__fsp__operator__code=operator.upper())
    if fsp:
        rows = rows.filter(site__fsp__identifier=fsp)
    if kind:
        if kind not in ReportIntake.Kind.values:
            raise BadRequest(f"kind must be one of {', '.join(ReportIntake.Kind.values)}")
        rows = rows.filter(kind=kind)
    return rows.order_by("-received_at", "-id")


def intake_as_dict(row: ReportIntake) -> dict:
    return {"site": f"{row.site.fsp.operator.code}/{row.site.fsp.identifier}/{row.site.name}",
            "kind": row.kind, "reportID": row.report_id, "receivedAt": iso(row.received_at),
            "stored": row.stored, "duplicates": row.duplicates,
            "corrections": row.corrections, "rejected": row.rejected,
            "problems": row.problems}


def find_contract(identifier: str, *, operator: str | None = None) -> Contract:
    return _one_per_operator(Contract.objects.select_related("operator", "fsp", "product").filter(
        identifier=identifier), f"contract {identifier!r}", operator)


def contracted_windows(contract: Contract, start: datetime,
                       end: datetime) -> list[tuple[datetime, datetime]]:
    """The contract's service windows clipped to [start, end); a contract without windows
    is available any time, so the whole range."""
    if not contract.service_windows:
        return [(start, end)]
    windows = []
    for window in contract.service_windows:
        left = max(start, datetime.fromisoformat(window["start"].replace("Z", "+00:00")))
        right = min(end, datetime.fromisoformat(window["end"].replace("Z", "+00:00")))
        if left < right:
            windows.append((left, right))
    return sorted(windows)


def availability(contract: Contract, start: datetime, end: datetime) -> dict:
    """What the FSP declared for the contract's units against what the contract asks for,
    over its service windows within [start, end)."""
    units = list(contract.units.order_by("reference"))
    capacities = {unit.reference: unit.capacity_kw for unit in units}
    contracted = contract.capacity_kw if contract.capacity_kw is not None \
        else sum(capacities.values(), Decimal(0))
    windows = contracted_windows(contract, start, end)
    current = AvailabilityDeclaration.objects.filter(
        unit__in=units, superseded_at__isnull=True, start__lt=end, end__gt=start)
    by_unit: dict[str, list] = {unit.reference: [] for unit in units}
    for row in current.select_related("unit"):
        by_unit[row.unit.reference].append((row.start, row.end, row.available_kw,
                                            row.declared_at))
    out_windows, hours, declared_mwh, contracted_mwh = [], Decimal(0), Decimal(0), Decimal(0)
    for left, right in windows:
        profiles = {unit: readings.declared_profile(rows, left, right)
                    for unit, rows in by_unit.items()}
        spans = readings.declared_against_contracted(profiles, capacities, contracted)
        out_windows.append({"start": iso(left), "end": iso(right), "spans": [
            {"start": iso(s.start), "end": iso(s.end), "declaredKw": _amount(s.declared_kw),
             "contractedKw": _amount(s.contracted_kw), "shortfallKw": _amount(s.shortfall_kw),
             "units": {unit: _amount(kw) for unit, kw in s.units_kw.items()}}
            for s in spans]})
        for s in spans:
            hours += s.hours
            declared_mwh += min(s.declared_kw, s.contracted_kw) * s.hours / 1000
            contracted_mwh += s.contracted_kw * s.hours / 1000
    return {
        "operator": contract.operator.code, "contract": contract.identifier,
        "fsp": contract.fsp.identifier, "product": contract.product.code,
        "from": iso(start), "to": iso(end), "contractedKw": _amount(contracted),
        "units": [{"reference": unit.reference, "capacityKw": _amount(unit.capacity_kw)}
                  for unit in units],
        "windows": out_windows,
        "summary": {
            "contractedHours": _amount(hours.quantize(Decimal("0.001"))),
            "contractedMwh": _amount(contracted_mwh.quantize(Decimal("0.001"))),
            "declaredMwh": _amount(declared_mwh.quantize(Decimal("0.001"))),
            "coverage": None if not contracted_mwh else
            _amount((declared_mwh / contracted_mwh).quantize(Decimal("0.0001")))},
    }
