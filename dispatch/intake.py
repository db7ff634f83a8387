"""Availability declarations and meter readings from a site's reports (docs/
gb-dispatch-profile.md sections 10 and 11). Called for every report written on an FSP's
standing AVAILABILITY or METERING event (routed here by ``dispatch.report_routing``); each
report becomes one :class:`ReportIntake` saying what was stored, what was a duplicate or
a correction, and what was rejected.

Nothing is merged silently: a reading for a period that already has a different
reading is rejected unless the interval is marked ``GB_CORRECTION``; a correction adds a
new version and marks the earlier one superseded (kept for the record and for
settlement's audit). A declaration of a window already declared supersedes the earlier
declaration the same way.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from dispatch import audit, readings, report_signatures, rules
from dispatch.models import (
    AvailabilityDeclaration,
    DispatchUnit,
    FspSite,
    MeterReading,
    ReportIntake,
)
from gbflex_profile import report_signing
from vtn.models import Report

# Readings of USAGE and DEMAND are measurements: none may end later than this after the
# moment they arrive. BASELINE readings (nominations) may be for the future.
CLOCK_TOLERANCE = timedelta(minutes=5)


def _reporting_site(report: Report) -> FspSite | None:
    return FspSite.objects.filter(ven__client_id=report.client_id).select_related(
        "fsp__operator").first()


def record_readings(report: Report, *, now: datetime | None = None) -> ReportIntake | None:
    """Record the meter readings of a report classified as metering
    (:mod:`dispatch.report_routing`); None when no FSP site's VEN sent it."""
    site = _reporting_site(report)
    if site is None:
        return None
    return _record_readings(site, report, now or timezone.now())


def record_declarations(report: Report, *,
                        now: datetime | None = None) -> ReportIntake | None:
    """Record the availability declarations of a report classified as availability
    (:mod:`dispatch.report_routing`); None when no FSP site's VEN sent it."""
    site = _reporting_site(report)
    if site is None:
        return None
    return _record_declarations(site, report, now or timezone.now())


@transaction.atomic
def _record_readings(site: FspSite, report: Report, now: datetime) -> ReportIntake:
    units = {unit.reference: unit for unit in
             DispatchUnit.objects.select_for_update().filter(site=site)}
    parsed, rejected = readings.parse_readings(
        report_signing.content_resources(report.resources), report.payload_descriptors, units)
    intake = _new_intake(site, report, ReportIntake.Kind.METERING, now)
    current = _current_readings(units.values(), parsed)
    fresh: list[MeterReading] = []
    for reading in parsed:
        unit = units[reading.unit]
        key = (unit.pk, reading.reading_type, reading.start)

        def reject(outcome: str, detail: str, reading=reading) -> None:
            rejected.append(readings.Rejection(reading.unit, reading.reading_type,
                                               rules.iso(reading.start), outcome, detail))

        if reading.reading_type != readings.BASELINE and reading.end > now + CLOCK_TOLERANCE:
            reject("invalid", "a measured reading cannot end in the future")
            continue
        held = current.get(key)
        if held is None:
            row = MeterReading(unit=unit, reading_type=reading.reading_type,
                               start=reading.start, end=reading.end, value=reading.value,
                               quality=reading.quality, received_at=now, intake=intake)
            fresh.append(row)
            current[key] = row
            intake.stored += 1
        elif (held.end, held.value, held.quality) == (reading.end, reading.value,
                                                      reading.quality):
            intake.duplicates += 1
        elif not reading.correction:
            reject("conflict", f"version {held.version} for this period says "
                   f"{_show(held.value)} over {rules.iso(held.start)}/{rules.iso(held.end)}; send "
                   f"{readings.GB_CORRECTION} [true] to correct it")
        else:
            if fresh:
                MeterReading.objects.bulk_create(fresh)
                fresh = []
            MeterReading.objects.filter(pk=held.pk).update(superseded_at=now)
            row = MeterReading.objects.create(
                unit=unit, reading_type=reading.reading_type, start=reading.start,
                end=reading.end, value=reading.value, quality=reading.quality,
                version=held.version + 1, received_at=now, intake=intake)
            MeterReading.objects.filter(pk=held.pk).update(superseded_by=row)
            current[key] = row
            intake.corrections += 1
    MeterReading.objects.bulk_create(fresh)
    return _finish(intake, rejected)


def _current_readings(units, parsed: list[readings.Reading]) -> dict:
    if not parsed:
        return {}
    rows = MeterReading.objects.filter(
        unit__in=list(units), reading_type__in={r.reading_type for r in parsed},
        start__gte=min(r.start for r in parsed), start__lte=max(r.start for r in parsed),
        superseded_at__isnull=True)
    return {(row.unit_id, row.reading_type, row.start): row for row in rows}


@transaction.atomic
def _record_declarations(site: FspSite, report: Report, now: datetime) -> ReportIntake:
    units = {unit.reference: unit for unit in
             DispatchUnit.objects.select_for_update().filter(site=site)}
    parsed, rejected = readings.parse_declarations(
        report_signing.content_resources(report.resources), units)
    intake = _new_intake(site, report, ReportIntake.Kind.AVAILABILITY, now)
    for declaration in parsed:
        unit = units[declaration.unit]
        if declaration.start < now:
            rejected.append(readings.Rejection(
                declaration.unit, readings.GB_AVAILABLE_KW, rules.iso(declaration.start), "late",
                "availability is declared before its window starts"))
            continue
        held = AvailabilityDeclaration.objects.filter(
            unit=unit, start=declaration.start, end=declaration.end,
            superseded_at__isnull=True).first()
        if held is not None and held.available_kw == declaration.available_kw:
            intake.duplicates += 1
            continue
        if held is not None:
            AvailabilityDeclaration.objects.filter(pk=held.pk).update(superseded_at=now)
        row = AvailabilityDeclaration.objects.create(
            unit=unit, start=declaration.start, end=declaration.end,
            available_kw=declaration.available_kw, declared_at=now, intake=intake)
        if held is not None:
            AvailabilityDeclaration.objects.filter(pk=held.pk).update(superseded_by=row)
            intake.corrections += 1
        else:
            intake.stored += 1
    return _finish(intake, rejected)


def _new_intake(site: FspSite, report: Report, kind: str, now: datetime) -> ReportIntake:
    """The intake of ``report``, with the site's signature of it when it has one."""
    signature = report_signatures.signature_of(site, report, now)
    return ReportIntake.objects.create(
        site=site, kind=kind, report_id=report.pk, client_id=report.client_id,
        received_at=now, jws=signature.jws if signature else "",
        kid=signature.kid if signature else "",
        signed=signature.statement if signature else None,
        signed_at=signature.signed_at if signature else None)


def _finish(intake: ReportIntake, rejected: list[readings.Rejection]) -> ReportIntake:
    """Count the rejections, save, and append the intake to the audit chain (in the same
    transaction as what it records)."""
    intake.rejected = len(rejected)
    intake.problems = [r.as_dict() for r in rejected]
    intake.save(update_fields=["stored", "duplicates", "corrections", "rejected", "problems"])
    audit.record_intake(intake)
    return intake


def _show(value) -> str:
    return "MISSING" if value is None else str(value)
