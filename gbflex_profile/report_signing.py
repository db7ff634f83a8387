"""Signed availability declarations and meter readings (docs/gb-dispatch-profile.md,
section 12): what a site signs when it reports on its availability or metering event,
where the signature travels, and how the VTN checks it.

A signed report carries its units' resources as always, plus one resource named
``GB_REPORT_SIGNATURE`` whose one interval holds one payload ``GB_REPORT_JWS``: the site's
compact JWS (:mod:`gbflex_profile.jose`) over the RFC 8785 canonical JSON of the report's
**statement**::

    {"kind": "AVAILABILITY" | "METERING",
     "fspId": "<the FSP>",
     "signedAt": "<UTC, ...Z>",
     "payloadDescriptors": [{"payloadType", "readingType", "units"} of each descriptor],
     "resources": [every other resource of the report, exactly as sent]}

Signing the resources as sent (rather than a summary of them) leaves nothing of what was
declared or read outside the signature, and both sides build the statement with
:func:`statement`, so they cannot disagree on its form. The agent signs with
:func:`sign_report`; the VTN checks with :func:`verify_report`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from gbflex_profile import jose
from gbflex_profile.canonical import CanonicalizationError, canonical_json
from gbflex_profile.vocabulary import (
    AVAILABILITY,
    GB_REPORT_JWS,
    GB_REPORT_SIGNATURE,
    METERING,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

KINDS = (AVAILABILITY, METERING)
STATEMENT_MEMBERS = ("kind", "fspId", "signedAt", "payloadDescriptors", "resources")
DESCRIPTOR_MEMBERS = ("payloadType", "readingType", "units")
# How far a signer's clock may run ahead of the VTN's: a ``signedAt`` later than this
# after the document arrives is refused.
SIGNED_AT_TOLERANCE = timedelta(minutes=5)


class ReportSignatureError(ValueError):
    """A report whose signature is malformed, does not verify, or does not sign exactly
    what the report says."""


class UnsignedReport(ReportSignatureError):
    """A report without a ``GB_REPORT_SIGNATURE`` resource."""


@dataclass(frozen=True)
class SignedReport:
    """A verified report signature."""

    jws: str
    kid: str
    statement: dict  # what the JWS signs

    @property
    def signed_at(self) -> datetime:
        return parse_utc(self.statement["signedAt"])


def _same_json(signed: object, sent: object) -> bool:
    """Whether two JSON values are the same document (compared in canonical form, so that
    ``true`` is not ``1`` and ``1.0`` is ``1``)."""
    try:
        return canonical_json(signed) == canonical_json(sent)
    except CanonicalizationError:
        return False


# -- times ------------------------------------------------------------------------------------


def utc_text(moment: datetime) -> str:
    """``signedAt`` as the profile writes it: UTC to the second, ``...Z``."""
    if moment.tzinfo is None:
        raise ValueError("signedAt must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_utc(text: object) -> datetime:
    """The moment a ``signedAt`` names; ValueError unless it is ``YYYY-MM-DDTHH:MM:SSZ``."""
    if not isinstance(text, str) or len(text) != 20 or not text.endswith("Z"):
        raise ValueError(f"signedAt {text!r} is not a UTC time YYYY-MM-DDTHH:MM:SSZ")
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError as exc:
        raise ValueError(f"signedAt {text!r} is not a UTC time YYYY-MM-DDTHH:MM:SSZ") from exc


# -- the statement ----------------------------------------------------------------------------


def _is_signature(resource: object) -> bool:
    return isinstance(resource, Mapping) and resource.get("resourceName") == GB_REPORT_SIGNATURE


def content_resources(resources: Sequence | None) -> list:
    """The resources of a report without its signature resource: what is declared or read."""
    return [resource for resource in resources or [] if not _is_signature(resource)]


def report_jws(resources: Sequence | None) -> str | None:
    """The compact JWS a report carries, or None when it has no signature resource.
    :class:`ReportSignatureError` when the signature resource is not in the profile's form
    (more than one, or not one interval with one ``GB_REPORT_JWS`` of one string)."""
    found = [resource for resource in resources or [] if _is_signature(resource)]
    if not found:
        return None
    if len(found) > 1:
        raise ReportSignatureError(f"the report has {len(found)} {GB_REPORT_SIGNATURE} "
                                   "resources, not 1")
    intervals = found[0].get("intervals") or []
    payloads = intervals[0].get("payloads") or [] if len(intervals) == 1 else []
    if len(intervals) != 1 or len(payloads) != 1 or payloads[0].get("type") != GB_REPORT_JWS:
        raise ReportSignatureError(f"the {GB_REPORT_SIGNATURE} resource must hold one "
                                   f"interval with one {GB_REPORT_JWS} payload")
    values = payloads[0].get("values") or []
    if len(values) != 1 or not isinstance(values[0], str):
        raise ReportSignatureError(f"{GB_REPORT_JWS} must hold one compact JWS")
    return values[0]


def signed_descriptors(descriptors: Sequence | None) -> list[dict]:
    """The members of the report's payload descriptors that change what a value means
    (its payload type, reading type and units), in the report's order."""
    return [{name: descriptor[name] for name in DESCRIPTOR_MEMBERS
             if descriptor.get(name) is not None}
            for descriptor in descriptors or [] if isinstance(descriptor, Mapping)]


def statement(*, kind: str, fsp: str, signed_at: str, resources: Sequence | None,
              payload_descriptors: Sequence | None) -> dict:
    """The document a site signs for a report on its ``kind`` (AVAILABILITY or METERING)
    event: the report's resources (without the signature) and descriptors, who and when."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}")
    return {"kind": kind, "fspId": fsp, "signedAt": signed_at,
            "payloadDescriptors": signed_descriptors(payload_descriptors),
            "resources": content_resources(resources)}


def signature_resource(jws: str) -> dict:
    return {"resourceName": GB_REPORT_SIGNATURE,
            "intervals": [{"id": 0, "payloads": [{"type": GB_REPORT_JWS, "values": [jws]}]}]}


def sign_report(body: Mapping, *, kind: str, fsp: str, key: Ed25519PrivateKey, kid: str,
                signed_at: datetime | None = None) -> dict:
    """``body`` (a report body or its resources and descriptors) with the site's signature
    resource appended, signed now (or at ``signed_at``) with key ``kid``. A signature
    already there is replaced."""
    document = statement(kind=kind, fsp=fsp,
                         signed_at=utc_text(signed_at or datetime.now(UTC)),
                         resources=body.get("resources"),
                         payload_descriptors=body.get("payloadDescriptors"))
    return {**body, "resources": [*document["resources"],
                                  signature_resource(jose.sign(document, key, kid))]}


def verify_report(*, kind: str, fsp: str, resources: Sequence | None,
                  payload_descriptors: Sequence | None, jwks: Mapping,
                  now: datetime | None = None) -> SignedReport:
    """The verified signature of a report on the ``kind`` event of FSP ``fsp``, checked
    against the site's keys ``jwks``; with ``now``, a ``signedAt`` more than
    :data:`SIGNED_AT_TOLERANCE` after it is refused.

    Raises :class:`UnsignedReport` when there is no signature, and
    :class:`ReportSignatureError` saying what is wrong when there is one that is malformed,
    is by a key not in ``jwks``, does not verify, or signs anything other than this
    report's statement."""
    token = report_jws(resources)
    if token is None:
        raise UnsignedReport(f"the report carries no {GB_REPORT_SIGNATURE} resource")
    kid = jose.header_kid(token)
    if kid is None:
        raise ReportSignatureError(f"{GB_REPORT_JWS} is not a compact JWS with a kid")
    if kid not in jose.usable_keys(jwks):
        raise ReportSignatureError(f"key {kid!r} is not a registered, unrevoked key of the "
                                   "reporting site")
    try:
        signed = jose.verify(token, jwks)
    except jose.SignatureError as exc:
        raise ReportSignatureError(f"the report signature is not valid: {exc}") from exc
    if sorted(signed) != sorted(STATEMENT_MEMBERS):
        raise ReportSignatureError("the signed document is not a report statement (members "
                                   f"{', '.join(STATEMENT_MEMBERS)})")
    if signed["kind"] != kind:
        raise ReportSignatureError(f"the signature is for a {signed['kind']} report, this "
                                   f"report is on the {kind} event")
    if signed["fspId"] != fsp:
        raise ReportSignatureError(f"the signature names FSP {signed['fspId']!r}, the "
                                   f"reporting site is of {fsp!r}")
    try:
        signed_at = parse_utc(signed["signedAt"])
    except ValueError as exc:
        raise ReportSignatureError(str(exc)) from exc
    if now is not None and signed_at > now + SIGNED_AT_TOLERANCE:
        raise ReportSignatureError(f"signedAt {signed['signedAt']} is in the future")
    # The report's own statement, canonical, against the signed bytes (which jose.verify
    # found to be canonical): one canonicalisation of the report, nothing parsed twice.
    expected = statement(kind=kind, fsp=fsp, signed_at=signed["signedAt"],
                         resources=resources, payload_descriptors=payload_descriptors)
    try:
        same = canonical_json(expected) == jose.b64url_decode(token.split(".")[1])
    except CanonicalizationError:
        same = False
    if not same:
        if not _same_json(signed["payloadDescriptors"], expected["payloadDescriptors"]):
            raise ReportSignatureError("the signed payload descriptors differ from the "
                                       "report's")
        raise ReportSignatureError("the signed resources differ from the report's: the "
                                   "report was changed after it was signed")
    return SignedReport(jws=token, kid=kid, statement=signed)
