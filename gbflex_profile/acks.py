"""Acknowledgements of the GB dispatch profile: the read-back document an FSP signs and
the report payloads that carry it (docs/gb-dispatch-profile.md, section 7).

An acknowledgement is one report interval on the dispatch's event whose payloads carry
``GB_ACK_STAGE``. Its payloads read the dispatch back as the FSP understood it, and
``GB_ACK_JWS`` is the FSP's compact JWS over the RFC 8785 canonical JSON of exactly that
read-back (:func:`claim_document`). The agent builds it with :func:`read_back` and
:func:`ack_payloads`; the VTN reads it with :func:`parse_claim` and compares it with the
revision it names (:func:`read_back_differences`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from gbflex_profile import jose
from gbflex_profile.report_signing import parse_utc, utc_text
from gbflex_profile.vocabulary import (
    ACTIONED,
    ACTIONED_OUTCOMES,
    GB_ACK_JWS,
    GB_ACK_OUTCOME,
    GB_ACK_REASON,
    GB_ACK_SETPOINTS,
    GB_ACK_STAGE,
    GB_ACK_STATUS,
    GB_DISPATCH_REF,
    GB_DISPATCH_UNIT,
    GB_REVISION,
    GB_SIGNED_AT,
    RECEIVED,
    REFUSED,
    SETPOINT_FIELDS,
    STAGES,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


class AckFormatError(ValueError):
    """The interval does not read back a dispatch in the profile's form."""


@dataclass(frozen=True)
class AckClaim:
    """What one acknowledgement interval says."""

    stage: str  # RECEIVED, ACTIONED or REFUSED
    jws: str  # "" when absent
    read_back: dict  # the fields read back, as signed
    outcome: str = ""  # ACTIONED: ACCEPTED or FAILED
    reason: str = ""
    problems: list[str] = field(default_factory=list)  # format problems of the read-back

    @property
    def revision(self) -> int | None:
        value = self.read_back.get("revision")
        return value if isinstance(value, int) and not isinstance(value, bool) else None


def ack_intervals(resources: Iterable[Mapping]) -> list[list[Mapping]]:
    """The payload lists of every report interval that carries ``GB_ACK_STAGE``."""
    found = []
    for resource in resources or []:
        for interval in resource.get("intervals") or []:
            payloads = interval.get("payloads") or []
            if any(p.get("type") == GB_ACK_STAGE for p in payloads):
                found.append(payloads)
    return found


def _number(value: object) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AckFormatError(f"{value!r} is not a number")
    return int(value) if float(value).is_integer() else float(value)


def claim_document(*, stage: str, status: str, dispatch_ref: str, fsp: str, unit: str,
                   revision: object, setpoints: list[dict], outcome: str = "",
                   reason: str = "", signed_at: str = "") -> dict:
    """The document an FSP signs for one acknowledgement (the canonical read-back). A
    REFUSED one has no ``status`` and no ``setpoints``: the agent did not trust them.
    ``signed_at`` (UTC ``...Z``, :func:`gbflex_profile.report_signing.utc_text`) is when
    the FSP signed; :func:`ack_payloads` stamps it."""
    document: dict[str, object] = {"stage": stage, "dispatchRef": dispatch_ref, "fspId": fsp,
                "dispatchUnit": unit, "revision": revision}
    if stage != REFUSED:
        document |= {"status": status, "setpoints": setpoints}
    if outcome:
        document["outcome"] = outcome
    if reason:
        document["reason"] = reason
    if signed_at:
        document["signedAt"] = signed_at
    return document


def parse_claim(payloads: list[Mapping]) -> AckClaim:
    """Read an acknowledgement interval. Never raises: format problems are listed."""
    values: dict[str, list] = {}
    for payload in payloads:
        values.setdefault(str(payload.get("type")), list(payload.get("values") or []))
    problems: list[str] = []

    def one(name: str, *, required: bool = True) -> object:
        got = values.get(name)
        if got is None:
            if required:
                problems.append(f"{name} is missing")
            return None
        if len(got) != 1:
            problems.append(f"{name} has {len(got)} values, not 1")
            return None
        return got[0]

    stage = str(one(GB_ACK_STAGE) or "").upper()
    if stage not in STAGES:
        problems.append(f"{GB_ACK_STAGE} must be one of {', '.join(STAGES)}")
    outcome = str(one(GB_ACK_OUTCOME, required=stage == ACTIONED) or "").upper()
    if stage == ACTIONED and outcome not in ACTIONED_OUTCOMES:
        problems.append(f"{GB_ACK_OUTCOME} must be one of {', '.join(ACTIONED_OUTCOMES)}")
    if stage == RECEIVED and outcome:
        problems.append(f"a RECEIVED acknowledgement carries no {GB_ACK_OUTCOME}")
    reason = str(one(GB_ACK_REASON, required=stage == REFUSED) or "")
    if stage == REFUSED:
        for name in (GB_ACK_STATUS, GB_ACK_SETPOINTS, GB_ACK_OUTCOME):
            if name in values:
                problems.append(f"a REFUSED acknowledgement carries no {name}")
    jws = one(GB_ACK_JWS)
    unit = values.get(GB_DISPATCH_UNIT) or []
    if len(unit) != 2:
        problems.append(f"{GB_DISPATCH_UNIT} must be [fspId, unit reference]")
        unit = ["", ""]
    flat = values.get(GB_ACK_SETPOINTS, [])
    setpoints: list[dict] = []
    if len(flat) % len(SETPOINT_FIELDS):
        problems.append(f"{GB_ACK_SETPOINTS} holds groups of {len(SETPOINT_FIELDS)} values")
    else:
        for start in range(0, len(flat), len(SETPOINT_FIELDS)):
            point = dict(zip(SETPOINT_FIELDS, flat[start:start + len(SETPOINT_FIELDS)],
                             strict=True))
            try:
                point["volume"] = _number(point["volume"])
            except AckFormatError as exc:
                problems.append(f"{GB_ACK_SETPOINTS}: {exc}")
            setpoints.append(point)
    signed_at = one(GB_SIGNED_AT, required=False)
    if signed_at is not None:
        try:
            parse_utc(signed_at)
        except ValueError as exc:
            problems.append(f"{GB_SIGNED_AT}: {exc}")
    revision = one(GB_REVISION)
    if revision is not None and (isinstance(revision, bool) or not isinstance(revision, int)):
        problems.append(f"{GB_REVISION} must be an integer")
    read_back = claim_document(
        stage=stage, status=str(one(GB_ACK_STATUS, required=stage != REFUSED) or ""),
        dispatch_ref=str(one(GB_DISPATCH_REF) or ""), fsp=str(unit[0]), unit=str(unit[1]),
        revision=revision, setpoints=setpoints, outcome=outcome, reason=reason,
        signed_at=signed_at if isinstance(signed_at, str) else "")
    return AckClaim(stage=stage, jws=jws if isinstance(jws, str) else "", read_back=read_back,
                    outcome=outcome, reason=reason, problems=problems)


def expected_read_back(document: Mapping) -> dict:
    """The read-back fields of a signed revision document (without stage and outcome)."""
    return {"status": document["status"], "dispatchRef": document["dispatchRef"],
            "fspId": document["fspId"], "dispatchUnit": document["dispatchUnit"],
            "revision": document["revision"],
            "setpoints": [{name: timing[name] for name in SETPOINT_FIELDS}
                          for timing in document.get("serviceTimings") or []]}


def read_back(document: Mapping, *, stage: str, outcome: str = "", reason: str = "") -> dict:
    """What an FSP signs to acknowledge the revision whose signed document is
    ``document``: RECEIVED, or ACTIONED with an outcome (and a reason when it FAILED)."""
    expected = expected_read_back(document)
    return claim_document(stage=stage, status=expected["status"],
                          dispatch_ref=expected["dispatchRef"], fsp=expected["fspId"],
                          unit=expected["dispatchUnit"], revision=expected["revision"],
                          setpoints=expected["setpoints"], outcome=outcome, reason=reason)


def refusal(*, dispatch_ref: str, fsp: str, unit: str, revision: int | None,
            reason: str) -> dict:
    """What an FSP signs to refuse a revision it will not act on: only what identifies the
    revision as the event claimed it, and why."""
    return claim_document(stage=REFUSED, status="", dispatch_ref=dispatch_ref, fsp=fsp,
                          unit=unit, revision=revision, setpoints=[], reason=reason)


def read_back_differences(claimed: Mapping, document: Mapping) -> list[str]:
    """Where a read-back differs from the revision document it names (a REFUSED one is
    compared on what identifies the revision only)."""
    expected = expected_read_back(document)
    if claimed.get("stage") == REFUSED:
        expected = {name: expected[name] for name in
                    ("dispatchRef", "fspId", "dispatchUnit", "revision")}
    differences = [f"{name}: read back {claimed.get(name)!r}, issued {value!r}"
                   for name, value in expected.items()
                   if name != "setpoints" and claimed.get(name) != value]
    if "setpoints" in expected and claimed.get("setpoints") != expected["setpoints"]:
        differences.append(f"setpoints: read back {claimed.get('setpoints')!r}, issued "
                           f"{expected['setpoints']!r}")
    return differences


def payloads_for(document: Mapping, jws: str) -> list[dict]:
    """The report payloads of an acknowledgement whose signed document is ``document`` and
    whose JWS over it is ``jws`` (the one encoding; :func:`ack_payloads` signs too)."""
    payloads = [{"type": GB_ACK_STAGE, "values": [document["stage"]]}]
    if document.get("outcome"):
        payloads.append({"type": GB_ACK_OUTCOME, "values": [document["outcome"]]})
    if document.get("reason"):
        payloads.append({"type": GB_ACK_REASON, "values": [document["reason"]]})
    if document.get("signedAt"):
        payloads.append({"type": GB_SIGNED_AT, "values": [document["signedAt"]]})
    if "status" in document:
        payloads.append({"type": GB_ACK_STATUS, "values": [document["status"]]})
    payloads += [
        {"type": GB_DISPATCH_REF, "values": [document["dispatchRef"]]},
        {"type": GB_DISPATCH_UNIT, "values": [document["fspId"], document["dispatchUnit"]]},
        {"type": GB_REVISION, "values": [document["revision"]]},
    ]
    if document.get("setpoints"):  # a stop has none, a refusal does not read them back
        payloads.append({"type": GB_ACK_SETPOINTS, "values": [
            point[name] for point in document["setpoints"] for name in SETPOINT_FIELDS]})
    return [*payloads, {"type": GB_ACK_JWS, "values": [jws]}]


def ack_payloads(document: Mapping, key: Ed25519PrivateKey, kid: str, *,
                 signed_at: datetime | None = None) -> list[dict]:
    """The payloads of one acknowledgement interval: ``document`` (from :func:`read_back`
    or :func:`refusal`) stamped with ``signedAt`` (now, or ``signed_at``) and signed with
    the site's key ``kid``."""
    stamped = {**document, "signedAt": utc_text(signed_at or datetime.now(UTC))}
    return payloads_for(stamped, jose.sign(stamped, key, kid))
