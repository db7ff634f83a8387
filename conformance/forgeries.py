"""Forged dispatches for the forged-dispatch scenario: what someone who can write events
on the VTN, but does not hold the operator's signing key, could publish to a site.

A forgery copies a real dispatch's event, claims a newer revision with a doubled first
setpoint and keeps the real signature, which therefore signs something else. A VEN must
refuse it (a REFUSED acknowledgement report on the forged event) and never act on it.
Reports on a forged event are not acknowledgements of any dispatch, so they are read
here straight from the event's reports.
"""

from __future__ import annotations

import secrets

from dispatch.identity import PROFILE_CALLER
from dispatch.models import DispatchInstruction
from gbflex_profile.vocabulary import (
    GB_ACK_STAGE,
    GB_REVISION,
    SETPOINT_PAYLOADS,
)
from vtn import services as vtn_services
from vtn.models import Event, Report
from vtn.wire.v31 import Wire31

_WIRE = Wire31()
_SETPOINTS = set(SETPOINT_PAYLOADS.values())


def forge(dispatch: DispatchInstruction) -> Event:
    """A tampered copy of ``dispatch``'s event: revision one higher, the first setpoint
    doubled, the original signature kept; targeted at the same VEN."""
    dispatch.refresh_from_db()
    if dispatch.event is None:
        raise ValueError(f"dispatch {dispatch.reference} was not published as an event")
    body = _WIRE.event_out(dispatch.event, None)
    intervals = body["intervals"]
    for payload in intervals[0]["payloads"]:
        if payload["type"] == GB_REVISION:
            payload["values"] = [dispatch.revision + 1]
    for interval in intervals:
        doubled = False
        for payload in interval["payloads"]:
            if payload["type"] in _SETPOINTS and payload["values"] and not doubled:
                payload["values"] = [payload["values"][0] * 2]
                doubled = True
        if doubled:
            break
    data = {name: body[name] for name in ("programID", "priority", "targets",
                                          "intervalPeriod", "payloadDescriptors", "intervals")
            if body.get(name) is not None}
    data["eventName"] = f"{dispatch.event.event_name}-{secrets.token_hex(3)}"
    return vtn_services.save_event(caller=PROFILE_CALLER, data=_WIRE.event_in(data))


def stages_reported(event: Event, client_id: str) -> list[str]:
    """The acknowledgement stages (RECEIVED, ACTIONED, REFUSED) the VEN ``client_id``
    reported on ``event``, in the order received."""
    found = []
    for report in Report.objects.filter(event=event, client_id=client_id).order_by("created"):
        for resource in report.resources or []:
            for interval in resource.get("intervals") or []:
                for payload in interval.get("payloads") or []:
                    if payload.get("type") == GB_ACK_STAGE and payload.get("values"):
                        found.append(str(payload["values"][0]).upper())
    return found


def withdraw(event: Event) -> None:
    vtn_services.delete_event(caller=PROFILE_CALLER, event=event)
