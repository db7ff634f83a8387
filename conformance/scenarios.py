"""The conformance scenarios: each drives the VTN's real services against a site's own VEN
(whatever polls with that site's credentials), waits for it, then grades what the VTN
recorded (docs/conformance.md says exactly what each expects).

A scenario is a function of a :class:`Context` returning its checks. Dispatches are issued
through ``dispatch.issuing`` under the site's contract for a product without notice
period (RESTORE or MW_DISPATCH), for the next whole hour, so they can start at once.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import OperationalError, close_old_connections, connection
from django.utils import timezone

from conformance import checks, evidence, forgeries, push
from conformance.checks import Check
from conformance.models import ConformanceRun, FaultHit, InjectedFault, SandboxFsp
from dispatch import comms, fsp_events, issuing, mapping, programs, rules, signing_keys
from dispatch.models import (
    Acknowledgement,
    Contract,
    DispatchInstruction,
    DispatchUnit,
    Fsp,
    FspSite,
    HeartbeatRecord,
    NetworkOperator,
    ReportIntake,
    SigningKey,
)
from vtn import mqtt
from vtn.models import Event

logger = logging.getLogger(__name__)
ISSUER = "conformance"
PREFERRED_PRODUCTS = ("RESTORE", "MW_DISPATCH")
SAMPLE_SECONDS = 0.5


class ScenarioError(RuntimeError):
    """The scenario cannot be driven for this site (e.g. no suitable contract)."""


class NotApplicable(RuntimeError):
    """The VEN does not use what the scenario grades (a push binding it never set up), or
    the VTN does not offer it: nothing is graded and the run does not fail."""


@dataclass
class Options:
    """Timing of a run. ``deadline_s`` defaults to two poll intervals plus the margin;
    ``heartbeat_interval_s`` to the shortest heartbeat interval of the site's products;
    ``fault_s`` to what the VTN needs to notice the outage (interval x grace factor plus
    the last-seen resolution)."""

    poll_interval_s: float = 10.0
    margin_s: float = 5.0
    deadline_s: float | None = None
    heartbeat_interval_s: float | None = None
    fault_s: float | None = None
    retry_after_s: int = 5
    metering_deadline_s: float = 120.0
    key_settle_s: float = 6.0  # let a VEN's JWKS re-fetch limit pass before rotating
    push_within_s: float = 2.0  # mqtt: a woken VEN acknowledges within this
    # parameter-change: how often the VEN re-reads the programs (the reference agent's
    # default is 60 s); it has this long, plus a poll and the margin, to follow a change.
    program_refresh_s: float = 60.0
    # parameter-change: the heartbeat interval it switches to (at most half the product's,
    # never below the 10 s the operator API allows); graded over three such intervals.
    changed_heartbeat_s: float = 30.0

    @property
    def ack_deadline_s(self) -> float:
        return self.deadline_s if self.deadline_s is not None else \
            2 * self.poll_interval_s + self.margin_s

    def as_dict(self) -> dict:
        return asdict(self) | {"ackDeadlineSeconds": self.ack_deadline_s}

    def as_report(self) -> dict:
        """The options as the report and the run API name them."""
        names = {"poll_interval_s": "pollIntervalSeconds", "margin_s": "marginSeconds",
                 "deadline_s": "deadlineSeconds",
                 "heartbeat_interval_s": "heartbeatIntervalSeconds",
                 "fault_s": "faultSeconds", "retry_after_s": "retryAfterSeconds",
                 "metering_deadline_s": "meteringDeadlineSeconds",
                 "key_settle_s": "keyRotationSettleSeconds",
                 "push_within_s": "pushWithinSeconds",
                 "program_refresh_s": "programRefreshSeconds",
                 "changed_heartbeat_s": "changedHeartbeatSeconds"}
        return {names[k]: v for k, v in asdict(self).items()} | {
            "ackDeadlineSeconds": self.ack_deadline_s}

    @classmethod
    def from_dict(cls, data: dict | None) -> Options:
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in (data or {}).items() if k in names and v is not None})


@dataclass
class ScenarioResult:
    name: str
    title: str
    description: str
    started: datetime
    finished: datetime
    checks: list[Check]
    facts: dict = field(default_factory=dict)
    error: str = ""
    not_applicable: str = ""  # why nothing was graded

    @property
    def passed(self) -> bool:
        return not self.error and all(c.passed for c in self.checks)


class HeardSampler:
    """Samples the site's ``last_seen`` (moved by every request of its VEN) in a thread,
    so gaps between polls can be graded afterwards."""

    def __init__(self, site: FspSite) -> None:
        self.site_id = site.pk
        self.values: list[datetime] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="conformance-sampler",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                value = FspSite.objects.filter(pk=self.site_id).values_list(
                    "last_seen", flat=True).first()
                if value is not None and (not self.values or value > self.values[-1]):
                    self.values.append(value)
                self._stop.wait(SAMPLE_SECONDS)
        except Exception:  # never take the run down over sampling
            logger.exception("conformance sampler stopped")
        finally:
            connection.close()


def retrying(operation: Callable, attempts: int = 8):
    """``operation()``, again after SQLite's "database is locked" (a transaction that
    read before writing loses to a concurrent writer at once; PostgreSQL never says it)."""
    for attempt in range(attempts):
        try:
            return operation()
        except OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.1 * (attempt + 1))


class Context:
    """What a scenario works with: the site, its unit, timing, and the run's progress."""

    def __init__(self, *, site: FspSite, options: Options, run: ConformanceRun | None = None,
                 sampler: HeardSampler | None = None,
                 log: Callable[[str], None] | None = None) -> None:
        self.site = site
        self.options = options
        self.run = run
        self.sampler = sampler
        self.log = log or (lambda message: logger.info("%s", message))
        self.units = list(site.units.order_by("reference"))
        if not self.units:
            raise ScenarioError(f"site {site} has no dispatch units")
        self.unit, self.contract = self._dispatchable()
        self.faults: list[InjectedFault] = []
        self.dispatches: list[DispatchInstruction] = []  # every dispatch the run issued

    @property
    def client_id(self) -> str:
        return self.site.ven.client_id

    def no_notice_contract(self, unit: DispatchUnit,
                           setpoint_types: tuple[str, ...] = ()) -> Contract:
        """A contract of ``unit`` for a product without notice period (and taking every one
        of ``setpoint_types``), preferring RESTORE and MW_DISPATCH; NotApplicable when the
        unit has none."""
        found = [c for c in unit.contracts.select_related("product", "operator")
                 if not programs.product_parameters(c.operator, c.product)["notice_period"]
                 and set(setpoint_types) <= set(c.product.setpoint_types)]
        found.sort(key=lambda c: (c.product.code not in PREFERRED_PRODUCTS,
                                  PREFERRED_PRODUCTS.index(c.product.code)
                                  if c.product.code in PREFERRED_PRODUCTS else 0))
        if not found:
            raise NotApplicable(f"unit {unit.reference} has no contract for a product without "
                                "notice period" + (f" taking {' and '.join(setpoint_types)} "
                                                   "setpoints" if setpoint_types else ""))
        return found[0]

    def _dispatchable(self) -> tuple[DispatchUnit, Contract]:
        def no_notice(contract: Contract | None) -> bool:  # with the operator's own values
            return contract is not None and not programs.product_parameters(
                contract.operator, contract.product)["notice_period"]

        for code in PREFERRED_PRODUCTS:
            for unit in self.units:
                contract = unit.contracts.filter(product__code=code).select_related(
                    "product", "operator").first()
                if contract is not None and no_notice(contract):
                    return unit, contract
        for unit in self.units:
            for contract in unit.contracts.select_related("product", "operator"):
                if no_notice(contract):
                    return unit, contract
        raise ScenarioError(f"no unit of site {self.site} has a contract for a product "
                            "without notice period (RESTORE or MW_DISPATCH)")

    def with_notice(self) -> tuple[DispatchUnit, Contract, timedelta]:
        """A unit and contract of the site for a product with a notice period of at most
        an hour (with the operator's own values), and that notice period."""
        for unit in self.units:
            for contract in unit.contracts.select_related("product", "operator"):
                notice = programs.product_parameters(contract.operator,
                                                     contract.product)["notice_period"]
                if notice and notice <= timedelta(hours=1):
                    return unit, contract, notice
        raise NotApplicable("no unit of the site has a contract for a product with a notice "
                            "period of an hour or less (DYNAMIC)")

    def heartbeat_interval_s(self) -> float | None:
        if self.options.heartbeat_interval_s:
            return float(self.options.heartbeat_interval_s)
        site = comms.sites_with_intervals().filter(pk=self.site.pk).first()
        interval = comms.effective_interval(site) if site else None
        return interval.total_seconds() if interval else None

    # -- driving the VTN --

    def timings(self, fractions: tuple[float, ...], start: datetime, *,
                unit: DispatchUnit | None = None,
                contract: Contract | None = None) -> list[rules.Timing]:
        capacity = Decimal((unit or self.unit).capacity_kw)
        product = (contract or self.contract).product
        if product.quantity == product.Quantity.FIXED:
            fractions = (fractions[0],) * len(fractions)
        kind = product.setpoint_types[0] if "absolute" not in product.setpoint_types \
            else "absolute"
        return [rules.Timing(setpoint_time=start + timedelta(minutes=30 * i),
                             volume=max(Decimal(1), (capacity * Decimal(str(f))).quantize(
                                 Decimal(1))), setpoint_type=kind)
                for i, f in enumerate(fractions)]

    def issue(self, *, status: str = "run", fractions: tuple[float, ...] = (0.5, 0.25),
              reason: str = "",
              timings: Callable[[datetime], list[rules.Timing]] | None = None,
              unit: DispatchUnit | None = None, contract: Contract | None = None,
              start: datetime | None = None) -> DispatchInstruction:
        """Issue a dispatch for the next whole hour (or from ``start``), one hour long:
        ``fractions`` of the unit's capacity, or the setpoints ``timings(service start)``
        gives; of the scenario's unit under its contract, or of ``unit`` under
        ``contract`` (by default its no-notice contract)."""
        now = timezone.now()
        start = start or now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        if unit is None:
            unit, contract = self.unit, contract or self.contract
        elif contract is None:
            contract = self.no_notice_contract(unit)
        dispatch = retrying(lambda: issuing.issue_dispatch(
            unit=unit, product=contract.product, contract=contract.identifier,
            service_start=start, service_end=start + timedelta(hours=1),
            timings=timings(start) if timings else self.timings(fractions, start, unit=unit,
                                                                contract=contract),
            status=status,
            reference=f"CONF-{now:%Y%m%d}-{secrets.token_hex(4)}", issued_by=ISSUER,
            reason=reason or "conformance scenario"))
        self.log(f"issued {dispatch.reference} revision 1 ({status})")
        self.dispatches.append(dispatch)
        return dispatch

    def revise(self, dispatch: DispatchInstruction, *, status: str | None = None,
               fractions: tuple[float, ...] | None = None,
               setpoints: Callable[[datetime], list[rules.Timing]] | None = None) -> int:
        dispatch.refresh_from_db()
        timings = setpoints(dispatch.service_start) if setpoints else \
            self.timings(fractions, dispatch.service_start, unit=dispatch.unit,
                         contract=dispatch.contract) if fractions else None
        revision = retrying(lambda: issuing.revise_dispatch(
            dispatch=dispatch, status=status, timings=timings, issued_by=ISSUER,
            reason="conformance scenario"))
        self.log(f"revised {dispatch.reference}: revision {revision.number} "
                 f"({revision.document['status']})")
        return revision.number

    def stop(self, dispatch: DispatchInstruction, *, emergency: bool = False) -> int:
        dispatch.refresh_from_db()
        revision = retrying(lambda: issuing.stop_dispatch(
            dispatch=dispatch, emergency=emergency, issued_by=ISSUER,
            reason="conformance scenario"))
        self.log(f"{'emergency-' if emergency else ''}stopped {dispatch.reference}: revision "
                 f"{revision.number}")
        return revision.number

    def wait(self, predicate: Callable[[], bool], timeout_s: float, step: float = 0.2) -> bool:
        deadline = time.monotonic() + timeout_s
        while True:
            if not connection.in_atomic_block:  # a long run: drop a broken connection
                close_old_connections()
            if predicate():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(step)

    def wait_for_acks(self, dispatch: DispatchInstruction, number: int,
                      stages: tuple[str, ...], timeout_s: float | None = None) -> bool:
        def arrived() -> bool:
            acks = evidence.acknowledgements(dispatch)
            return all(any(a.revision == number and a.stage == s and a.outcome == "accepted"
                           for a in acks) for s in stages)
        return self.wait(arrived, self.options.ack_deadline_s if timeout_s is None
                         else timeout_s)

    def stages_for(self, status: str) -> tuple[str, ...]:
        return ("received", "actioned") if rules.wire(status) in checks.ACTIONABLE \
            else ("received",)

    def fault(self, *, scope: str, seconds: float) -> InjectedFault:
        now = timezone.now()
        fault = retrying(lambda: InjectedFault.objects.create(
            client_id=self.client_id, run=self.run, scope=scope, starts_at=now,
            ends_at=now + timedelta(seconds=seconds), retry_after_s=self.options.retry_after_s))
        self.faults.append(fault)
        self.log(f"fault injected: {scope} requests of {self.client_id} answered 503 for "
                 f"{seconds:g} s")
        return fault

    def end_fault(self, fault: InjectedFault) -> None:
        now = timezone.now()
        if fault.ends_at > now:
            fault.ends_at = now
            retrying(lambda: fault.save(update_fields=["ends_at"]))

    def end_faults(self) -> None:
        for fault in self.faults:
            fault.refresh_from_db()
            self.end_fault(fault)

    def set_awaiting(self, awaiting: dict | None) -> None:
        if awaiting:
            self.log(f"ACTION REQUIRED: {awaiting['instruction']}")
        if self.run is not None:
            run = self.run
            run.awaiting = awaiting
            retrying(lambda: run.save(update_fields=["awaiting"]))

    # -- evidence --

    def heard(self, start: datetime, end: datetime) -> tuple[list[datetime], datetime | None,
                                                             int]:
        """Times the site was heard from in [start, end], the last time before, and the
        number of heartbeat reports in the window."""
        sampled = list(self.sampler.values) if self.sampler else []
        beats = evidence.heartbeat_times(self.site, start, end)
        acks = DispatchInstruction.objects.filter(unit__site=self.site)
        ack_times = list(
            Acknowledgement.objects.filter(
                revision__instruction__in=acks, received_at__gte=start, received_at__lte=end)
            .values_list("received_at", flat=True))
        intake_times = list(ReportIntake.objects.filter(
            site=self.site, received_at__gte=start, received_at__lte=end)
            .values_list("received_at", flat=True))
        before = [t for t in sampled if t <= start]
        last_beat = HeartbeatRecord.objects.filter(site=self.site, received_at__lte=start) \
            .order_by("-received_at").values_list("received_at", flat=True).first()
        candidates = [t for t in (before[-1] if before else None, last_beat) if t]
        return (sampled + beats + ack_times + intake_times,
                max(candidates) if candidates else None, len(beats))

    def heartbeat_check(self, start: datetime, end: datetime,
                        excluded: Sequence[tuple[datetime, datetime]] = ()) -> Check:
        heard, before, beats = self.heard(start, end)
        return checks.heartbeat_regular(heard=heard, start=start, end=end,
                                        interval_s=self.heartbeat_interval_s(),
                                        heard_before=before, excluded=excluded,
                                        heartbeat_reports=beats)


# --- the scenarios ---------------------------------------------------------------------------


def _dispatch_facts(dispatch: DispatchInstruction) -> dict:
    return {"dispatchRef": dispatch.reference, "networkOperatorId": dispatch.operator.code,
            "unit": dispatch.unit.reference, "contract": dispatch.contract.identifier,
            "product": dispatch.contract.product.code,
            "revisions": [r.as_dict() for r in evidence.revisions(dispatch)]}


def _graded(ctx: Context, dispatch: DispatchInstruction, started: datetime, *,
            allow_stale: bool = False, excluded=()) -> list[Check]:
    revs = evidence.revisions(dispatch)
    acks = evidence.acknowledgements(dispatch)
    deadline = ctx.options.ack_deadline_s
    result = checks.revision_checks(revs, acks, deadline_s=deadline)
    result.append(checks.acks_valid(revs, acks, allow_stale=allow_stale))
    result.append(ctx.heartbeat_check(started, timezone.now(), list(excluded)))
    return result


def lifecycle(ctx: Context) -> tuple[list[Check], dict]:
    started = timezone.now()
    dispatch = ctx.issue(status="pre-notify")
    ctx.wait_for_acks(dispatch, 1, ("received",))
    # A VEN may also report a pre-notification ACTIONED; let it land before revising.
    ctx.wait_for_acks(dispatch, 1, ("actioned",), timeout_s=ctx.options.margin_s)
    for step in ("run", "revise"):
        number = ctx.revise(dispatch, status="run",
                            fractions=(0.5, 0.25) if step == "run" else (0.4, 0.2))
        ctx.wait_for_acks(dispatch, number, ("received", "actioned"))
    number = ctx.stop(dispatch)
    ctx.wait_for_acks(dispatch, number, ("received", "actioned"))
    return _graded(ctx, dispatch, started), _dispatch_facts(dispatch)


def emergency_stop(ctx: Context) -> tuple[list[Check], dict]:
    started = timezone.now()
    dispatch = ctx.issue(status="run")
    ctx.wait_for_acks(dispatch, 1, ("received", "actioned"))
    number = ctx.stop(dispatch, emergency=True)
    ctx.wait_for_acks(dispatch, number, ("received", "actioned"))
    return _graded(ctx, dispatch, started), _dispatch_facts(dispatch)


def stale_revision(ctx: Context) -> tuple[list[Check], dict]:
    started = timezone.now()
    dispatch = ctx.issue(status="run", fractions=(0.5, 0.25))
    newest = ctx.revise(dispatch, fractions=(0.3, 0.15))  # at once: no poll in between
    ctx.wait_for_acks(dispatch, newest, ("received", "actioned"))
    time.sleep(min(ctx.options.poll_interval_s, 10))  # room for a late ack of revision 1
    revs = evidence.revisions(dispatch)
    acks = evidence.acknowledgements(dispatch)
    older, newer = revs[0], revs[-1]
    deadline = ctx.options.ack_deadline_s
    result = [checks.acknowledged(newer, acks, stage="received", deadline_s=deadline),
              checks.acknowledged(newer, acks, stage="actioned", deadline_s=deadline),
              checks.stale_recorded(older, newer, acks),
              checks.not_actioned_stale(older, newer, acks),
              checks.acks_valid(revs, acks, allow_stale=True),
              ctx.heartbeat_check(started, timezone.now())]
    return result, _dispatch_facts(dispatch)


SANDBOX_FLEET_FSP = "demo-fleet"  # conformance.fleet.FLEET_FSP


def _sandbox_only(ctx: Context, operator: NetworkOperator, doing: str) -> bool:
    """Whether the run is on a sandbox site (self-service or the demo fleet). Such a run
    changes the operator's own settings only when the operator serves nothing outside the
    sandbox (ScenarioError otherwise), so a sandbox user never touches production."""
    fsp = ctx.site.fsp
    if not (SandboxFsp.objects.filter(fsp=fsp).exists() or fsp.identifier == SANDBOX_FLEET_FSP):
        return False
    outside = Fsp.objects.filter(operator=operator, sandbox_enrolment__isnull=True).exclude(
        identifier=SANDBOX_FLEET_FSP)
    if outside.exists():
        raise ScenarioError(
            f"operator {operator.code} also serves FSPs outside the sandbox "
            f"({', '.join(outside.values_list('identifier', flat=True)[:5])}); the sandbox "
            f"does not {doing}. Use a sandbox-only CONFORMANCE_OPERATOR.")
    return True


def _rotate(ctx: Context, operator: NetworkOperator) -> SigningKey:
    """Rotate the operator's signing key for the key-rotation scenario.

    A run on a sandbox site (self-service or the demo fleet) rotates with a short
    verification period and few retired keys kept, so runs cannot grow the JWKS; and it
    refuses when the operator also serves FSPs outside the sandbox, so a sandbox user can
    never rotate a production key. A run the operator starts on one of its own FSPs
    rotates as ``dispatch rotate-key`` does."""
    if not _sandbox_only(ctx, operator, "rotate its signing key"):
        return signing_keys.rotate_signing_key(operator=operator.code)
    return signing_keys.rotate_signing_key(
        operator=operator.code,
        verify_for=timedelta(minutes=settings.CONFORMANCE_ROTATED_KEY_VERIFY_MINUTES),
        keep_retired=settings.CONFORMANCE_ROTATED_KEYS_KEPT)


def key_rotation(ctx: Context) -> tuple[list[Check], dict]:
    started = timezone.now()
    dispatch = ctx.issue(status="run")
    ctx.wait_for_acks(dispatch, 1, ("received", "actioned"))
    pause = max(0.0, ctx.options.key_settle_s - (timezone.now() - started).total_seconds())
    time.sleep(pause)
    old_kid = evidence.revisions(dispatch)[0].kid
    new_key = retrying(lambda: _rotate(ctx, dispatch.operator))
    ctx.log(f"rotated the {dispatch.operator.code} signing key: {old_kid} -> {new_key.kid}")
    number = ctx.revise(dispatch, fractions=(0.4, 0.2))
    ctx.wait_for_acks(dispatch, number, ("received", "actioned"))
    revs = evidence.revisions(dispatch)
    acks = evidence.acknowledgements(dispatch)
    rotated = revs[-1]
    deadline = ctx.options.ack_deadline_s
    result = [checks.acknowledged(rotated, acks, stage="received", deadline_s=deadline),
              checks.acknowledged(rotated, acks, stage="actioned", deadline_s=deadline),
              checks.acks_valid(revs, acks),
              ctx.heartbeat_check(started, timezone.now())]
    for check in result[:2]:
        check.evidence["signedWith"] = {"before": old_kid, "after": rotated.kid}
    return result, _dispatch_facts(dispatch) | {"oldKid": old_kid, "newKid": new_key.kid}


def comms_loss(ctx: Context) -> tuple[list[Check], dict]:
    started = timezone.now()
    interval = comms.sites_with_intervals().filter(pk=ctx.site.pk).first()
    allowed = interval.interval.total_seconds() * comms.grace_factor() \
        if interval and interval.interval else 0.0
    outage_s = max(float(ctx.options.fault_s or 0),
                   allowed + comms.resolution_seconds() + 3.0)
    deadline = ctx.options.ack_deadline_s
    retry_after = ctx.options.retry_after_s
    # 1. The site's writes fail while it receives a dispatch: its acknowledgements queue.
    writes = ctx.fault(scope=InjectedFault.Scope.WRITES, seconds=deadline * 4)
    dispatch = ctx.issue(status="run")
    ctx.wait(lambda: FaultHit.objects.filter(fault=writes, method__in=("POST", "PUT"))
             .exists(), deadline)
    ctx.end_fault(writes)
    # 2. The VTN is unreachable for the site; the comms check (the beat task) runs.
    outage = ctx.fault(scope=InjectedFault.Scope.ALL, seconds=outage_s)
    while timezone.now() < outage.ends_at:
        retrying(comms.check_comms)
        time.sleep(min(1.0, max(0.05, (outage.ends_at - timezone.now()).total_seconds())))
    retrying(comms.check_comms)
    # 3. Restored: the VEN comes back and delivers what it queued. Backing off is right,
    # but never for longer than the heartbeat interval the VEN must keep.
    restore_deadline = max(deadline + retry_after, ctx.heartbeat_interval_s() or 0.0)

    def recovered() -> bool:
        acks = evidence.acknowledgements(dispatch)
        online = any(t.to_state == "online" and t.at >= outage.ends_at
                     for t in evidence.transitions(ctx.site, started))
        return online and all(any(a.revision == 1 and a.stage == s for a in acks)
                              for s in ("received", "actioned"))
    ctx.wait(recovered, restore_deadline)
    time.sleep(min(ctx.options.poll_interval_s, 5))  # room for a duplicate to show up
    revs = evidence.revisions(dispatch)
    acks = evidence.acknowledgements(dispatch)
    transitions = evidence.transitions(ctx.site, started)
    heard, _, _ = ctx.heard(outage.ends_at, timezone.now())
    after = [t for t in heard if t > outage.ends_at]
    lost_marked = checks.comms_lost_marked(transitions, fault_start=outage.starts_at,
                                           fault_end=outage.ends_at)
    if not allowed:  # the VTN never marks a site without heartbeat products lost
        lost_marked = Check(lost_marked.name, True, lost_marked.expected,
                            "not applicable: no product of the site has a heartbeat interval")
    result = [
        lost_marked,
        checks.backed_off(evidence.fault_hits(outage), fault_start=outage.starts_at,
                          fault_end=outage.ends_at, retry_after_s=retry_after),
        checks.resumed(heard_after=min(after) if after else None, fault_end=outage.ends_at,
                       deadline_s=restore_deadline),
        checks.comms_restored(transitions, fault_end=outage.ends_at,
                              deadline_s=restore_deadline),
        checks.exactly_once(revs[0], acks, after=outage.ends_at),
        ctx.heartbeat_check(started, timezone.now(), [
            (writes.starts_at, outage.ends_at + timedelta(seconds=retry_after))]),
    ]
    facts = _dispatch_facts(dispatch) | {
        "outageSeconds": round(outage_s, 3), "retryAfterSeconds": retry_after,
        "commsLostAfterSeconds": round(allowed, 3),
        "writesRefused": [checks.iso(writes.starts_at), checks.iso(writes.ends_at)],
        "outage": [checks.iso(outage.starts_at), checks.iso(outage.ends_at)]}
    return result, facts


def metering_periods(now: datetime) -> list[datetime]:
    """The four half-hours of the two hours before the last half-hour boundary."""
    boundary = now.astimezone(UTC).replace(second=0, microsecond=0)
    boundary -= timedelta(minutes=boundary.minute % 30)
    return [boundary - timedelta(minutes=30 * k) for k in range(4, 0, -1)]


def metering(ctx: Context) -> tuple[list[Check], dict]:
    started = timezone.now()
    periods = metering_periods(started)
    units = [u.reference for u in ctx.units]
    event = fsp_events.ensure_events(ctx.site.fsp.operator, ctx.site.fsp.identifier)[
        fsp_events.METERING]
    wanted = [(unit, start) for unit in units for start in periods]
    deadline = ctx.options.metering_deadline_s
    instruction = (
        f"Send half-hourly USAGE readings (kWh, positive = import) of units "
        f"{', '.join(units)} for the four periods from {checks.iso(periods[0])} to "
        f"{checks.iso(periods[-1] + timedelta(minutes=30))} as a report on your metering "
        f"event {event.pk} ({event.event_name}) within {deadline:g} s. If you sent these "
        "periods before, send the same values again (or mark changes with GB_CORRECTION).")
    ctx.set_awaiting({"scenario": "metering", "instruction": instruction,
                      "eventID": str(event.pk), "eventName": event.event_name,
                      "readingType": "USAGE", "units": units,
                      "periods": [{"start": checks.iso(p),
                                   "end": checks.iso(p + timedelta(minutes=30))}
                                  for p in periods],
                      "deadline": checks.iso(started + timedelta(seconds=deadline))})
    done: dict = {}

    def covered() -> bool:
        intakes = evidence.intakes(ctx.site, started)
        found = set(evidence.current_readings(ctx.site, periods))
        if intakes and all(w in found for w in wanted):
            done.setdefault("at", max(i.received_at for i in intakes))
            return True
        return False
    try:
        ctx.wait(covered, deadline, step=0.5)
    finally:
        ctx.set_awaiting(None)
    intakes = evidence.intakes(ctx.site, started)
    found = evidence.current_readings(ctx.site, periods)
    result = [checks.readings_accepted(intakes),
              checks.periods_covered(wanted, found if intakes else []),
              checks.within("readings-in-time", what="the periods asked for covered",
                            at=done.get("at"), since=started, deadline_s=deadline),
              ctx.heartbeat_check(started, timezone.now())]
    return result, {"instruction": instruction, "meteringEventID": str(event.pk)}


def notice_period(ctx: Context) -> tuple[list[Check], dict]:
    """A product with a notice period: pre-notified at least the notice ahead, then run."""
    unit, contract, notice = ctx.with_notice()
    started = timezone.now()
    earliest = started + notice + timedelta(minutes=1)
    start = earliest.replace(second=0, microsecond=0) + timedelta(
        minutes=-earliest.minute % 30 or 30)
    dispatch = ctx.issue(status="pre-notify", unit=unit, contract=contract, start=start)
    ctx.wait_for_acks(dispatch, 1, ("received",))
    ctx.wait_for_acks(dispatch, 1, ("actioned",), timeout_s=ctx.options.margin_s)
    number = ctx.revise(dispatch, status="run")
    ctx.wait_for_acks(dispatch, number, ("received", "actioned"))
    revs = evidence.revisions(dispatch)
    acks = evidence.acknowledgements(dispatch)
    deadline = ctx.options.ack_deadline_s
    result = [checks.acknowledged(revs[0], acks, stage="received", deadline_s=deadline),
              checks.acknowledged(revs[-1], acks, stage="received", deadline_s=deadline),
              checks.acknowledged(revs[-1], acks, stage="actioned", deadline_s=deadline),
              checks.acks_valid(revs, acks),
              ctx.heartbeat_check(started, timezone.now())]
    return result, _dispatch_facts(dispatch) | {
        "noticePeriod": mapping.duration(notice), "serviceStart": checks.iso(start)}


# The shortest heartbeat interval the operator API allows, so the least parameter-change
# can set. A VEN has the run's ``program_refresh_s`` to read the changed program before
# it is graded.
MIN_HEARTBEAT_S = 10.0


def _heartbeat_contract(ctx: Context) -> tuple[Contract, float]:
    """The site's contract whose product sets its (shortest) heartbeat interval."""
    best: tuple[Contract, float] | None = None
    for unit in ctx.units:
        for contract in unit.contracts.select_related("product", "operator"):
            interval = programs.product_parameters(contract.operator,
                                                   contract.product)["heartbeat_interval"]
            if interval and (best is None or interval.total_seconds() < best[1]):
                best = (contract, interval.total_seconds())
    if best is None:
        raise NotApplicable("no product of the site has a heartbeat interval")
    return best


def parameter_change(ctx: Context) -> tuple[list[Check], dict]:
    """The operator shortens the heartbeat interval of the site's product: the VEN reads
    the changed program and heartbeats at the new interval; the old value is put back."""
    contract, old_s = _heartbeat_contract(ctx)
    operator, product = contract.operator, contract.product
    _sandbox_only(ctx, operator, "change its product parameters")
    new_s = max(MIN_HEARTBEAT_S, min(ctx.options.changed_heartbeat_s, old_s / 2))
    own = programs.product_parameter_settings(operator, product)
    had = (own.parameters["heartbeat_interval"] or "NONE") \
        if "heartbeat_interval" in own.operator_set else "DEFAULT"
    started = timezone.now()
    retrying(lambda: programs.set_product_parameters(
        operator=operator.code, product=product.code,
        changes={"heartbeat_interval": f"PT{int(new_s)}S"}, changed_by=ISSUER,
        reason="conformance scenario parameter-change"))
    changed_at = timezone.now()
    ctx.log(f"{operator.code} {product.code} heartbeat interval: {old_s:g} s -> {new_s:g} s")
    graded_from = changed_at + timedelta(seconds=ctx.options.program_refresh_s
                                         + ctx.options.poll_interval_s + ctx.options.margin_s)
    graded_to = graded_from + timedelta(seconds=3 * new_s)
    try:
        ctx.wait(lambda: timezone.now() >= graded_to, (graded_to - changed_at).total_seconds()
                 + 5, step=1.0)
    finally:
        retrying(lambda: programs.set_product_parameters(
            operator=operator.code, product=product.code,
            changes={"heartbeat_interval": had}, changed_by=ISSUER,
            reason="conformance scenario parameter-change: restored"))
        ctx.log(f"{operator.code} {product.code} heartbeat interval restored ({had})")
    reports = evidence.heartbeat_times(ctx.site, graded_from, graded_to)
    result = [checks.heartbeat_interval_followed(reports=reports, start=graded_from,
                                                 end=graded_to, interval_s=new_s),
              ctx.heartbeat_check(started, timezone.now())]
    return result, {"product": product.code, "oldIntervalSeconds": old_s,
                    "newIntervalSeconds": new_s, "changedAt": checks.iso(changed_at),
                    "gradedFrom": checks.iso(graded_from), "gradedTo": checks.iso(graded_to)}


def availability_windows(now: datetime) -> list[tuple[datetime, datetime]]:
    """Two one-hour windows from the second whole hour after ``now``: far enough ahead
    that a declaration sent within any deadline is not late."""
    start = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=2)
    return [(start + timedelta(hours=k), start + timedelta(hours=k + 1)) for k in range(2)]


def availability(ctx: Context) -> tuple[list[Check], dict]:
    """Availability declarations on request, signed with the site key."""
    started = timezone.now()
    windows = availability_windows(started)
    units = [u.reference for u in ctx.units]
    event = fsp_events.ensure_events(ctx.site.fsp.operator, ctx.site.fsp.identifier)[
        fsp_events.AVAILABILITY]
    wanted = [(unit, start) for unit in units for start, _ in windows]
    deadline = ctx.options.metering_deadline_s
    instruction = (
        f"Declare the availability (kW each unit can deliver, >= 0) of units "
        f"{', '.join(units)} for the one-hour windows from {checks.iso(windows[0][0])} and "
        f"{checks.iso(windows[1][0])} as a report on your availability event {event.pk} "
        f"({event.event_name}), signed with your site key (profile section 12), within "
        f"{deadline:g} s.")
    ctx.set_awaiting({"scenario": "availability", "instruction": instruction,
                      "eventID": str(event.pk), "eventName": event.event_name,
                      "units": units,
                      "windows": [{"start": checks.iso(s), "end": checks.iso(e)}
                                  for s, e in windows],
                      "deadline": checks.iso(started + timedelta(seconds=deadline))})
    starts = [start for start, _ in windows]
    done: dict = {}

    def covered() -> bool:
        intakes = evidence.intakes(ctx.site, started, ReportIntake.Kind.AVAILABILITY)
        found = set(evidence.current_declarations(ctx.site, starts))
        if intakes and all(w in found for w in wanted):
            done.setdefault("at", max(i.received_at for i in intakes))
            return True
        return False
    try:
        ctx.wait(covered, deadline, step=0.5)
    finally:
        ctx.set_awaiting(None)
    intakes = evidence.intakes(ctx.site, started, ReportIntake.Kind.AVAILABILITY)
    found = evidence.current_declarations(ctx.site, starts)
    result = [checks.declarations_accepted(intakes),
              checks.reports_signed("declarations-signed", "availability", intakes),
              checks.windows_covered(wanted, found if intakes else []),
              checks.within("declarations-in-time", what="the windows asked for declared",
                            at=done.get("at"), since=started, deadline_s=deadline),
              ctx.heartbeat_check(started, timezone.now())]
    return result, {"instruction": instruction, "availabilityEventID": str(event.pk)}


def forged_dispatch(ctx: Context) -> tuple[list[Check], dict]:
    """A genuine dispatch, then a tampered copy of it that the VEN must refuse."""
    started = timezone.now()
    dispatch = ctx.issue(status="run")
    ctx.wait_for_acks(dispatch, 1, ("received", "actioned"))
    forged = retrying(lambda: forgeries.forge(dispatch))
    forged_id = str(forged.pk)
    ctx.log(f"forged event {forged_id}: {dispatch.reference} claimed as revision "
            f"{dispatch.revision + 1} with a doubled setpoint and revision 1's signature")
    deadline = ctx.options.ack_deadline_s
    try:
        ctx.wait(lambda: "REFUSED" in forgeries.stages_reported(forged, ctx.client_id),
                 deadline)
        time.sleep(min(ctx.options.poll_interval_s, 5))  # room for a wrong RECEIVED
        stages = forgeries.stages_reported(forged, ctx.client_id)
    finally:
        retrying(lambda: forgeries.withdraw(forged))
    revs = evidence.revisions(dispatch)
    acks = evidence.acknowledgements(dispatch)
    result = [checks.forgery_refused(stages, event_id=forged_id, deadline_s=deadline),
              checks.forgery_not_actioned(stages, event_id=forged_id),
              *checks.revision_checks(revs, acks, deadline_s=deadline),
              checks.acks_valid(revs, acks),
              ctx.heartbeat_check(started, timezone.now())]
    return result, _dispatch_facts(dispatch) | {"forgedEventID": forged_id}


def _published_event(dispatch: DispatchInstruction) -> Event:
    """The OpenADR event a dispatch was published as."""
    dispatch.refresh_from_db()
    if dispatch.event is None:
        raise ScenarioError(f"dispatch {dispatch.reference} was not published as an event")
    return dispatch.event


def webhook(ctx: Context) -> tuple[list[Check], dict]:
    """Webhook subscriptions of the site's VEN: echo, delivery of its own dispatch's
    event, and nothing about another VEN's event in the same program."""
    if not settings.VTN_WEBHOOKS_ENABLED:
        raise NotApplicable("this VTN does not deliver webhooks (VTN_WEBHOOKS_ENABLED)")
    subscriptions = push.event_subscriptions(ctx.client_id)
    if not subscriptions:
        raise NotApplicable(
            "the VEN has no subscription with a callbackUrl for EVENT objects, so the "
            "sandbox has no webhook to grade; subscribe before the run to have it graded")
    started = timezone.now()
    echoes = push.echo_checks(subscriptions)
    dispatch = ctx.issue(status="run")
    event = _published_event(dispatch)
    event_id = str(event.pk)
    decoy = retrying(lambda: push.create_decoy(str(event.program_id)))
    ctx.log(f"decoy event {decoy.pk} for another VEN in the dispatch's program")
    issued_at = evidence.revisions(dispatch)[0].issued_at
    deadline = ctx.options.ack_deadline_s

    def delivered() -> bool:
        return any(d.object_id == event_id and d.state == "delivered"
                   for d in push.deliveries(subscriptions, started))
    ctx.wait(delivered, deadline)
    ctx.wait_for_acks(dispatch, 1, ("received", "actioned"), timeout_s=ctx.options.margin_s)
    time.sleep(1.0)  # the decoy's fan-out, had it reached the VEN, is written by now
    retrying(lambda: push.delete_decoy(decoy))
    found = push.deliveries(subscriptions, started)
    result = [checks.webhook_echo(echoes),
              checks.webhook_delivered(found, event_id=event_id, issued_at=issued_at,
                                       deadline_s=deadline),
              checks.notified_only_of_own(found, foreign_ids={str(decoy.pk)},
                                          name="webhook-private")]
    return result, _dispatch_facts(dispatch) | {
        "subscriptions": [s.pk for s in subscriptions], "eventID": event_id,
        "decoyEventID": str(decoy.pk)}


def mqtt_push(ctx: Context) -> tuple[list[Check], dict]:
    """MQTT (3.1): the VEN discovered its topics and wakes on a notification there."""
    if not mqtt.enabled():
        raise NotApplicable("this VTN offers no MQTT notifier (VTN_MQTT_BROKER_URL unset)")
    ven_id = str(ctx.site.ven_id)
    found = push.discoveries(ctx.client_id, ven_id)
    if not found:
        raise NotApplicable(
            f"the VEN never asked for its MQTT topics (/notifiers/mqtt/topics/vens/{ven_id}"
            "/...), so it does not use MQTT; start it with MQTT on to have it graded")
    poll, within = ctx.options.poll_interval_s, ctx.options.push_within_s
    if poll < 3 * within:
        raise NotApplicable(
            f"the VEN polls every {poll:g} s, too often to tell a wake-up from a poll; run "
            f"with pollIntervalSeconds of at least {3 * within:g} (3 x pushWithinSeconds) "
            "and a VEN that polls that rarely")
    started = timezone.now()
    dispatch = ctx.issue(status="run")
    ctx.wait_for_acks(dispatch, 1, ("received", "actioned"))
    revs = evidence.revisions(dispatch)
    acks = evidence.acknowledgements(dispatch)
    result = [checks.topics_discovered(found, ven_id=ven_id),
              checks.woken(acks, revision=revs[0], within_s=within, poll_interval_s=poll),
              checks.acks_valid(revs, acks),
              ctx.heartbeat_check(started, timezone.now())]
    return result, _dispatch_facts(dispatch) | {"venID": ven_id}


def _two_revisions(ctx: Context, unit: DispatchUnit,
                   first: Callable[[datetime], list[rules.Timing]],
                   second: Callable[[datetime], list[rules.Timing]]
                   ) -> tuple[DispatchInstruction, datetime]:
    """Revision 1 RUN with ``first``'s setpoints, then revision 2 RUN with ``second``'s,
    each once the previous one is acknowledged (or its deadline passed)."""
    started = timezone.now()
    dispatch = ctx.issue(status="run", timings=first, unit=unit)
    ctx.wait_for_acks(dispatch, 1, ("received", "actioned"))
    number = ctx.revise(dispatch, setpoints=second)
    ctx.wait_for_acks(dispatch, number, ("received", "actioned"))
    return dispatch, started


def _setpoints(volumes: tuple[Decimal, ...], *, setpoint_type: str, service_type: str
               ) -> Callable[[datetime], list[rules.Timing]]:
    def build(start: datetime) -> list[rules.Timing]:
        return [rules.Timing(setpoint_time=start + timedelta(minutes=30 * i), volume=volume,
                             setpoint_type=setpoint_type, service_type=service_type)
                for i, volume in enumerate(volumes)]
    return build


def _share(capacity: Decimal, *fractions: float) -> tuple[Decimal, ...]:
    return tuple(max(Decimal(1), (capacity * Decimal(str(f))).quantize(Decimal(1)))
                 for f in fractions)


def reactive_setpoints(ctx: Context) -> tuple[list[Check], dict]:
    """kVAr setpoints: a RUN and a revised RUN for a unit that offers reactive power; the
    VEN reads each setpoint back in KVAR (not KW)."""
    unit = next((u for u in ctx.units if u.capacity_kvar), None)
    if unit is None or unit.capacity_kvar is None:
        raise NotApplicable("no unit of the site offers reactive power (no kVAr capacity "
                            "registered); onboard one with capacityKvar to have it graded")
    contract = ctx.no_notice_contract(unit)
    kind = "absolute" if "absolute" in contract.product.setpoint_types else \
        contract.product.setpoint_types[0]
    fixed = contract.product.quantity == contract.product.Quantity.FIXED
    capacity = unit.capacity_kvar
    first = _share(capacity, 0.5, 0.5 if fixed else 0.25)
    second = _share(capacity, 0.4, 0.4 if fixed else 0.2)
    dispatch, started = _two_revisions(
        ctx, unit, _setpoints(first, setpoint_type=kind, service_type="reactive"),
        _setpoints(second, setpoint_type=kind, service_type="reactive"))
    result = _graded(ctx, dispatch, started)
    result.insert(-1, checks.setpoints_read_back(
        "kvar-read-back", evidence.revisions(dispatch), evidence.acknowledgements(dispatch),
        what="units (KVAR)"))
    return result, _dispatch_facts(dispatch) | {"capacityKvar": str(unit.capacity_kvar)}


def delta_and_absolute(ctx: Context) -> tuple[list[Check], dict]:
    """A delta-to-baseline RUN revised to an absolute one (kW): the VEN reads each back
    with the setpoint type it was issued with."""
    for unit in ctx.units:
        try:
            contract = ctx.no_notice_contract(unit, ("absolute", "delta"))
            break
        except NotApplicable:
            continue
    else:
        raise NotApplicable("no unit of the site has a contract for a product without "
                            "notice period that takes both delta and absolute setpoints "
                            "(e.g. RESTORE)")
    fixed = contract.product.quantity == contract.product.Quantity.FIXED
    capacity = Decimal(unit.capacity_kw)
    dispatch, started = _two_revisions(
        ctx, unit,
        _setpoints(_share(capacity, 0.3, 0.3 if fixed else 0.2), setpoint_type="delta",
                   service_type="real"),
        _setpoints(_share(capacity, 0.6, 0.6 if fixed else 0.5), setpoint_type="absolute",
                   service_type="real"))
    result = _graded(ctx, dispatch, started)
    result.insert(-1, checks.setpoints_read_back(
        "setpoint-types-read-back", evidence.revisions(dispatch),
        evidence.acknowledgements(dispatch), what="setpoint type (DELTA, then ABSOLUTE)"))
    return result, _dispatch_facts(dispatch)


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    description: str
    drive: Callable[[Context], tuple[list[Check], dict]]


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("lifecycle", "Pre-notify, run, revise, stop",
             "Revision 1 PRE_NOTIFY, 2 RUN, 3 RUN with new setpoints, 4 STOP, each issued "
             "once the previous one is acknowledged (or its deadline passed). Every revision "
             "RECEIVED and every RUN/STOP revision ACTIONED, accepted, within the deadline.",
             lifecycle),
    Scenario("emergency-stop", "Run, then emergency stop",
             "Revision 1 RUN, then revision 2 EMERGENCY_STOP: both RECEIVED and ACTIONED, "
             "accepted, within the deadline.", emergency_stop),
    Scenario("stale-revision", "Two revisions in quick succession",
             "Revision 1 RUN and revision 2 RUN issued back to back. The newest is RECEIVED "
             "and ACTIONED in time; anything acknowledging revision 1 after revision 2 was "
             "issued is recorded stale_revision, and revision 1 is never ACTIONED once the "
             "VEN holds revision 2.", stale_revision),
    Scenario("key-rotation", "The operator's signing key rotates",
             "Revision 1 RUN signed with the current key; the operator's key rotates; "
             "revision 2 is signed with the new key (a kid the VEN has not seen): it is still "
             "verified, RECEIVED and ACTIONED, accepted, in time.", key_rotation),
    Scenario("comms-loss", "The VTN is unreachable for the site",
             "The VTN refuses the site's writes (503) while revision 1 RUN arrives, then "
             "answers all its requests 503 with Retry-After for long enough that the site is "
             "marked comms_lost. The VEN backs off (about one request per Retry-After), "
             "resumes polling when it ends, is marked online again, and delivers the queued "
             "RECEIVED and ACTIONED exactly once each.", comms_loss),
    Scenario("metering", "Meter readings on request",
             "The run asks (awaiting.instruction in the run, printed by the CLI) for "
             "half-hourly USAGE readings of every unit of the site for the previous two "
             "hours, on the metering event: all periods covered, nothing rejected, within the "
             "metering deadline.", metering),
    Scenario("notice-period", "A product with a notice period: pre-notify, then run",
             "Under the site's contract for a product with a notice period (DYNAMIC, PT15M "
             "unless the operator set its own), revision 1 PRE_NOTIFY is issued for a "
             "service start at least the notice period ahead, then revision 2 RUN: revision "
             "1 RECEIVED, revision 2 RECEIVED and ACTIONED, accepted, within the deadline. "
             "Not applicable without such a contract.", notice_period),
    Scenario("parameter-change", "A new heartbeat interval reaches the VEN",
             "The operator shortens the heartbeat interval of the site's product with the "
             "shortest one (to 30 s, or half of it when shorter), published at once as an "
             "update of its program (GB_HEARTBEAT_INTERVAL). After 60 s plus the poll "
             "interval and margin for the VEN to read the change, heartbeat reports on the "
             "heartbeat event arrive at least every 1.5 x the new interval for three new "
             "intervals; then the old value is put back. Not applicable when no product of "
             "the site has a heartbeat interval.", parameter_change),
    Scenario("availability", "Signed availability declarations on request",
             "The run asks (awaiting.instruction) for availability declarations of every "
             "unit of the site for two one-hour windows starting two hours ahead, on the "
             "availability event, signed with the site key: every report signed with a "
             "registered key, nothing rejected, both windows declared for every unit, "
             "within the metering deadline.", availability),
    Scenario("forged-dispatch", "A forged dispatch is refused",
             "Revision 1 RUN is acknowledged; then a tampered copy of its event appears "
             "(claiming revision 2 with a doubled setpoint but carrying revision 1's "
             "signature). The VEN reports REFUSED on the forged event within the deadline "
             "and never RECEIVED or ACTIONED; the genuine revision's acknowledgements "
             "stay valid.", forged_dispatch),
    Scenario("webhook", "Webhook notifications",
             "The VEN's subscriptions with callbacks for EVENT objects: every callback "
             "answers the echo check; a RUN dispatch for the site is notified to a callback "
             "(answered 2xx) within the deadline; an event for another VEN in the same "
             "program is not. Not applicable when the VEN has no such subscription.",
             webhook),
    Scenario("mqtt", "MQTT notifications (3.1)",
             "The VEN asked for its event topics (/notifiers/mqtt/topics/vens/{venID}/"
             "events); a RUN dispatch for the site is RECEIVED within pushWithinSeconds "
             "(2 s), far sooner than its poll interval allows: it woke on the notification "
             "on its topic. Not applicable when the VTN has no broker or the VEN never asked "
             "for its topics.",
             mqtt_push),
    Scenario("reactive-setpoints", "Reactive power (kVAr) setpoints",
             "For a unit that offers reactive power: revision 1 RUN and revision 2 RUN with "
             "kVAr setpoints (serviceType REACTIVE, units KVAR). Both RECEIVED and ACTIONED, "
             "accepted, within the deadline, every setpoint read back in KVAR. Not "
             "applicable when no unit of the site has a kVAr capacity.",
             reactive_setpoints),
    Scenario("delta-vs-absolute", "Delta-to-baseline and absolute setpoints",
             "Revision 1 RUN with DELTA setpoints (DISPATCH_SETPOINT_RELATIVE), revision 2 "
             "RUN with ABSOLUTE ones (DISPATCH_SETPOINT), in kW: both RECEIVED and ACTIONED, "
             "accepted, within the deadline, every setpoint read back with the type it was "
             "issued with. Not applicable without a no-notice product taking both types.",
             delta_and_absolute),
)}
ORDER = tuple(SCENARIOS)


def run_scenario(name: str, ctx: Context) -> ScenarioResult:
    scenario = SCENARIOS[name]
    started = timezone.now()
    ctx.log(f"scenario {name}: {scenario.title}")
    not_applicable = ""
    try:
        result_checks, facts = scenario.drive(ctx)
        error = ""
    except NotApplicable as exc:
        result_checks, facts, error, not_applicable = [], {}, "", str(exc)
    except Exception as exc:  # report it as this scenario's failure; the run goes on
        logger.exception("conformance scenario %s failed to run", name)
        result_checks, facts = [], {}
        error = f"{type(exc).__name__}: {exc}"
        result_checks.append(Check("scenario-ran", False, "the scenario runs to its end",
                                   error, {}))
    finally:
        ctx.end_faults()
        if ctx.run is not None and ctx.run.awaiting:
            ctx.set_awaiting(None)
    result = ScenarioResult(name=name, title=scenario.title, description=scenario.description,
                            started=started, finished=timezone.now(), checks=result_checks,
                            facts=facts, error=error, not_applicable=not_applicable)
    if not_applicable:
        ctx.log(f"scenario {name}: NOT APPLICABLE ({not_applicable})")
        return result
    ctx.log(f"scenario {name}: {'PASSED' if result.passed else 'FAILED'} ("
            + ", ".join(f"{c.name} {'ok' if c.passed else 'FAIL'}" for c in result_checks)
            + ")")
    return result
