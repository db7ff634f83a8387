"""Where an incoming OpenADR report goes. A report is classified once, by the event it
is on, and handed to the one handler of its kind:

- on a dispatch's event: acknowledgements (``acknowledgements.record_acknowledgements``);
- on the FSP's standing heartbeat event: a heartbeat (``comms.record_heartbeat``);
- on the availability event: declarations (``intake.record_declarations``);
- on the metering event: meter readings (``intake.record_readings``).

Any other report is not the profile's business and is left alone.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from enum import StrEnum

from dispatch import acknowledgements, comms, fsp_events, intake
from dispatch.models import DispatchInstruction
from vtn.models import Report


class ReportKind(StrEnum):
    ACKNOWLEDGEMENT = "acknowledgement"
    HEARTBEAT = "heartbeat"
    AVAILABILITY = "availability"
    METERING = "metering"


_STANDING_KINDS = {
    fsp_events.HEARTBEAT: ReportKind.HEARTBEAT,
    fsp_events.AVAILABILITY: ReportKind.AVAILABILITY,
    fsp_events.METERING: ReportKind.METERING,
}

HANDLERS: dict[ReportKind, Callable[..., object]] = {
    ReportKind.ACKNOWLEDGEMENT: acknowledgements.record_acknowledgements,
    ReportKind.HEARTBEAT: comms.record_heartbeat,
    ReportKind.AVAILABILITY: intake.record_declarations,
    ReportKind.METERING: intake.record_readings,
}


def classify(report: Report) -> ReportKind | None:
    """What ``report`` is to the profile, from the event it is on; None: nothing."""
    if report.event_id is None:
        return None
    standing = fsp_events.kind_of(report.event)
    if standing is not None:
        return _STANDING_KINDS[standing]
    if DispatchInstruction.objects.filter(event_id=report.event_id).exists():
        return ReportKind.ACKNOWLEDGEMENT
    return None


def route(report: Report, *, now: datetime | None = None) -> tuple[ReportKind | None, object]:
    """Classify ``report`` and record it with its kind's handler: the kind and what the
    handler returned (None when the report is not the profile's business)."""
    kind = classify(report)
    if kind is None:
        return None, None
    return kind, HANDLERS[kind](report, now=now)
