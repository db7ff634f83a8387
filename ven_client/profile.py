"""The GB dispatch profile as the agent reads and answers it (pure; no I/O).

docs/gb-dispatch-profile.md sections 3-5 (events and signatures) and 7
(acknowledgements). :func:`verify_dispatch` turns a polled event into the operator's
signed document or raises :class:`Refusal`; :func:`refusal_document` says what a refusal
signs. The names, signatures and acknowledgement documents themselves are the shared
contract in :mod:`gbflex_profile`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from gbflex_profile import acks, jose
from gbflex_profile.vocabulary import (
    GB_CONTRACT,
    GB_DISPATCH_REF,
    GB_DISPATCH_UNIT,
    GB_INSTRUCTION_TIME,
    GB_NETWORK_OPERATOR,
    GB_PRODUCT,
    GB_REVISION,
    GB_SERVICE_TYPE,
    GB_SIGNATURE,
    GB_URGENCY,
    PRICE_PAYLOAD,
    PRICE_UNITS,
    PROFILE,
    SERVICE_TYPE_UNITS,
    SETPOINT_PAYLOADS,
    STATUS_PAYLOAD,
    STOPS,
    URGENCY_PRIORITY,
)


class Refusal(Exception):
    """A dispatch the agent will not act on; ``str()`` is the reason reported."""


class KeyNotFetchedYet(Exception):
    """The dispatch names a key the agent does not hold and has not been able to look up
    since (the JWKS was fetched moments ago): try the event again on a later poll rather
    than refuse a revision signed by a freshly rotated key."""


@dataclass(frozen=True)
class Claim:
    """What an event says about itself, before any verification."""

    event_id: str
    program_id: str
    operator: str
    dispatch_ref: str
    revision: int | None
    fsp: str
    unit: str
    jws: str


def payloads(interval: Mapping) -> dict[str, list]:
    """Payload values by type (the first payload of each type)."""
    found: dict[str, list] = {}
    for payload in interval.get("payloads") or []:
        found.setdefault(str(payload.get("type")), list(payload.get("values") or []))
    return found


def is_dispatch(event: Mapping) -> bool:
    """Whether ``event`` is (or claims to be) a GB dispatch."""
    intervals = event.get("intervals") or []
    if not intervals:
        return False
    first = payloads(intervals[0])
    return bool({GB_SIGNATURE, GB_DISPATCH_REF, STATUS_PAYLOAD} & set(first))


def claim(event: Mapping) -> Claim:
    """What the event's payloads claim (reference, revision, unit), for refusals too."""
    first = payloads((event.get("intervals") or [{}])[0])
    name = str(event.get("eventName") or "")
    operator, _, ref_from_name = name.partition("/")

    def one(kind: str) -> object:
        values = first.get(kind) or []
        return values[0] if values else None

    unit = first.get(GB_DISPATCH_UNIT) or []
    revision = one(GB_REVISION)
    return Claim(
        event_id=str(event.get("id") or ""), program_id=str(event.get("programID") or ""),
        operator=str(one(GB_NETWORK_OPERATOR) or operator),
        dispatch_ref=str(one(GB_DISPATCH_REF) or ref_from_name or name),
        revision=revision if isinstance(revision, int) and not isinstance(revision, bool)
        else None,
        fsp=str(unit[0]) if len(unit) > 0 else "", unit=str(unit[1]) if len(unit) > 1 else "",
        jws=str(one(GB_SIGNATURE) or ""))


def fingerprint(event: Mapping) -> str:
    """A digest of what an event says (not of server bookkeeping such as timestamps)."""
    said = {k: v for k, v in event.items()
            if k not in ("createdDateTime", "modificationDateTime", "objectType")}
    return hashlib.sha256(json.dumps(said, sort_keys=True, default=str).encode()).hexdigest()


def _instant(text: object) -> datetime:
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a time")
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return value


def _same_number(a: object, b: object) -> bool:
    numbers = (int, float)
    return (isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool)
            and not isinstance(b, bool) and float(a) == float(b))


def _duration(text: str) -> timedelta:
    """An ISO 8601 duration of days/hours/minutes/seconds (what the VTN renders)."""
    if not text.startswith("P"):
        raise ValueError(f"{text!r} is not a duration")
    days_part, _, time_part = text[1:].partition("T")
    total = timedelta()
    for part, units in ((days_part, {"W": 604800, "D": 86400}),
                        (time_part, {"H": 3600, "M": 60, "S": 1})):
        number = ""
        for char in part:
            if char.isdigit() or char == ".":
                number += char
            elif char in units and number:
                total += timedelta(seconds=float(number) * units[char])
                number = ""
            else:
                raise ValueError(f"{text!r} is not a supported duration")
        if number:
            raise ValueError(f"{text!r} is not a duration")
    return total


def verify_dispatch(event: Mapping, key_for: Callable[[str], Mapping | None], *,
                    fsp: str, units: set[str]) -> dict:
    """The signed document of a dispatch event, checked against the event.

    ``key_for(kid)`` returns the operator's public JWK with that kid (after refetching
    the JWKS once if needed) or None. Raises :class:`Refusal` with the reason when the
    event is unsigned, the signature does not verify, the document disagrees with the
    event, or the dispatch is not for one of ``units`` of FSP ``fsp``.
    """
    said = claim(event)
    if not said.jws:
        raise Refusal(f"unsigned dispatch: no {GB_SIGNATURE}")
    try:
        kid = jose.header(said.jws).get("kid")
    except jose.SignatureError as exc:
        raise Refusal(f"invalid signature: {exc}") from exc
    if not isinstance(kid, str) or not kid:
        raise Refusal("invalid signature: the JWS names no kid")
    key = key_for(kid)
    if key is None:
        raise Refusal(f"invalid signature: kid {kid!r} is not in the operator's JWKS")
    try:
        document = jose.verify(said.jws, {"keys": [key]})
    except jose.SignatureError as exc:
        raise Refusal(f"invalid signature: {exc}") from exc
    problems = document_differences(event, document, kid)
    if problems:
        raise Refusal("the event disagrees with its signed document: " + "; ".join(problems))
    if document.get("fspId") != fsp or document.get("dispatchUnit") not in units:
        raise Refusal(f"the dispatch is for {document.get('fspId')}/"
                      f"{document.get('dispatchUnit')}, not a unit of this site")
    return document


def document_differences(event: Mapping, document: Mapping, kid: str) -> list[str]:
    """Where the event's payloads and timing disagree with the signed document."""
    problems: list[str] = []
    try:
        operator = str(document["networkOperatorId"])
        ref, revision, status = document["dispatchRef"], document["revision"], document["status"]
        timings = list(document["serviceTimings"])
        service_start = _instant(document["serviceStart"])
        service_end = _instant(document["serviceEnd"])
    except (KeyError, TypeError, ValueError) as exc:
        return [f"the signed document is incomplete ({exc})"]
    if document.get("profile") != PROFILE:
        problems.append(f"unknown profile {document.get('profile')!r}")
    if not kid.lower().startswith(operator.lower() + "-"):
        problems.append(f"kid {kid!r} is not a key of operator {operator}")
    if event.get("eventName") != f"{operator}/{ref}":
        problems.append(f"eventName {event.get('eventName')!r} is not {operator}/{ref}")
    intervals = list(event.get("intervals") or [])
    if not intervals:
        return [*problems, "the event has no intervals"]
    first = payloads(intervals[0])
    expected = {GB_NETWORK_OPERATOR: [operator], GB_DISPATCH_REF: [ref],
                GB_REVISION: [revision],
                GB_DISPATCH_UNIT: [document.get("fspId"), document.get("dispatchUnit")],
                GB_CONTRACT: [document.get("contractId")],
                GB_PRODUCT: [document.get("product")], GB_URGENCY: [document.get("urgency")],
                GB_INSTRUCTION_TIME: [document.get("instructionTime")]}
    for payload_type, signed in expected.items():
        if payload_type in first and first[payload_type] != signed:
            problems.append(f"{payload_type} {first[payload_type]!r} is not {signed!r}")
        elif payload_type not in first and payload_type in (GB_DISPATCH_REF, GB_REVISION):
            problems.append(f"{payload_type} is missing")
    urgency = document.get("urgency")
    if urgency in URGENCY_PRIORITY and \
            event.get("priority") not in (None, URGENCY_PRIORITY[urgency]):
        problems.append(f"priority {event.get('priority')!r} does not match urgency {urgency}")
    period = event.get("intervalPeriod") or {}
    try:
        if _instant(period.get("start")) != service_start:
            problems.append(f"event start {period.get('start')} is not {document['serviceStart']}")
        if period.get("duration") and \
                _duration(period["duration"]) != service_end - service_start:
            problems.append(f"event duration {period.get('duration')} does not match the "
                            "service period")
    except ValueError as exc:
        problems.append(f"event period: {exc}")
    for index, interval in enumerate(intervals):
        if payloads(interval).get(STATUS_PAYLOAD) != [status]:
            problems.append(f"interval {index} instruction is not {status}")
    if status in STOPS:
        if timings:
            problems.append("a stop carries no setpoints")
        return problems
    if len(intervals) != len(timings):
        return [*problems, f"{len(intervals)} intervals for {len(timings)} service timings"]
    problems += _unit_differences(event, first, timings)
    for index, (interval, timing) in enumerate(zip(intervals, timings, strict=True)):
        values = payloads(interval)
        kind = SETPOINT_PAYLOADS.get(str(timing.get("setpointType")))
        start = (interval.get("intervalPeriod") or {}).get("start")
        try:
            if _instant(start) != _instant(timing.get("setpointTime")):
                problems.append(f"interval {index} starts {start}, signed "
                                f"{timing.get('setpointTime')}")
        except ValueError as exc:
            problems.append(f"interval {index}: {exc}")
        if kind is None or len(values.get(kind) or []) != 1 or \
                not _same_number(values[kind][0], timing.get("volume")):
            problems.append(f"interval {index} setpoint differs from the signed "
                            f"{timing.get('setpointType')} {timing.get('volume')}")
        other = [k for k in SETPOINT_PAYLOADS.values() if k != kind and k in values]
        if other:
            problems.append(f"interval {index} carries {other[0]} not in the signed document")
        if "pricePerUnit" in timing and PRICE_PAYLOAD in values and \
                not _same_number(values[PRICE_PAYLOAD][0], timing["pricePerUnit"]):
            problems.append(f"interval {index} price differs from the signed one")
    return problems


def _unit_differences(event: Mapping, first: Mapping, timings: list) -> list[str]:
    """Real (kW) or reactive (kVAr) power: the signed timings name one service type, their
    units are that type's, and the event's GB_SERVICE_TYPE and payload descriptors say
    the same, so a kVAr setpoint is never taken for kW."""
    problems: list[str] = []
    services = {str(t.get("serviceType")) for t in timings}
    if len(services) != 1 or next(iter(services)) not in SERVICE_TYPE_UNITS:
        return [f"the signed service types {sorted(services)} are not one of "
                f"{', '.join(SERVICE_TYPE_UNITS)}"]
    service = next(iter(services))
    units = SERVICE_TYPE_UNITS[service]
    for index, timing in enumerate(timings):
        if timing.get("units") != units:
            problems.append(f"service timing {index} is {timing.get('units')}, not the "
                            f"{units} of {service} power")
        if "pricePerUnit" in timing and timing.get("priceUnits") != PRICE_UNITS[service]:
            problems.append(f"service timing {index} is priced per {timing.get('priceUnits')}, "
                            f"not per {PRICE_UNITS[service]}")
    if GB_SERVICE_TYPE in first and first[GB_SERVICE_TYPE] != [service]:
        problems.append(f"{GB_SERVICE_TYPE} {first[GB_SERVICE_TYPE]!r} is not [{service!r}]")
    for descriptor in event.get("payloadDescriptors") or []:
        kind = descriptor.get("payloadType")
        if kind in SETPOINT_PAYLOADS.values() and descriptor.get("units") not in (None, units):
            problems.append(f"{kind} is described in {descriptor.get('units')}, signed in "
                            f"{units}")
    return problems


# -- refusals ----------------------------------------------------------------------------


def refusal_document(said: Claim, *, fsp: str, unit: str, reason: str) -> dict:
    """What a REFUSED acknowledgement signs: the claims of the refused event."""
    return acks.refusal(dispatch_ref=said.dispatch_ref, fsp=said.fsp or fsp,
                        unit=said.unit or unit, revision=said.revision, reason=reason)
