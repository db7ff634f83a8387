"""Site signatures on availability declarations and meter readings (docs/
gb-dispatch-profile.md section 12).

:func:`check_report` runs before a report is written (registered with
:mod:`vtn.report_checks` when the app starts): on an FSP's availability or metering event,
a signature that does not verify with one of the reporting site's unrevoked keys, or that
signs anything other than the report, refuses the report with a 400 problem; so does a
missing signature when the site has a key and its operator requires signed reports. The
report is then not written, and nothing else changes.

:func:`signature_of` reads the verified signature again when the report is taken in
(:mod:`dispatch.intake`), to store it with the intake and its audit entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from dispatch import audit, fsp_events
from dispatch.models import FspSite, NetworkOperator
from gbflex_profile import report_signing
from vtn.auth.caller import Caller
from vtn.errors import BadRequest, NotFound
from vtn.models import Event, Report

SIGNED_KINDS = (fsp_events.AVAILABILITY, fsp_events.METERING)


@dataclass(frozen=True)
class Signature:
    """A report's verified signature, as the intake stores it."""

    jws: str
    kid: str
    statement: dict
    signed_at: datetime


def site_jwks(site: FspSite, at: datetime) -> dict:
    """The site's keys that were registered and not revoked at ``at``, as a JWKS."""
    keys = site.signing_keys.filter(Q(revoked_at__isnull=True) | Q(revoked_at__gt=at))
    return {"keys": [key.public_jwk for key in keys]}


def _verify(site: FspSite, kind: str, resources, descriptors,
            at: datetime) -> report_signing.SignedReport:
    return report_signing.verify_report(
        kind=kind, fsp=site.fsp.identifier, resources=resources,
        payload_descriptors=descriptors, jwks=site_jwks(site, at), now=at)


def check_report(*, caller: Caller, event: Event, data: dict,
                 now: datetime | None = None) -> None:
    """Refuse (:class:`BadRequest`) a declaration or readings report whose
    signature is not valid, or that is unsigned where a signature is required."""
    kind = fsp_events.kind_of(event)
    if kind not in SIGNED_KINDS:
        return
    site = FspSite.objects.select_related("fsp__operator").filter(
        ven__client_id=caller.client_id).first()
    if site is None:
        return
    at = now or timezone.now()
    resources, descriptors = data.get("resources"), data.get("payload_descriptors")
    try:
        _verify(site, kind, resources, descriptors, at)
    except report_signing.UnsignedReport as exc:
        if site.fsp.operator.require_signed_reports and site.signing_keys.filter(
                revoked_at__isnull=True).exists():
            raise BadRequest(
                f"{kind.lower()} reports of site {site} must be signed with the site's key: "
                f"{exc} (network operator {site.fsp.operator.code} requires signed reports "
                "from sites with a registered key)") from exc
    except report_signing.ReportSignatureError as exc:
        raise BadRequest(f"the {kind.lower()} report's signature was refused: {exc}") from exc


def signature_of(site: FspSite, report: Report, at: datetime) -> Signature | None:
    """The verified signature of a report taken in at ``at``; None when it is unsigned
    (or no longer verifies, which :func:`check_report` made sure it did when written)."""
    kind = fsp_events.kind_of(report.event)
    if kind not in SIGNED_KINDS:
        return None
    try:
        signed = _verify(site, kind, report.resources, report.payload_descriptors, at)
    except report_signing.ReportSignatureError:
        return None
    return Signature(jws=signed.jws, kid=signed.kid, statement=signed.statement,
                     signed_at=signed.signed_at)


@transaction.atomic
def set_require_signed_reports(*, operator: str, required: bool, changed_by: str,
                               reason: str = "") -> NetworkOperator:
    """Require (or, for a transition period, stop requiring) signed availability and
    meter-reading reports from the operator's sites that have registered a key. A change
    is an audit entry; setting the current value changes nothing."""
    row = NetworkOperator.objects.select_for_update().filter(code=operator).first()
    if row is None:
        raise NotFound(f"no network operator {operator!r}")
    if row.require_signed_reports == required:
        return row
    before = row.require_signed_reports
    row.require_signed_reports = required
    row.save(update_fields=["require_signed_reports"])
    audit.record_signed_reports_change(row, before=before, changed_by=changed_by,
                                       reason=reason)
    return row
