"""Acknowledgements of dispatch revisions, read from a site's reports on the dispatch's
event: each claim is judged (signature by a registered site key, read-back against the
signed revision, stale or duplicate) and recorded with its outcome and an audit entry."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from dispatch import audit
from dispatch.models import Acknowledgement, DispatchInstruction, DispatchRevision, FspSite
from gbflex_profile import acks, jose, report_signing
from vtn.models import Report

Outcome = Acknowledgement.Outcome


def _site_jwks(site: FspSite | None, at: datetime) -> dict:
    if site is None:
        return {"keys": []}
    keys = site.signing_keys.filter(Q(revoked_at__isnull=True) | Q(revoked_at__gt=at))
    # (a key revoked at or before ``at`` is unknown then; the audit verifier agrees)
    return {"keys": [key.public_jwk for key in keys]}


def _judge(claim: acks.AckClaim, instruction: DispatchInstruction, site: FspSite | None,
           at: datetime) -> tuple[str, str, dict | None, DispatchRevision]:
    """(outcome, detail, signed document or None, revision) of one acknowledgement."""
    current = instruction.revisions.latest("number")
    named = instruction.revisions.filter(number=claim.revision).first() \
        if claim.revision is not None else None
    revision = named or current
    if not claim.jws:
        return Outcome.INVALID_SIGNATURE, f"no {acks.GB_ACK_JWS} payload", None, revision
    kid = jose.header_kid(claim.jws)
    if kid is None:
        return Outcome.INVALID_SIGNATURE, "not a compact JWS with a kid", None, revision
    jwks = _site_jwks(site, at)
    if not any(key["kid"] == kid for key in jwks["keys"]):
        return (Outcome.UNKNOWN_KEY, f"key {kid!r} is not a registered, unrevoked key of "
                f"the reporting site", None, revision)
    try:
        signed = jose.verify(claim.jws, jwks)
    except jose.SignatureError as exc:
        return Outcome.INVALID_SIGNATURE, str(exc), None, revision
    if claim.problems:
        return Outcome.READ_BACK_MISMATCH, "; ".join(claim.problems), signed, revision
    if signed != claim.read_back:
        return (Outcome.READ_BACK_MISMATCH, "the signed document is not the read-back in the "
                "report's payloads", signed, revision)
    if named is None:
        return (Outcome.READ_BACK_MISMATCH, f"dispatch {instruction.reference} has no "
                f"revision {claim.revision}", signed, revision)
    if named.number < current.number:
        return (Outcome.STALE_REVISION, f"revision {named.number} was superseded by "
                f"revision {current.number}", signed, revision)
    differences = acks.read_back_differences(claim.read_back, named.document)
    if differences:
        return Outcome.READ_BACK_MISMATCH, "; ".join(differences), signed, revision
    if named.acknowledgements.filter(stage=claim.stage.lower(),
                                     outcome=Outcome.ACCEPTED).exists():
        return (Outcome.DUPLICATE, f"revision {named.number} already has an accepted "
                f"{claim.stage} acknowledgement", signed, revision)
    return Outcome.ACCEPTED, "", signed, revision


def _signed_at(signed: dict | None) -> datetime | None:
    """When the FSP says it signed (its verified ``signedAt``), or None."""
    try:
        return report_signing.parse_utc(signed.get("signedAt")) if signed else None
    except ValueError:
        return None


@transaction.atomic
def record_acknowledgements(report: Report, *,
                            now: datetime | None = None) -> list[Acknowledgement]:
    """Check and record every acknowledgement in ``report`` (a report on a dispatch's
    event), each with its outcome and an audit entry. A report without
    acknowledgement intervals records nothing; an interval already recorded from the
    same report (the VEN re-sent the report with more intervals) is not recorded again."""
    instruction = (DispatchInstruction.objects.select_for_update()
                   .select_related("operator", "unit__site").filter(event_id=report.event_id)
                   .first())
    if instruction is None:
        return []
    at = now or timezone.now()
    site = FspSite.objects.filter(ven__client_id=report.client_id).first()
    recorded = []
    for payloads in acks.ack_intervals(report.resources):
        claim = acks.parse_claim(payloads)
        earlier = Acknowledgement.objects.filter(report_id=report.pk, jws=claim.jws)
        if any(ack.read_back == claim.read_back for ack in earlier):
            continue
        outcome, detail, signed, revision = _judge(claim, instruction, site, at)
        ack = Acknowledgement.objects.create(
            revision=revision, claimed_revision=claim.revision,
            stage=claim.stage.lower() if claim.stage in acks.STAGES else "",
            result=claim.outcome, reason=claim.reason, outcome=outcome, detail=detail,
            received_at=at, report_id=report.pk, client_id=report.client_id,
            kid=jose.header_kid(claim.jws) or "", jws=claim.jws,
            read_back=claim.read_back, signed_at=_signed_at(signed))
        audit.record_acknowledgement(ack, signed)
        recorded.append(ack)
    return recorded
