"""The FSP's standing report events: where a site's VEN sends what is not about one
dispatch (docs/gb-dispatch-profile.md, sections 9-11).

Per operator, one untargeted program per kind (``GB-<OP>-HEARTBEAT``,
``GB-<OP>-AVAILABILITY``, ``GB-<OP>-METERING``); per FSP, one event in each, named
``<program name>/<fspId>`` and targeted at the FSP, so only the FSP's VENs see it. They
are created at onboarding and never change.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from dispatch import publishing, registry
from dispatch.models import NetworkOperator
from gbflex_profile.vocabulary import (
    AVAILABILITY,
    BASELINE,
    DEMAND,
    GB_AVAILABILITY,
    GB_AVAILABLE_KW,
    GB_HEARTBEAT,
    GB_METERING,
    GB_NETWORK_OPERATOR,
    GB_REACTIVE,
    HEARTBEAT,
    METERING,
    OPERATING_STATE,
    USAGE,
)
from vtn.models import Event, Program


@dataclass(frozen=True)
class EventKind:
    name: str
    payload: str  # the interval payload type telling a generic client what the event is for
    report_descriptors: tuple[dict, ...]  # what the VTN asks the VEN to report


KINDS = {
    HEARTBEAT: EventKind(HEARTBEAT, GB_HEARTBEAT, (
        {"payloadType": OPERATING_STATE},
        {"payloadType": GB_AVAILABLE_KW, "units": "KW"})),
    AVAILABILITY: EventKind(AVAILABILITY, GB_AVAILABILITY, (
        {"payloadType": GB_AVAILABLE_KW, "readingType": "FORECAST", "units": "KW"},)),
    METERING: EventKind(METERING, GB_METERING, (
        {"payloadType": USAGE, "readingType": "DIRECT_READ", "units": "KWH"},
        {"payloadType": DEMAND, "readingType": "MEAN", "units": "KW"},
        {"payloadType": BASELINE, "readingType": "FORECAST", "units": "KW"},
        {"payloadType": GB_REACTIVE, "readingType": "DIRECT_READ", "units": "KVARH"})),
}


def program_name(operator: str, kind: str) -> str:
    return f"GB-{operator}-{kind}"


def event_name(operator: str, kind: str, fsp: str) -> str:
    return f"{program_name(operator, kind)}/{fsp}"


@transaction.atomic
def ensure_event(operator: NetworkOperator, fsp: str, kind: str) -> Event:
    """The FSP's event of ``kind`` in the operator's program of that kind; both created
    once (idempotent)."""
    spec = KINDS[kind]
    name = program_name(operator.code, kind)
    program = Program.objects.filter(program_name=name).first()
    if program is None:
        program = publishing.save_program({
            "programName": name,
            "attributes": [{"type": GB_NETWORK_OPERATOR, "values": [operator.code]}]},
            operator=operator.code)
    existing = Event.objects.filter(program=program,
                                    event_name=event_name(operator.code, kind, fsp)).first()
    if existing is not None:
        return existing
    return publishing.save_event({
        "programID": program.pk, "eventName": event_name(operator.code, kind, fsp),
        "targets": [registry.fsp_label(operator.code, fsp)],
        "reportDescriptors": [dict(d) for d in spec.report_descriptors],
        "intervals": [{"id": 0, "payloads": [{"type": spec.payload,
                                              "values": ["REPORT_ON_THIS_EVENT"]}]}]})


def ensure_events(operator: NetworkOperator, fsp: str) -> dict[str, Event]:
    """All of the FSP's standing events, by kind."""
    return {kind: ensure_event(operator, fsp, kind) for kind in KINDS}


def kind_of(event: Event) -> str | None:
    """HEARTBEAT, AVAILABILITY or METERING when ``event`` is an FSP's standing event."""
    name, program = event.event_name or "", event.program.program_name or ""
    if not (program.startswith("GB-") and name.startswith(program + "/")):
        return None
    kind = program.rsplit("-", 1)[-1]
    return kind if kind in KINDS else None
