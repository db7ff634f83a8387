"""The GB dispatch profile's OpenADR mapping (pure, no ORM).

Builds OpenADR 3.1 request bodies (programs and events) from a product and from the
signed Appendix A document of a revision. The VTN stores one model and renders it in
both versions, so the same event reads correctly through /openadr3/3.1.0 and
/openadr3/3.0.1. The mapping is documented field by field in docs/gb-dispatch-profile.md.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from dispatch.rules import iso
from gbflex_profile.vocabulary import (
    EVENT_DESCRIPTOR,
    GB_AVAILABILITY_PAID,
    GB_CONTRACT,
    GB_DISPATCH_REF,
    GB_DISPATCH_UNIT,
    GB_HEARTBEAT_INTERVAL,
    GB_INSTRUCTION_TIME,
    GB_NETWORK_OPERATOR,
    GB_NOTICE_PERIOD,
    GB_PRODUCT,
    GB_QUANTITY,
    GB_RAMP_TIME,
    GB_REVISION,
    GB_SERVICE_TYPE,
    GB_SETPOINT_TYPES,
    GB_SIGNATURE,
    GB_URGENCY,
    PRICE_PAYLOAD,
    SETPOINT_PAYLOADS,
    STATUS_PAYLOAD,
    URGENCY_PRIORITY,
)


def duration(value: timedelta) -> str:
    """ISO 8601 duration in whole seconds (PT0S, PT15M, PT1H30M, P7D)."""
    seconds = int(value.total_seconds())
    if seconds and seconds % 86400 == 0:
        return f"P{seconds // 86400}D"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = "PT" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "") \
        + (f"{secs}S" if secs or not (hours or minutes) else "")
    return text


def program_name(operator: str, product_code: str) -> str:
    return f"GB-{operator}-{product_code}"


def program_body(*, operator: str, product_code: str, notice_period: timedelta,
                 ramp_time: timedelta, quantity: str, setpoint_types: list[str],
                 heartbeat_interval: timedelta | None, availability_paid: bool) -> dict:
    """OpenADR 3.1 programRequest of one operator's product (untargeted: every VEN may
    read the product's rules; its dispatch events are targeted)."""
    attributes = [
        {"type": GB_PRODUCT, "values": [product_code]},
        {"type": GB_NETWORK_OPERATOR, "values": [operator]},
        {"type": GB_NOTICE_PERIOD, "values": [duration(notice_period)]},
        {"type": GB_RAMP_TIME, "values": [duration(ramp_time)]},
        {"type": GB_QUANTITY, "values": [quantity.upper()]},
        {"type": GB_SETPOINT_TYPES, "values": [s.upper() for s in setpoint_types]},
        {"type": GB_HEARTBEAT_INTERVAL,
         "values": [duration(heartbeat_interval)] if heartbeat_interval else ["NONE"]},
        {"type": GB_AVAILABILITY_PAID, "values": [bool(availability_paid)]},
    ]
    return {"programName": program_name(operator, product_code), "attributes": attributes}


def event_name(document: dict) -> str:
    return f"{document['networkOperatorId']}/{document['dispatchRef']}"


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def event_body(document: dict, signature: str, *, program_id: str,
               targets: list[str]) -> dict:
    """OpenADR 3.1 eventRequest for one revision (``document`` as signed).

    Interval i carries service timing i: from its setpoint time until the next setpoint
    (or the service end). Every interval carries the status; interval 0 also carries
    the profile payloads, including the signature. A stop or emergency stop has one
    interval spanning the whole service period with the status and the profile payloads.
    """
    start, end = _at(document["serviceStart"]), _at(document["serviceEnd"])
    status = document["status"]
    timings = document["serviceTimings"]
    header = [
        {"type": GB_NETWORK_OPERATOR, "values": [document["networkOperatorId"]]},
        {"type": GB_DISPATCH_REF, "values": [document["dispatchRef"]]},
        {"type": GB_REVISION, "values": [document["revision"]]},
        {"type": GB_DISPATCH_UNIT, "values": [document["fspId"], document["dispatchUnit"]]},
        {"type": GB_CONTRACT, "values": [document["contractId"]]},
        {"type": GB_PRODUCT, "values": [document["product"]]},
        {"type": GB_URGENCY, "values": [document["urgency"]]},
        {"type": GB_INSTRUCTION_TIME, "values": [document["instructionTime"]]},
    ]
    descriptors: list[dict] = []
    intervals: list[dict] = []
    if timings:
        header.append({"type": GB_SERVICE_TYPE, "values": [timings[0]["serviceType"]]})
        seen: set[str] = set()
        for timing in timings:
            payload_type = SETPOINT_PAYLOADS[timing["setpointType"]]
            if payload_type not in seen:
                seen.add(payload_type)
                descriptors.append({"objectType": EVENT_DESCRIPTOR, "payloadType": payload_type,
                                    "units": timing["units"]})
        priced = next((t for t in timings if "pricePerUnit" in t), None)
        if priced is not None:  # one service type per dispatch: one price unit
            descriptors.append({"objectType": EVENT_DESCRIPTOR, "payloadType": PRICE_PAYLOAD,
                                "units": priced.get("priceUnits", "KWH"), "currency": "GBP"})
        for index, timing in enumerate(timings):
            begins = _at(timing["setpointTime"])
            ends = _at(timings[index + 1]["setpointTime"]) if index + 1 < len(timings) else end
            payloads = [{"type": SETPOINT_PAYLOADS[timing["setpointType"]],
                         "values": [timing["volume"]]},
                        {"type": STATUS_PAYLOAD, "values": [status]}]
            if "pricePerUnit" in timing:
                payloads.append({"type": PRICE_PAYLOAD, "values": [timing["pricePerUnit"]]})
            intervals.append({"id": index,
                              "intervalPeriod": {"start": iso(begins),
                                                 "duration": duration(ends - begins)},
                              "payloads": payloads})
    else:
        intervals.append({"id": 0, "payloads": [{"type": STATUS_PAYLOAD, "values": [status]}]})
    intervals[0]["payloads"] += [*header, {"type": GB_SIGNATURE, "values": [signature]}]
    body = {
        "programID": program_id,
        "eventName": event_name(document),
        "priority": URGENCY_PRIORITY[document["urgency"]],
        "targets": targets,
        "intervalPeriod": {"start": iso(start), "duration": duration(end - start)},
        "intervals": intervals,
    }
    if descriptors:
        body["payloadDescriptors"] = descriptors
    return body
