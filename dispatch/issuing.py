"""Dispatch instructions: issuing revision 1, revising and stopping. Every revision is
checked against the product's rules, signed with the operator's key, recorded in the
audit chain and published as an update of the dispatch's OpenADR event."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from dispatch import audit, mapping, programs, publishing, registry, rules, signing_keys
from dispatch.models import (
    CommsState,
    Contract,
    DispatchInstruction,
    DispatchRevision,
    DispatchUnit,
    FspSite,
    NetworkOperator,
    Product,
)
from dispatch.products import turns_to_zero
from vtn.errors import BadRequest, Conflict


def _product_rules(product: Product, operator: NetworkOperator) -> rules.ProductRules:
    notice = programs.required_parameter(programs.product_parameters(operator, product),
                                         "notice_period")
    return rules.ProductRules(code=product.code, notice_period=notice,
                              quantity=product.quantity,
                              setpoint_types=tuple(product.setpoint_types),
                              directions=tuple(product.directions))


def _unit_limits(unit: DispatchUnit) -> rules.UnitLimits:
    return rules.UnitLimits(capacity_kw=unit.capacity_kw, capacity_kvar=unit.capacity_kvar,
                            direction=unit.direction)


def _windows(contract: Contract) -> list[tuple[datetime, datetime]]:
    return [(datetime.fromisoformat(w["start"]), datetime.fromisoformat(w["end"]))
            for w in contract.service_windows]


def draft_of(revision: DispatchRevision) -> rules.DispatchDraft:
    """The draft a stored revision was made from (its signed document)."""
    doc = revision.document
    return rules.DispatchDraft(
        network_operator=doc["networkOperatorId"], reference=doc["dispatchRef"],
        revision=doc["revision"], status=revision.status, urgency=revision.urgency,
        fsp=doc["fspId"], unit=doc["dispatchUnit"], contract=doc["contractId"],
        product=doc["product"], instruction_time=revision.instruction_time,
        service_start=revision.service_start, service_end=revision.service_end,
        timings=tuple(rules.Timing.from_document(t) for t in doc["serviceTimings"]))


def _publish(instruction: DispatchInstruction, checked: CheckedDispatch, *, issued_by: str,
             reason: str) -> DispatchRevision:
    """The do step of every revision: sign the checked draft, store the revision, append
    it to the audit chain and update the OpenADR event in place."""
    draft = checked.draft
    document = draft.document()
    token, key = signing_keys.sign(instruction.operator, document)
    try:
        with transaction.atomic():
            revision = DispatchRevision.objects.create(
                instruction=instruction, number=draft.revision, status=draft.status,
                urgency=draft.urgency, instruction_time=draft.instruction_time,
                service_start=draft.service_start, service_end=draft.service_end,
                document=document, signature=token, signing_key=key, issued_by=issued_by,
                reason=reason)
    except IntegrityError as exc:
        raise Conflict(f"revision {draft.revision} of {instruction} already exists") from exc
    audit.record_revision(revision)
    program = programs.ensure_program(instruction.operator, instruction.contract.product).program
    unit = instruction.unit
    target = registry.unit_label(instruction.operator.code, unit.fsp.identifier, unit.reference)
    body = mapping.event_body(document, token, program_id=program.pk, targets=[target])
    instruction.event = publishing.save_event(body, event=instruction.event)
    instruction.revision = draft.revision
    instruction.status = draft.status
    instruction.urgency = draft.urgency
    instruction.service_start = draft.service_start
    instruction.service_end = draft.service_end
    instruction.save()
    return revision


@dataclass(frozen=True)
class CheckedDispatch:
    """The check step's answer: the draft of the revision a write would sign and publish,
    and every product rule it breaks (none: the write may go ahead). Nothing is written
    to find this out."""

    instruction: DispatchInstruction  # not saved yet for a new dispatch
    draft: rules.DispatchDraft
    violations: tuple[str, ...]
    previous: rules.DispatchDraft | None = None

    def raise_violations(self) -> None:
        """Refuse the write (400, every violation listed) when any rule is broken."""
        if self.violations:
            raise BadRequest("The dispatch does not satisfy the product's rules.",
                             errors=list(self.violations))


def _checked(instruction: DispatchInstruction, draft: rules.DispatchDraft,
             previous: rules.DispatchDraft | None,
             product_rules: rules.ProductRules | None = None) -> CheckedDispatch:
    contract = instruction.contract
    if product_rules is None:
        product_rules = _product_rules(contract.product, instruction.operator)
    errors = rules.check(draft, product_rules, _unit_limits(instruction.unit),
                         windows=_windows(contract), previous=previous)
    return CheckedDispatch(instruction=instruction, draft=draft, violations=tuple(errors),
                           previous=previous)


def _resolve_contract(unit: DispatchUnit, product: Product | None,
                      contract: str | None) -> Contract:
    candidates = unit.contracts.select_related("product", "operator")
    if product is not None:
        candidates = candidates.filter(product=product)
    if contract:
        candidates = candidates.filter(identifier=contract)
    found = list(candidates[:2])
    what = f"unit {unit}" + (f" and product {product.code}" if product else "") + (
        f" named {contract!r}" if contract else "")
    if not found:
        raise BadRequest(f"no contract covers {what}")
    if len(found) > 1:
        raise BadRequest(f"several contracts cover {what}; name one")
    return found[0]


def _now(now: datetime | None) -> datetime:
    return rules.utc_seconds(now or timezone.now())


def new_reference() -> str:
    """A fresh dispatch reference: the UTC date and eight random hex digits."""
    return f"{timezone.now():%Y%m%d}-{secrets.token_hex(4)}"


def check_issue(*, unit: DispatchUnit, service_start: datetime, service_end: datetime,
                timings: list[rules.Timing], product: Product | None = None,
                contract: str | None = None, reference: str | None = None,
                status: str = "run", urgency: str | None = None,
                now: datetime | None = None) -> CheckedDispatch:
    """The check step of :func:`issue_dispatch`: revision 1 as it would be issued now
    (contract resolved, the product's default urgency, a turn-to-zero setpoint added,
    times in UTC) and the product rules it breaks. Arguments that cannot make a dispatch
    at all (no such contract, a reference taken) raise the API's problems. Writes
    nothing."""
    if status not in ("pre-notify", "run"):
        raise BadRequest("a new dispatch has status pre-notify or run")
    found = _resolve_contract(unit, product, contract)
    operator = found.operator
    if reference:
        try:
            registry.check_identifier(reference, "dispatch reference")
        except registry.RegistryError as exc:
            raise BadRequest(str(exc)) from exc
    else:
        reference = new_reference()
    if DispatchInstruction.objects.filter(operator=operator, reference=reference).exists():
        raise Conflict(f"{operator.code} already has a dispatch {reference!r}")
    return check_new(unit=unit, contract=found, reference=reference,
                     service_start=service_start, service_end=service_end, timings=timings,
                     status=status, urgency=urgency, now=now)


def check_new(*, unit: DispatchUnit, contract: Contract, reference: str,
              service_start: datetime, service_end: datetime, timings: list[rules.Timing],
              status: str = "run", urgency: str | None = None, now: datetime | None = None,
              product_rules: rules.ProductRules | None = None) -> CheckedDispatch:
    """The part of :func:`check_issue` after the contract is resolved (with its product
    and operator loaded) and ``reference`` is known to be free: the draft of revision 1 and
    the rules it breaks, without a query when ``unit.fsp`` is loaded and ``product_rules``
    (:func:`product_rules`) is given. For callers that check many dispatches of the same
    contracts at once; writes nothing."""
    operator = contract.operator
    instruction_time = _now(now)
    try:
        start, end = rules.utc_seconds(service_start), rules.utc_seconds(service_end)
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc
    urgency = urgency or contract.product.default_urgency
    if not timings and turns_to_zero(contract.product.code):
        timings = [rules.Timing(setpoint_time=start, volume=Decimal(0),
                                setpoint_type="absolute")]  # turn to zero: export nothing
    instruction = DispatchInstruction(
        operator=operator, reference=reference, contract=contract, unit=unit, revision=0,
        status=status, urgency=urgency, service_start=start, service_end=end)
    draft = rules.DispatchDraft(
        network_operator=operator.code, reference=reference, revision=1, status=status,
        urgency=urgency, fsp=unit.fsp.identifier, unit=unit.reference,
        contract=contract.identifier, product=contract.product.code,
        instruction_time=instruction_time, service_start=start, service_end=end,
        timings=tuple(_normalised(timings)))
    return _checked(instruction, draft, None, product_rules)


def product_rules(contract: Contract) -> rules.ProductRules:
    """The rules of ``contract``'s product as its operator sets them (one query)."""
    return _product_rules(contract.product, contract.operator)


@transaction.atomic
def issue_dispatch(*, unit: DispatchUnit, service_start: datetime, service_end: datetime,
                   timings: list[rules.Timing], product: Product | None = None,
                   contract: str | None = None, reference: str | None = None,
                   status: str = "run", urgency: str | None = None, issued_by: str = "",
                   reason: str = "", now: datetime | None = None,
                   confirm_comms_loss: bool = False) -> DispatchInstruction:
    """Issue a new dispatch (revision 1) to ``unit`` under its contract for ``product``:
    :func:`check_issue`, then, when no rule is broken, save, sign, audit and publish.

    Times are aware datetimes (kept in UTC, whole seconds); ``reference`` (the NO dispatch
    reference) is generated when not given and is unique per operator. When the unit's
    site is comms lost the dispatch is refused (409 naming the site) unless the issuer
    confirms it with ``confirm_comms_loss``; a confirmed one is recorded in the audit
    chain and alerted to the operator.
    """
    checked = check_issue(unit=unit, service_start=service_start, service_end=service_end,
                          timings=timings, product=product, contract=contract,
                          reference=reference, status=status, urgency=urgency, now=now)
    checked.raise_violations()
    lost = sites_in_comms_loss(unit)
    if lost and not confirm_comms_loss:
        raise Conflict(COMMS_LOSS_WARNING + ", ".join(lost), errors=[
            f"site {site} is in comms loss: confirm to issue the dispatch anyway"
            for site in lost])
    instruction = checked.instruction
    try:
        with transaction.atomic():
            instruction.save()
    except IntegrityError as exc:
        raise Conflict(f"{instruction.operator.code} already has a dispatch "
                       f"{instruction.reference!r}") from exc
    _publish(instruction, checked, issued_by=issued_by, reason=reason)
    if lost:
        from dispatch import alerts

        audit.record_comms_loss_confirmed(instruction, issued_by=issued_by, sites=lost)
        alerts.on_dispatch_in_comms_loss(instruction, issued_by=issued_by)
    return instruction


COMMS_LOSS_WARNING = ("The unit's site is in comms loss: the FSP may not receive this "
                      "dispatch. Confirm to issue it anyway (confirmCommsLoss). Sites: ")


def sites_in_comms_loss(unit: DispatchUnit) -> list[str]:
    """The unit's site, as OP/FSP/SITE, when it is comms lost (else empty)."""
    site = FspSite.objects.select_related("fsp__operator").get(pk=unit.site_id)
    if site.comms_state != CommsState.COMMS_LOST:
        return []
    return [f"{site.fsp.operator.code}/{site.fsp.identifier}/{site.name}"]


def _normalised(timings: list[rules.Timing]) -> list[rules.Timing]:
    try:
        return [rules.Timing(setpoint_time=rules.utc_seconds(t.setpoint_time),
                             volume=Decimal(t.volume), setpoint_type=t.setpoint_type,
                             service_type=t.service_type,
                             price_gbp_per_kwh=t.price_gbp_per_kwh) for t in timings]
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc


def _current(dispatch: DispatchInstruction, expected_revision: int | None, *,
             lock: bool) -> DispatchInstruction:
    """The dispatch as stored now (row-locked with ``lock``), refused when it moved past
    ``expected_revision`` or has ended."""
    rows = DispatchInstruction.objects.select_for_update() if lock else \
        DispatchInstruction.objects
    current = rows.select_related("operator", "contract__product", "unit__fsp").get(
        pk=dispatch.pk)
    if expected_revision is not None and expected_revision != current.revision:
        raise Conflict(f"dispatch {current.operator.code}/{current.reference} is at revision "
                       f"{current.revision}, not {expected_revision}")
    if current.status in rules.FINAL:
        raise Conflict(f"dispatch {current.operator.code}/{current.reference} ended with "
                       f"{current.status} at revision {current.revision}; issue a new dispatch")
    return current


def latest_revision(dispatch: DispatchInstruction) -> DispatchRevision:
    return dispatch.revisions.latest("number")


def _revision_draft(current: DispatchInstruction, *, service_start: datetime | None,
                    service_end: datetime | None, timings: list[rules.Timing] | None,
                    status: str | None, urgency: str | None,
                    now: datetime | None) -> CheckedDispatch:
    previous = draft_of(latest_revision(current))
    if status in rules.FINAL:
        raise BadRequest("use stop (or emergency stop) to stop a dispatch")
    try:
        start = rules.utc_seconds(service_start) if service_start else previous.service_start
        end = rules.utc_seconds(service_end) if service_end else previous.service_end
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc
    draft = rules.DispatchDraft(
        **{**previous.__dict__, "revision": current.revision + 1,
           "status": status or previous.status, "urgency": urgency or previous.urgency,
           "instruction_time": _now(now), "service_start": start, "service_end": end,
           "timings": tuple(_normalised(timings)) if timings is not None else previous.timings})
    return _checked(current, draft, previous)


def check_revision(*, dispatch: DispatchInstruction, service_start: datetime | None = None,
                   service_end: datetime | None = None,
                   timings: list[rules.Timing] | None = None, status: str | None = None,
                   urgency: str | None = None, expected_revision: int | None = None,
                   now: datetime | None = None) -> CheckedDispatch:
    """The check step of :func:`revise_dispatch`: the next revision as it would be issued
    now and the product rules it breaks. A dispatch that moved on or ended raises
    Conflict. Writes nothing and takes no lock."""
    current = _current(dispatch, expected_revision, lock=False)
    return _revision_draft(current, service_start=service_start, service_end=service_end,
                           timings=timings, status=status, urgency=urgency, now=now)


@transaction.atomic
def revise_dispatch(*, dispatch: DispatchInstruction, service_start: datetime | None = None,
                    service_end: datetime | None = None,
                    timings: list[rules.Timing] | None = None, status: str | None = None,
                    urgency: str | None = None, expected_revision: int | None = None,
                    issued_by: str = "", reason: str = "",
                    now: datetime | None = None) -> DispatchRevision:
    """A new revision of ``dispatch``: what is not given carries over from the latest one.
    The revision number is the latest plus one, under a row lock, so it never repeats."""
    current = _current(dispatch, expected_revision, lock=True)
    checked = _revision_draft(current, service_start=service_start, service_end=service_end,
                              timings=timings, status=status, urgency=urgency, now=now)
    checked.raise_violations()
    return _publish(current, checked, issued_by=issued_by, reason=reason)


@transaction.atomic
def stop_dispatch(*, dispatch: DispatchInstruction, emergency: bool = False,
                  expected_revision: int | None = None, issued_by: str = "",
                  reason: str = "", now: datetime | None = None) -> DispatchRevision:
    """Stop (or emergency-stop) a dispatch: a final revision without setpoints."""
    current = _current(dispatch, expected_revision, lock=True)
    previous = draft_of(latest_revision(current))
    draft = rules.DispatchDraft(
        **{**previous.__dict__, "revision": current.revision + 1,
           "status": "emergency-stop" if emergency else "stop",
           "urgency": "emergency" if emergency else previous.urgency,
           "instruction_time": _now(now), "timings": ()})
    checked = _checked(current, draft, previous)
    checked.raise_violations()
    return _publish(current, checked, issued_by=issued_by, reason=reason)
