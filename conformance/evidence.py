"""What the VTN recorded, read into the plain records :mod:`conformance.checks` grades."""

from __future__ import annotations

from datetime import datetime

from conformance.checks import AckRecord, IntakeRecord, RevisionRecord, TransitionRecord
from conformance.models import FaultHit, InjectedFault
from dispatch.models import (
    Acknowledgement,
    AvailabilityDeclaration,
    CommsTransition,
    DispatchInstruction,
    DispatchRevision,
    FspSite,
    HeartbeatRecord,
    MeterReading,
    ReportIntake,
)


def _setpoints(points: object) -> tuple[tuple[str, str], ...]:
    """(units, setpointType) of each setpoint of a document or read-back."""
    if not isinstance(points, list):
        return ()
    return tuple((str(p.get("units")), str(p.get("setpointType"))) for p in points
                 if isinstance(p, dict))


def revision_record(revision: DispatchRevision) -> RevisionRecord:
    # ``created`` (microseconds) rather than instruction_time (whole seconds).
    return RevisionRecord(number=revision.number, status=revision.document["status"],
                          issued_at=revision.created, kid=revision.signing_key.kid,
                          setpoints=_setpoints(revision.document.get("serviceTimings")))


def revisions(dispatch: DispatchInstruction) -> list[RevisionRecord]:
    rows = DispatchRevision.objects.filter(instruction=dispatch).select_related(
        "signing_key").order_by("number")
    return [revision_record(r) for r in rows]


def acknowledgements(dispatch: DispatchInstruction) -> list[AckRecord]:
    rows = Acknowledgement.objects.filter(revision__instruction=dispatch).select_related(
        "revision").order_by("received_at", "id")
    return [AckRecord(revision=a.revision.number, stage=a.stage, outcome=a.outcome,
                      received_at=a.received_at, claimed_revision=a.claimed_revision,
                      result=a.result, reason=a.reason, detail=a.detail, kid=a.kid,
                      report_id=a.report_id,
                      setpoints=_setpoints((a.read_back or {}).get("setpoints")))
            for a in rows]


def heartbeat_times(site: FspSite, start: datetime, end: datetime) -> list[datetime]:
    return list(HeartbeatRecord.objects.filter(site=site, received_at__gte=start,
                                               received_at__lte=end)
                .values_list("received_at", flat=True))


def transitions(site: FspSite, since: datetime) -> list[TransitionRecord]:
    return [TransitionRecord(from_state=t.from_state, to_state=t.to_state, at=t.at,
                             detail=t.detail)
            for t in CommsTransition.objects.filter(site=site, at__gte=since)]


def fault_hits(fault: InjectedFault) -> list[datetime]:
    return list(FaultHit.objects.filter(fault=fault).values_list("at", flat=True))


def intakes(site: FspSite, since: datetime, kind: str = ReportIntake.Kind.METERING
            ) -> list[IntakeRecord]:
    return [IntakeRecord(report_id=i.report_id, received_at=i.received_at, stored=i.stored,
                         duplicates=i.duplicates, corrections=i.corrections,
                         rejected=i.rejected, problems=tuple(i.problems or ()), kid=i.kid)
            for i in ReportIntake.objects.filter(site=site, kind=kind, received_at__gte=since)]


def current_declarations(site: FspSite, starts: list[datetime]) -> list[tuple[str, datetime]]:
    """(unit, window start) of the site's current availability declarations starting at
    one of ``starts``."""
    rows = AvailabilityDeclaration.objects.filter(unit__site=site, start__in=starts,
                                                  superseded_at__isnull=True)
    return [(r.unit.reference, r.start) for r in rows.select_related("unit")]


def current_readings(site: FspSite, starts: list[datetime], reading_type: str = "USAGE"
                     ) -> list[tuple[str, datetime]]:
    rows = MeterReading.objects.filter(unit__site=site, reading_type=reading_type,
                                       start__in=starts, superseded_at__isnull=True)
    return [(r.unit.reference, r.start) for r in rows.select_related("unit")]
