"""The append-only, hash-chained audit log: appending entries (in the caller's
transaction) and exporting what a third party needs to verify one dispatch.

The chain itself (hashes, verification) is :mod:`gbflex_profile.audit_chain`, which has
no Django dependency so that an export can be checked anywhere.
"""

from __future__ import annotations

from datetime import datetime

from django.db import connection, transaction
from django.utils import timezone

from dispatch import rules
from dispatch.models import (
    Acknowledgement,
    AuditEntry,
    AvailabilityDeclaration,
    CommsTransition,
    DispatchInstruction,
    DispatchRevision,
    DispatchUnit,
    MeterReading,
    NetworkOperator,
    ReportIntake,
    SigningKey,
    SiteSigningKey,
)
from gbflex_profile import audit_chain

_LOCK_KEY = 0x6264_6175  # advisory lock serialising appends on PostgreSQL


def timestamp(value: datetime) -> str:
    """The entry time as hashed: UTC with microseconds."""
    return rules.iso(value, microseconds=True)


def entry_body(entry: AuditEntry) -> dict:
    return {"sequence": entry.sequence, "time": timestamp(entry.time), "kind": entry.kind,
            "subject": entry.subject, "jws": entry.jws, "payload": entry.payload}


def _append(*, kind: str, instruction: DispatchInstruction, subject: dict, jws: str,
            payload: dict) -> AuditEntry:
    return _append_entry(kind=kind, operator_code=instruction.operator.code,
                         dispatch_ref=instruction.reference,
                         subject={"networkOperatorId": instruction.operator.code,
                                  "dispatchRef": instruction.reference, **subject},
                         jws=jws, payload=payload)


def _append_entry(*, kind: str, operator_code: str, dispatch_ref: str, subject: dict,
                  jws: str, payload: dict) -> AuditEntry:
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit entries are written in the transaction of what they record")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
    last = AuditEntry.objects.order_by("-sequence").only("sequence", "hash").first()
    entry = AuditEntry(
        sequence=(last.sequence + 1) if last else 1,
        time=timezone.now(),
        kind=kind, operator_code=operator_code, dispatch_ref=dispatch_ref, subject=subject,
        jws=jws, payload=payload, prev_hash=last.hash if last else audit_chain.GENESIS)
    entry.hash = audit_chain.entry_hash(entry_body(entry), entry.prev_hash)
    entry.save()
    return entry


def record_revision(revision: DispatchRevision) -> AuditEntry:
    return _append(kind=AuditEntry.Kind.REVISION_ISSUED, instruction=revision.instruction,
                   subject={"revision": revision.number, "kid": revision.signing_key.kid},
                   jws=revision.signature, payload=revision.document)


def record_acknowledgement(ack: Acknowledgement, signed: dict | None) -> AuditEntry:
    """``signed``: the document the FSP's JWS verified to (None when it did not)."""
    payload = {"acknowledgementId": ack.pk, "outcome": ack.outcome, "stage": ack.stage,
               "result": ack.result, "reason": ack.reason, "detail": ack.detail,
               "receivedAt": timestamp(ack.received_at), "reportId": ack.report_id,
               "clientId": ack.client_id, "claimedRevision": ack.claimed_revision,
               "readBack": ack.read_back, "signed": signed}
    return _append(kind=AuditEntry.Kind.ACK_RECORDED, instruction=ack.revision.instruction,
                   subject={"revision": ack.revision.number, "acknowledgementId": ack.pk,
                            "kid": ack.kid},
                   jws=ack.jws, payload=payload)


def record_comms_change(change: CommsTransition) -> AuditEntry:
    """A site marked comms lost or online again (no dispatch: ``dispatch_ref`` is empty)."""
    site = change.site
    code = site.fsp.operator.code
    return _append_entry(
        kind=AuditEntry.Kind.COMMS_CHANGED, operator_code=code, dispatch_ref="",
        subject={"networkOperatorId": code, "fsp": site.fsp.identifier, "site": site.name},
        jws="", payload={"from": change.from_state, "to": change.to_state,
                         "at": timestamp(change.at),
                         "lastSeen": timestamp(change.last_seen) if change.last_seen else None,
                         "detail": change.detail})


def record_comms_loss_confirmed(instruction: DispatchInstruction, *, issued_by: str,
                                sites: list[str]) -> AuditEntry:
    """Who issued ``instruction`` knowing that its unit's site was comms lost."""
    return _append(kind=AuditEntry.Kind.COMMS_LOSS_CONFIRMED, instruction=instruction,
                   subject={"revision": 1}, jws="",
                   payload={"confirmedBy": issued_by, "sitesInCommsLoss": sites})


INTAKE_KINDS = {ReportIntake.Kind.AVAILABILITY: AuditEntry.Kind.DECLARATIONS_RECORDED,
                ReportIntake.Kind.METERING: AuditEntry.Kind.READINGS_RECORDED}


def record_intake(intake: ReportIntake) -> AuditEntry:
    """An availability or meter-reading report taken in: what became of it and, when the
    site signed it, its JWS and the statement that verified (no dispatch: ``dispatch_ref``
    is empty; the site is in the subject)."""
    site = intake.site
    code = site.fsp.operator.code
    return _append_entry(
        kind=INTAKE_KINDS[ReportIntake.Kind(intake.kind)], operator_code=code,
        dispatch_ref="",
        subject={"networkOperatorId": code, "fsp": site.fsp.identifier, "site": site.name,
                 "intakeId": intake.pk, "kid": intake.kid},
        jws=intake.jws,
        payload={"intakeId": intake.pk, "kind": intake.kind, "channel": intake.channel,
                 "reportId": intake.report_id,
                 "clientId": intake.client_id, "receivedAt": timestamp(intake.received_at),
                 "stored": intake.stored, "duplicates": intake.duplicates,
                 "corrections": intake.corrections, "rejected": intake.rejected,
                 "problems": intake.problems, "signed": intake.signed})


def record_signed_reports_change(operator: NetworkOperator, *, before: bool, changed_by: str,
                                 reason: str) -> AuditEntry:
    """The operator's rule on unsigned reports changed."""
    return _append_entry(
        kind=AuditEntry.Kind.SIGNED_REPORTS_CHANGED, operator_code=operator.code,
        dispatch_ref="", subject={"networkOperatorId": operator.code}, jws="",
        payload={"requireSignedReports": {"before": before,
                                          "after": operator.require_signed_reports},
                 "changedBy": changed_by, "reason": reason})


def _intake_entries(instruction: DispatchInstruction) -> list[AuditEntry]:
    """The intake entries of the reports that declared availability or sent readings of
    ``instruction``'s unit over its service window (superseded ones included)."""
    window = {"unit": instruction.unit, "start__lt": instruction.service_end,
              "end__gt": instruction.service_start}
    intake_ids = set(AvailabilityDeclaration.objects.filter(**window)
                     .values_list("intake_id", flat=True))
    intake_ids |= set(MeterReading.objects.filter(**window).values_list("intake_id", flat=True))
    if not intake_ids:
        return []
    return list(AuditEntry.objects.filter(
        operator_code=instruction.operator.code, dispatch_ref="",
        kind__in=list(INTAKE_KINDS.values()), subject__intakeId__in=sorted(intake_ids)))
def record_unit_capabilities(unit: DispatchUnit, *, before: dict, after: dict,
                             changed_by: str, reason: str) -> AuditEntry:
    """A unit's kW and kVAr capabilities changed (no dispatch: ``dispatch_ref`` is empty).
    ``before`` and ``after`` map ``capacityKw`` and ``capacityKvar`` to decimal strings
    (or None for no reactive capability)."""
    code = unit.fsp.operator.code
    return _append_entry(
        kind=AuditEntry.Kind.UNIT_CAPABILITY_CHANGED, operator_code=code, dispatch_ref="",
        subject={"networkOperatorId": code, "fsp": unit.fsp.identifier,
                 "unit": unit.reference},
        jws="", payload={"before": before, "after": after, "changedBy": changed_by,
                         "reason": reason})


def export(instruction: DispatchInstruction) -> dict:
    """Everything needed to verify ``instruction``'s audit trail offline: its entries in
    full, the intake entries of the availability declared and the readings sent for its
    unit over its service window, the links of the chain from the first of them to the
    head (other entries as digests only), and the public keys of the operator and of the
    site."""
    entries = list(AuditEntry.objects.filter(operator_code=instruction.operator.code,
                                             dispatch_ref=instruction.reference))
    entries = sorted(entries + _intake_entries(instruction), key=lambda e: e.sequence)
    head = AuditEntry.objects.order_by("-sequence").first()
    links = []
    if entries:
        for link in AuditEntry.objects.filter(sequence__gte=entries[0].sequence).iterator():
            links.append({"sequence": link.sequence, "prevHash": link.prev_hash,
                          "bodyHash": audit_chain.body_hash(entry_body(link)),
                          "hash": link.hash})
    kids = {e.subject.get("kid") for e in entries if e.kind == AuditEntry.Kind.REVISION_ISSUED}
    operator_keys = SigningKey.objects.filter(operator=instruction.operator, kid__in=kids)
    site_keys = SiteSigningKey.objects.filter(site=instruction.unit.site)
    site = instruction.unit.site
    return {
        "format": audit_chain.EXPORT_FORMAT,
        "networkOperatorId": instruction.operator.code,
        "dispatchRef": instruction.reference,
        "site": {"fsp": site.fsp.identifier, "site": site.name},
        "exportedAt": timestamp(timezone.now()),
        "entries": [entry_body(e) | {"prevHash": e.prev_hash, "hash": e.hash}
                    for e in entries],
        "links": links,
        "headHash": head.hash if head else audit_chain.GENESIS,
        "operatorKeys": {"keys": [k.public_jwk for k in operator_keys.order_by("created")]},
        "siteKeys": {"keys": [k.public_jwk for k in site_keys.order_by("created")]},
        "siteKeyHistory": [{"kid": k.kid, "created": timestamp(k.created),
                            "revokedAt": timestamp(k.revoked_at) if k.revoked_at else None}
                           for k in site_keys.order_by("created")],
    }
