"""Grading: each check turns what the VTN recorded into pass/fail with its evidence.

Pure functions over plain records (no ORM), so every rule is unit-tested on recorded data.
:mod:`conformance.evidence` builds the records from the database. Times are aware UTC
datetimes; durations are seconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

ACCEPTED = "accepted"
STALE = "stale_revision"
# Revisions whose instruction the asset must act on (pre-notify: prepare only).
ACTIONABLE = ("RUN", "STOP", "EMERGENCY_STOP")


def iso(value: datetime | None) -> str | None:
    """UTC with milliseconds, ``...Z`` (report times)."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True)
class RevisionRecord:
    number: int
    status: str  # PRE_NOTIFY, RUN, STOP, EMERGENCY_STOP
    issued_at: datetime
    kid: str = ""
    # (units, setpointType) of each signed setpoint, e.g. ("KVAR", "ABSOLUTE")
    setpoints: tuple[tuple[str, str], ...] = ()

    def as_dict(self) -> dict:
        return {"revision": self.number, "status": self.status,
                "issuedAt": iso(self.issued_at), "kid": self.kid}


@dataclass(frozen=True)
class AckRecord:
    revision: int  # the revision the VTN filed it under
    stage: str  # received, actioned, refused ("" when unreadable)
    outcome: str  # accepted, read_back_mismatch, invalid_signature, ...
    received_at: datetime
    claimed_revision: int | None = None
    result: str = ""
    reason: str = ""
    detail: str = ""
    kid: str = ""
    report_id: str = ""
    # (units, setpointType) of each setpoint the VEN read back, as it signed them
    setpoints: tuple[tuple[str, str], ...] = ()

    def as_dict(self, issued_at: datetime | None = None) -> dict:
        body: dict[str, object] = {
                "revision": self.revision, "claimedRevision": self.claimed_revision,
                "stage": self.stage, "outcome": self.outcome, "result": self.result,
                "reason": self.reason, "detail": self.detail, "kid": self.kid,
                "reportID": self.report_id, "receivedAt": iso(self.received_at)}
        if issued_at is not None:
            body["secondsAfterIssue"] = round((self.received_at - issued_at).total_seconds(), 3)
        return body


@dataclass
class Check:
    name: str
    passed: bool
    expected: str
    observed: str
    evidence: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"name": self.name, "passed": self.passed, "expected": self.expected,
                "observed": self.observed, "evidence": self.evidence}


def _seconds(later: datetime, earlier: datetime) -> float:
    return round((later - earlier).total_seconds(), 3)


# --- acknowledgements ------------------------------------------------------------------------


def setpoints_read_back(name: str, revisions: Sequence[RevisionRecord],
                        acks: Sequence[AckRecord], *, what: str) -> Check:
    """Every actionable revision has an accepted ACTIONED acknowledgement whose read-back
    gives each setpoint the units and setpoint type it was issued with (``what`` says what
    the scenario varies), and no acknowledgement read them back otherwise."""
    graded = [r for r in revisions if r.status in ACTIONABLE and r.setpoints]
    expected = (f"each setpoint read back with its issued {what} in an accepted ACTIONED "
                "acknowledgement of every revision that has setpoints")
    evidence = {"revisions": [{"revision": r.number,
                               "issued": [list(p) for p in r.setpoints],
                               "readBack": [{"stage": a.stage, "outcome": a.outcome,
                                             "setpoints": [list(p) for p in a.setpoints]}
                                            for a in acks if a.revision == r.number
                                            and a.stage in ("received", "actioned")]}
                              for r in graded]}
    if not graded:
        return Check(name, False, expected, "no revision with setpoints was issued", evidence)
    problems = []
    for revision in graded:
        mine = [a for a in acks if a.revision == revision.number
                and a.stage in ("received", "actioned")]
        wrong = [a for a in mine if a.setpoints and a.setpoints != revision.setpoints]
        if wrong:
            got = sorted({"/".join(p) for a in wrong for p in a.setpoints})
            problems.append(f"revision {revision.number}: read back {', '.join(got)}, issued "
                            + ", ".join(sorted({"/".join(p) for p in revision.setpoints})))
        elif not any(a.stage == "actioned" and a.outcome == ACCEPTED for a in mine):
            problems.append(f"revision {revision.number}: no accepted ACTIONED read-back")
    if problems:
        return Check(name, False, expected, "; ".join(problems), evidence)
    return Check(name, True, expected, f"{len(graded)} revision(s) read back as issued: "
                 + "; ".join(", ".join(sorted({"/".join(p) for p in r.setpoints}))
                             for r in graded), evidence)


def acknowledged(revision: RevisionRecord, acks: Iterable[AckRecord], *, stage: str,
                 deadline_s: float) -> Check:
    """An accepted ``stage`` acknowledgement of ``revision`` arrived within the deadline."""
    stage = stage.lower()
    mine = [a for a in acks if a.revision == revision.number and a.stage == stage]
    accepted = [a for a in mine if a.outcome == ACCEPTED]
    expected = (f"an accepted {stage.upper()} acknowledgement of revision {revision.number} "
                f"({revision.status}) within {deadline_s:g} s of its issue")
    evidence = {"revision": revision.as_dict(), "deadlineSeconds": deadline_s,
                "acknowledgements": [a.as_dict(revision.issued_at) for a in mine]}
    name = f"{stage}-r{revision.number}"
    if accepted:
        first = accepted[0]
        after = _seconds(first.received_at, revision.issued_at)
        if after <= deadline_s:
            return Check(name, True, expected, f"accepted after {after:g} s", evidence)
        return Check(name, False, expected, f"accepted only after {after:g} s (late)", evidence)
    if mine:
        outcomes = ", ".join(f"{a.outcome}" + (f" ({a.detail})" if a.detail else "")
                             for a in mine)
        return Check(name, False, expected, f"none accepted; recorded: {outcomes}", evidence)
    refused = [a for a in acks if a.revision == revision.number and a.stage == "refused"]
    if refused:
        return Check(name, False, expected, "the VEN refused the revision: "
                     + "; ".join(a.reason for a in refused), evidence | {
                         "refusals": [a.as_dict(revision.issued_at) for a in refused]})
    return Check(name, False, expected, "no acknowledgement recorded", evidence)


def revision_checks(revisions: Sequence[RevisionRecord], acks: Sequence[AckRecord], *,
                    deadline_s: float) -> list[Check]:
    """RECEIVED for every revision, ACTIONED for every actionable one."""
    checks = []
    for revision in revisions:
        checks.append(acknowledged(revision, acks, stage="received", deadline_s=deadline_s))
        if revision.status in ACTIONABLE:
            checks.append(acknowledged(revision, acks, stage="actioned",
                                       deadline_s=deadline_s))
    return checks


def acks_valid(revisions: Sequence[RevisionRecord], acks: Sequence[AckRecord], *,
               allow_stale: bool = False) -> Check:
    """Every acknowledgement recorded for these revisions was accepted: signed with the
    site's registered key, read back correctly, not a duplicate (and not stale, unless
    the scenario grades staleness itself)."""
    numbers = {r.number for r in revisions}
    mine = [a for a in acks if a.revision in numbers]
    allowed = {ACCEPTED, STALE} if allow_stale else {ACCEPTED}
    bad = [a for a in mine if a.outcome not in allowed]
    expected = ("every acknowledgement accepted (registered key, valid signature, "
                "read-back equal to the signed revision, no duplicates"
                + (")" if allow_stale else ", none stale)"))
    evidence = {"acknowledgements": [a.as_dict() for a in mine]}
    if not mine:
        return Check("acks-valid", False, expected, "no acknowledgement recorded", evidence)
    if bad:
        counts: dict[str, int] = {}
        for ack in bad:
            counts[ack.outcome] = counts.get(ack.outcome, 0) + 1
        summary = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))
        details = sorted({a.detail for a in bad if a.detail})
        return Check("acks-valid", False, expected,
                     f"{len(bad)} of {len(mine)} not accepted: {summary}"
                     + (f" ({'; '.join(details)[:400]})" if details else ""), evidence)
    return Check("acks-valid", True, expected, f"all {len(mine)} accepted", evidence)


def stale_recorded(older: RevisionRecord, newer: RevisionRecord,
                   acks: Sequence[AckRecord]) -> Check:
    """Acknowledgements of ``older`` that arrived after ``newer`` was issued are recorded
    ``stale_revision`` (so nothing of the old one counts)."""
    late = [a for a in acks if a.revision == older.number and a.received_at >= newer.issued_at]
    wrong = [a for a in late if a.outcome != STALE]
    expected = (f"any acknowledgement of revision {older.number} received after revision "
                f"{newer.number} was issued is recorded {STALE}")
    evidence = {"older": older.as_dict(), "newer": newer.as_dict(),
                "lateAcknowledgements": [a.as_dict(newer.issued_at) for a in late]}
    if wrong:
        return Check("stale-recorded", False, expected,
                     f"{len(wrong)} late acknowledgement(s) recorded as "
                     f"{', '.join(sorted({a.outcome for a in wrong}))}", evidence)
    return Check("stale-recorded", True, expected,
                 f"{len(late)} late acknowledgement(s), all {STALE}" if late
                 else f"no acknowledgement of revision {older.number} after revision "
                      f"{newer.number} was issued", evidence)


def not_actioned_stale(older: RevisionRecord, newer: RevisionRecord,
                       acks: Sequence[AckRecord]) -> Check:
    """The VEN did not act on the older revision once it held the newer one: no ACTIONED
    of ``older`` arrives after the VEN's first acknowledgement of ``newer``."""
    first_newer = min((a.received_at for a in acks if a.revision == newer.number), default=None)
    actioned_old = [a for a in acks if a.revision == older.number and a.stage == "actioned"]
    offending = [a for a in actioned_old
                 if first_newer is not None and a.received_at > first_newer]
    expected = (f"no ACTIONED acknowledgement of revision {older.number} after the VEN "
                f"acknowledged revision {newer.number} (act on the newest only)")
    evidence = {"firstAcknowledgementOfNewer": iso(first_newer),
                "actionedOfOlder": [a.as_dict(newer.issued_at) for a in actioned_old]}
    if first_newer is None:
        return Check("not-actioned-stale", False, expected,
                     f"revision {newer.number} was never acknowledged", evidence)
    if offending:
        return Check("not-actioned-stale", False, expected,
                     f"revision {older.number} ACTIONED {len(offending)} time(s) after "
                     f"revision {newer.number} was acknowledged", evidence)
    return Check("not-actioned-stale", True, expected,
                 f"revision {older.number} actioned {len(actioned_old)} time(s), none after "
                 f"revision {newer.number} was held", evidence)


def exactly_once(revision: RevisionRecord, acks: Sequence[AckRecord], *,
                 stages: Sequence[str] = ("received", "actioned"),
                 after: datetime | None = None) -> Check:
    """Each stage of ``revision`` was recorded exactly once and accepted (acknowledgements
    queued during an outage arrive once, none lost, none repeated)."""
    mine = [a for a in acks if a.revision == revision.number]
    counts = {stage: sum(1 for a in mine if a.stage == stage) for stage in stages}
    accepted = {stage: sum(1 for a in mine if a.stage == stage and a.outcome == ACCEPTED)
                for stage in stages}
    expected = (f"exactly one acknowledgement per stage ({', '.join(s.upper() for s in stages)})"
                f" of revision {revision.number}, each accepted")
    evidence: dict[str, object] = {"revision": revision.as_dict(), "counts": counts,
                "acknowledgements": [a.as_dict(revision.issued_at) for a in mine]}
    if after is not None:
        evidence["outageEnded"] = iso(after)
    problems = [f"{stage.upper()} recorded {counts[stage]} time(s)"
                for stage in stages if counts[stage] != 1]
    problems += [f"{stage.upper()} not accepted" for stage in stages
                 if counts[stage] == 1 and accepted[stage] != 1]
    if problems:
        return Check("acks-exactly-once", False, expected, "; ".join(problems), evidence)
    return Check("acks-exactly-once", True, expected, "each stage recorded once, accepted",
                 evidence)


# --- heartbeats and comms --------------------------------------------------------------------


def heartbeat_regular(*, heard: Iterable[datetime], start: datetime, end: datetime,
                      interval_s: float | None, heard_before: datetime | None = None,
                      excluded: Sequence[tuple[datetime, datetime]] = (),
                      heartbeat_reports: int = 0) -> Check:
    """The site was heard from (heartbeat report, poll or any request) at least every
    ``interval_s`` over ``[start, end]``, outside ``excluded`` windows (injected faults).
    ``heard_before`` is the last time heard before ``start``."""
    expected = (f"heard from at least every {interval_s:g} s (heartbeat reports on the "
                "heartbeat event, or polls)" if interval_s else
                "no heartbeat interval applies to the site's products")
    if not interval_s:
        return Check("heartbeat-regular", True, expected, "not applicable", {})
    times = sorted({t for t in heard if start <= t <= end})
    anchor = heard_before if heard_before is not None and heard_before <= start else None
    points = ([anchor] if anchor else [start]) + times + [end]
    gaps = []
    for earlier, later in zip(points, points[1:], strict=False):
        gap = (later - earlier).total_seconds()
        for ex_start, ex_end in excluded:  # time inside a fault does not count
            overlap = (min(later, ex_end) - max(earlier, ex_start)).total_seconds()
            if overlap > 0:
                gap -= overlap
        gaps.append((gap, earlier, later))
    worst = max(gaps, key=lambda g: g[0])
    evidence = {"intervalSeconds": interval_s, "windowStart": iso(start), "windowEnd": iso(end),
                "timesHeard": len(times), "heartbeatReports": heartbeat_reports,
                "lastHeardBefore": iso(heard_before),
                "excludedWindows": [[iso(a), iso(b)] for a, b in excluded],
                "longestGapSeconds": round(worst[0], 3),
                "longestGapBetween": [iso(worst[1]), iso(worst[2])]}
    if worst[0] > interval_s:
        return Check("heartbeat-regular", False, expected,
                     f"silent for {worst[0]:.1f} s (from {iso(worst[1])} to {iso(worst[2])})",
                     evidence)
    return Check("heartbeat-regular", True, expected,
                 f"heard {len(times)} time(s); longest silence {worst[0]:.1f} s", evidence)


def heartbeat_interval_followed(*, reports: Iterable[datetime], start: datetime, end: datetime,
                                interval_s: float, grace: float = 1.5) -> Check:
    """Heartbeat reports (on the heartbeat event; polls do not count here) arrived at
    least every ``interval_s`` x ``grace`` over ``[start, end]``: the VEN follows a
    heartbeat interval the operator has just changed."""
    allowed = interval_s * grace
    expected = (f"heartbeat reports at least every {allowed:g} s ({interval_s:g} s, the new "
                f"GB_HEARTBEAT_INTERVAL, x {grace:g}) once the VEN has read the change")
    times = sorted(t for t in reports if start <= t <= end)
    points = [start, *times, end]
    gaps = [((later - earlier).total_seconds(), earlier, later)
            for earlier, later in zip(points, points[1:], strict=False)]
    worst = max(gaps, key=lambda g: g[0])
    evidence = {"intervalSeconds": interval_s, "windowStart": iso(start),
                "windowEnd": iso(end), "heartbeatReports": len(times),
                "longestGapSeconds": round(worst[0], 3),
                "longestGapBetween": [iso(worst[1]), iso(worst[2])]}
    if worst[0] > allowed:
        return Check("heartbeat-interval-followed", False, expected,
                     f"no heartbeat report for {worst[0]:.1f} s (from {iso(worst[1])} to "
                     f"{iso(worst[2])})", evidence)
    return Check("heartbeat-interval-followed", True, expected,
                 f"{len(times)} heartbeat report(s); longest gap {worst[0]:.1f} s", evidence)

@dataclass(frozen=True)
class TransitionRecord:
    from_state: str
    to_state: str
    at: datetime
    detail: str = ""

    def as_dict(self) -> dict:
        return {"from": self.from_state, "to": self.to_state, "at": iso(self.at),
                "detail": self.detail}


def comms_lost_marked(transitions: Sequence[TransitionRecord], *, fault_start: datetime,
                      fault_end: datetime) -> Check:
    marked = [t for t in transitions if t.to_state == "comms_lost"
              and fault_start <= t.at <= fault_end]
    expected = "the VTN marks the site comms_lost during the outage"
    evidence = {"outage": [iso(fault_start), iso(fault_end)],
                "transitions": [t.as_dict() for t in transitions]}
    if marked:
        return Check("comms-lost-marked", True, expected,
                     f"comms_lost at {iso(marked[0].at)}", evidence)
    return Check("comms-lost-marked", False, expected,
                 "the site was not marked comms_lost (it was heard from during the outage?)",
                 evidence)


def comms_restored(transitions: Sequence[TransitionRecord], *, fault_end: datetime,
                   deadline_s: float) -> Check:
    restored = [t for t in transitions if t.to_state == "online" and t.at >= fault_end]
    expected = f"the site is online again within {deadline_s:g} s after the outage ends"
    evidence = {"outageEnded": iso(fault_end), "deadlineSeconds": deadline_s,
                "transitions": [t.as_dict() for t in transitions]}
    if not restored:
        return Check("comms-restored", False, expected, "not restored", evidence)
    after = _seconds(restored[0].at, fault_end)
    return Check("comms-restored", after <= deadline_s, expected,
                 f"online {after:g} s after the outage" + ("" if after <= deadline_s
                                                          else " (late)"), evidence)


def backed_off(hits: Sequence[datetime], *, fault_start: datetime, fault_end: datetime,
               retry_after_s: float) -> Check:
    """During the outage the client waits at least about ``Retry-After`` between attempts:
    at most ``duration / retry_after * 1.5 + 2`` requests."""
    duration = (fault_end - fault_start).total_seconds()
    bound = int(duration / retry_after_s * 1.5) + 2
    during = sorted(t for t in hits if fault_start <= t < fault_end)
    gaps = [round((b - a).total_seconds(), 3) for a, b in zip(during, during[1:], strict=False)]
    expected = (f"at most {bound} requests during the {duration:g} s outage (503 with "
                f"Retry-After: {retry_after_s:g})")
    evidence = {"outage": [iso(fault_start), iso(fault_end)], "requests": len(during),
                "bound": bound, "secondsBetweenRequests": gaps[:200],
                "requestTimes": [iso(t) for t in during[:200]]}
    rate = len(during) / duration if duration > 0 else 0.0
    observed = f"{len(during)} requests ({rate:.2f}/s)"
    return Check("backs-off", len(during) <= bound, expected, observed, evidence)


def resumed(*, heard_after: datetime | None, fault_end: datetime, deadline_s: float) -> Check:
    expected = f"the VEN is heard from again within {deadline_s:g} s after the outage ends"
    evidence = {"outageEnded": iso(fault_end), "firstHeardAfter": iso(heard_after),
                "deadlineSeconds": deadline_s}
    if heard_after is None:
        return Check("resumes-polling", False, expected, "not heard from after the outage",
                     evidence)
    after = _seconds(heard_after, fault_end)
    return Check("resumes-polling", after <= deadline_s, expected,
                 f"heard {after:g} s after the outage", evidence)


# --- meter readings --------------------------------------------------------------------------


@dataclass(frozen=True)
class IntakeRecord:
    report_id: str
    received_at: datetime
    stored: int
    duplicates: int
    corrections: int
    rejected: int
    problems: tuple = ()
    kid: str = ""  # the site key that signed the report; empty when unsigned

    def as_dict(self) -> dict:
        return {"reportID": self.report_id, "receivedAt": iso(self.received_at),
                "stored": self.stored, "duplicates": self.duplicates,
                "corrections": self.corrections, "rejected": self.rejected,
                "problems": list(self.problems), "signedWith": self.kid or None}


def _intakes_accepted(name: str, what: str, intakes: Sequence[IntakeRecord]) -> Check:
    expected = f"at least one {what} report, with no value rejected"
    evidence = {"intakes": [i.as_dict() for i in intakes]}
    if not intakes:
        return Check(name, False, expected, f"no {what} report received", evidence)
    rejected = sum(i.rejected for i in intakes)
    if rejected:
        reasons = sorted({f"{p.get('outcome')}: {p.get('detail')}" for i in intakes
                          for p in i.problems})
        return Check(name, False, expected,
                     f"{rejected} value(s) rejected ({'; '.join(reasons)[:400]})", evidence)
    stored = sum(i.stored + i.duplicates + i.corrections for i in intakes)
    return Check(name, True, expected,
                 f"{len(intakes)} report(s), {stored} value(s) taken, none rejected", evidence)


def readings_accepted(intakes: Sequence[IntakeRecord]) -> Check:
    return _intakes_accepted("readings-accepted", "meter-reading", intakes)


def declarations_accepted(intakes: Sequence[IntakeRecord]) -> Check:
    return _intakes_accepted("declarations-accepted", "availability", intakes)


def reports_signed(name: str, what: str, intakes: Sequence[IntakeRecord]) -> Check:
    """Every report taken in was signed with a key of the site (the VTN verified it)."""
    expected = (f"every {what} report signed with a registered key of the site "
                "(GB_REPORT_SIGNATURE, profile section 12)")
    evidence = {"intakes": [i.as_dict() for i in intakes]}
    if not intakes:
        return Check(name, False, expected,
                     f"no {what} report taken in (the VTN refuses a report whose signature "
                     "does not verify, and an unsigned one from a site with a key)", evidence)
    unsigned = [i.report_id for i in intakes if not i.kid]
    if unsigned:
        return Check(name, False, expected, f"{len(unsigned)} of {len(intakes)} report(s) "
                     f"unsigned ({', '.join(unsigned[:5])})", evidence)
    kids = sorted({i.kid for i in intakes})
    return Check(name, True, expected, f"{len(intakes)} report(s) signed with "
                 f"{', '.join(kids)}", evidence)


def windows_covered(expected_windows: Iterable[tuple[str, datetime]],
                    found: Iterable[tuple[str, datetime]]) -> Check:
    wanted = sorted(set(expected_windows))
    have = set(found)
    missing = [(unit, start) for unit, start in wanted if (unit, start) not in have]
    expected = f"a current availability declaration for each of {len(wanted)} (unit, window)"
    evidence = {"expected": [{"unit": u, "start": iso(s)} for u, s in wanted],
                "missing": [{"unit": u, "start": iso(s)} for u, s in missing]}
    if missing:
        return Check("windows-covered", False, expected,
                     f"{len(missing)} of {len(wanted)} windows not declared", evidence)
    return Check("windows-covered", True, expected, f"all {len(wanted)} windows declared",
                 evidence)


# --- forged dispatches -----------------------------------------------------------------------


def forgery_refused(stages: Sequence[str], *, event_id: str, deadline_s: float) -> Check:
    expected = (f"a REFUSED acknowledgement report on the forged event within {deadline_s:g} s "
                "(its signature signs another revision)")
    evidence = {"forgedEventID": event_id, "stagesReported": list(stages)}
    if "REFUSED" in stages:
        return Check("forgery-refused", True, expected, "refused and reported", evidence)
    return Check("forgery-refused", False, expected,
                 "no refusal reported" if not stages else
                 f"reported {', '.join(stages)} but no REFUSED", evidence)


def forgery_not_actioned(stages: Sequence[str], *, event_id: str) -> Check:
    expected = "the forged revision is neither RECEIVED nor ACTIONED (never given to the asset)"
    evidence = {"forgedEventID": event_id, "stagesReported": list(stages)}
    taken = [s for s in stages if s in ("RECEIVED", "ACTIONED")]
    if taken:
        return Check("forgery-not-actioned", False, expected,
                     f"acknowledged the forgery as {', '.join(taken)}", evidence)
    return Check("forgery-not-actioned", True, expected, "not acted on", evidence)


def periods_covered(expected_periods: Iterable[tuple[str, datetime]],
                    found: Iterable[tuple[str, datetime]], *, reading_type: str = "USAGE"
                    ) -> Check:
    wanted = sorted(set(expected_periods))
    have = set(found)
    missing = [(unit, start) for unit, start in wanted if (unit, start) not in have]
    expected = (f"a current {reading_type} reading for each of {len(wanted)} "
                "(unit, half-hour) periods asked for")
    evidence = {"expected": [{"unit": u, "start": iso(s)} for u, s in wanted],
                "missing": [{"unit": u, "start": iso(s)} for u, s in missing]}
    if missing:
        return Check("periods-covered", False, expected,
                     f"{len(missing)} of {len(wanted)} periods missing", evidence)
    return Check("periods-covered", True, expected, f"all {len(wanted)} periods covered",
                 evidence)


def within(name: str, *, what: str, at: datetime | None, since: datetime,
           deadline_s: float) -> Check:
    expected = f"{what} within {deadline_s:g} s"
    evidence = {"since": iso(since), "at": iso(at), "deadlineSeconds": deadline_s}
    if at is None:
        return Check(name, False, expected, "not done", evidence)
    after = _seconds(at, since)
    return Check(name, after <= deadline_s, expected, f"done after {after:g} s", evidence)


def all_actioned_failed(acks: Sequence[AckRecord]) -> dict | None:
    """A flag for a run in which the VEN acknowledged ACTIONED, and every ACTIONED
    acknowledgement said FAILED: the protocol works, but its local control took none of
    the instructions (a handler that is missing, or always fails). None otherwise."""
    actioned = [a for a in acks if a.stage == "actioned"]
    if not actioned or any(a.result != "FAILED" for a in actioned):
        return None
    reasons = sorted({a.reason for a in actioned if a.reason})
    return {"name": "all-actioned-failed",
            "detail": f"every ACTIONED acknowledgement ({len(actioned)}) reported FAILED: "
                      "the site's local control took none of the instructions",
            "reasons": reasons[:5]}


# --- push notifications (webhook, MQTT) ------------------------------------------------------


@dataclass(frozen=True)
class EchoRecord:
    callback_url: str
    error: str  # "" when the echo check passed


@dataclass(frozen=True)
class DeliveryRecord:
    """One webhook notification the VTN queued for one of the VEN's subscriptions."""

    subscription_id: str
    callback_url: str
    object_type: str
    operation: str
    object_id: str
    state: str  # pending, delivered, abandoned
    created: datetime
    delivered_at: datetime | None
    attempts: int
    last_error: str = ""

    def as_dict(self) -> dict:
        return {"subscriptionID": self.subscription_id, "callbackUrl": self.callback_url,
                "objectType": self.object_type, "operation": self.operation,
                "objectID": self.object_id, "state": self.state, "created": iso(self.created),
                "deliveredAt": iso(self.delivered_at), "attempts": self.attempts,
                "lastError": self.last_error}


def webhook_echo(echoes: Sequence[EchoRecord]) -> Check:
    expected = ("every callback URL of the VEN's webhook subscriptions answers GET "
                "?echo=<value> with 200 and the value in its body")
    evidence = {"callbacks": [{"callbackUrl": e.callback_url, "error": e.error}
                              for e in echoes]}
    failed = [e for e in echoes if e.error]
    if failed:
        return Check("webhook-echo", False, expected,
                     f"{len(failed)} of {len(echoes)} failed: {failed[0].error}", evidence)
    return Check("webhook-echo", True, expected, f"all {len(echoes)} answered", evidence)


def webhook_delivered(deliveries: Sequence[DeliveryRecord], *, event_id: str,
                      issued_at: datetime, deadline_s: float) -> Check:
    """A notification about the site's own dispatch event reached (2xx) a callback of
    the VEN within the deadline."""
    expected = (f"a notification about the dispatch's event {event_id} delivered (answered "
                f"2xx) to a callback of the VEN within {deadline_s:g} s of its issue")
    about = [d for d in deliveries if d.object_type == "EVENT" and d.object_id == event_id]
    evidence = {"eventID": event_id, "issuedAt": iso(issued_at), "deadlineSeconds": deadline_s,
                "deliveries": [d.as_dict() for d in about]}
    delivered = sorted(d.delivered_at for d in about if d.state == "delivered"
                       and d.delivered_at is not None)
    if not delivered:
        if not about:
            return Check("webhook-delivered", False, expected,
                         "no notification about the event was queued for the VEN's "
                         "subscriptions (do they cover EVENT CREATE/UPDATE in this program?)",
                         evidence)
        errors = sorted({d.last_error for d in about if d.last_error})
        return Check("webhook-delivered", False, expected,
                     "not delivered" + (f": {errors[0]}" if errors else ""), evidence)
    after = _seconds(delivered[0], issued_at)
    return Check("webhook-delivered", after <= deadline_s, expected,
                 f"delivered after {after:g} s", evidence)


def notified_only_of_own(deliveries: Sequence[DeliveryRecord], *, foreign_ids: set[str],
                         name: str) -> Check:
    """No notification about another VEN's objects (``foreign_ids``) was queued."""
    expected = "no notification about an object of another VEN"
    leaked = [d for d in deliveries if d.object_id in foreign_ids]
    evidence = {"foreignObjectIDs": sorted(foreign_ids),
                "notifications": [d.as_dict() for d in deliveries][:50]}
    if leaked:
        return Check(name, False, expected,
                     f"{len(leaked)} notification(s) about another VEN's objects", evidence)
    return Check(name, True, expected,
                 f"none among {len(deliveries)} notification(s) of the scenario", evidence)


def topics_discovered(discoveries: Sequence[tuple[str, datetime]], *, ven_id: str) -> Check:
    """``discoveries``: (object type or "", time) of the VEN's requests for its topics."""
    expected = (f"the VEN asked for its event topics (/notifiers/mqtt/topics/vens/{ven_id}"
                "/events) before subscribing")
    evidence = {"venID": ven_id, "discovered": [{"objects": kind or "VEN", "at": iso(at)}
                                                for kind, at in discoveries]}
    events = [at for kind, at in discoveries if kind == "EVENT"]
    if not events:
        return Check("mqtt-topics-discovered", False, expected,
                     "never asked for its event topics", evidence)
    return Check("mqtt-topics-discovered", True, expected,
                 f"asked at {iso(max(events))}", evidence)


def woken(acks: Sequence[AckRecord], *, revision: RevisionRecord, within_s: float,
          poll_interval_s: float) -> Check:
    """The VEN acknowledged RECEIVED far sooner than its poll interval allows: it was
    woken by the notification on its topic."""
    expected = (f"an accepted RECEIVED of revision {revision.number} within {within_s:g} s "
                f"of its issue (the VEN polls every {poll_interval_s:g} s: only a "
                "notification on its topic makes it that quick)")
    mine = sorted((a for a in acks if a.revision == revision.number and a.stage == "received"
                   and a.outcome == ACCEPTED), key=lambda a: a.received_at)
    evidence = {"revision": revision.as_dict(), "withinSeconds": within_s,
                "pollIntervalSeconds": poll_interval_s,
                "acknowledgements": [a.as_dict(revision.issued_at) for a in mine]}
    if not mine:
        return Check("mqtt-woken", False, expected, "no accepted RECEIVED", evidence)
    after = _seconds(mine[0].received_at, revision.issued_at)
    return Check("mqtt-woken", after <= within_s, expected, f"RECEIVED after {after:g} s",
                 evidence)
