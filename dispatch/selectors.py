"""Every read of the dispatch app with rules: lookups that report clearly, filters, the
published JWKS, and the JSON shape of a dispatch (shared by the API and the commands)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q, QuerySet
from django.utils import timezone

from dispatch.models import (
    Acknowledgement,
    DispatchInstruction,
    DispatchRevision,
    DispatchUnit,
    FspSite,
    SigningKey,
    SiteSigningKey,
)
from dispatch.rules import iso
from vtn.api.problems import BadRequest, NotFound


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


def find_dispatch(reference: str, *, operator: str | None = None) -> DispatchInstruction:
    """A dispatch by its NO dispatch reference (``operator`` narrows an ambiguous one)."""
    dispatches = DispatchInstruction.objects.select_related(
        "operator", "contract__product", "unit__fsp", "unit__site").filter(reference=reference)
    if operator:
        dispatches = dispatches.filter(operator__code=operator.upper())
    found = list(dispatches[:2])
    if not found:
        raise NotFound(f"no dispatch {reference!r}" + (f" of {operator}" if operator else ""))
    if len(found) > 1:
        raise BadRequest(f"dispatch reference {reference!r} is used by several operators; "
                         "name the operator")
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
    """When each stage was first accepted (null: not yet), and the actioned result."""
    state: dict = {"received": None, "actioned": None, "actionedResult": None}
    for ack in acks:
        if ack.outcome == Acknowledgement.Outcome.ACCEPTED and state.get(ack.stage) is None:
            state[ack.stage] = iso(ack.received_at)
            if ack.stage == Acknowledgement.Stage.ACTIONED:
                state["actionedResult"] = ack.result
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
        "programID": dispatch.event.program_id if dispatch.event_id else None,
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
    from dispatch.comms import sites_with_intervals

    return sites_with_intervals().order_by("fsp__operator__code", "fsp__identifier", "name")


def site_as_dict(site: FspSite, *, transitions: int = 20) -> dict:
    """A site with its comms state, heartbeat interval (``site.interval`` when annotated
    by :func:`sites`), units with their last reported state, and latest transitions."""
    interval = getattr(site, "interval", None)
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
