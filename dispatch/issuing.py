"""Dispatch instructions: issuing revision 1, revising and stopping. Every revision is
checked against the product's rules, signed with the operator's key, recorded in the
audit chain and published as an update of the dispatch's OpenADR event."""

from __future__ import annotations

import secrets
from datetime import datetime
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from dispatch import audit, mapping, programs, publishing, registry, rules, signing_keys
from dispatch.models import (
    Contract,
    DispatchInstruction,
    DispatchRevision,
    DispatchUnit,
    NetworkOperator,
    Product,
)
from dispatch.products import turns_to_zero
from vtn.api.problems import BadRequest, Conflict


def _product_rules(product: Product, operator: NetworkOperator) -> rules.ProductRules:
    notice = programs.product_parameters(operator, product)["notice_period"]
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


def _publish(instruction: DispatchInstruction, draft: rules.DispatchDraft,
             previous: rules.DispatchDraft | None, *, issued_by: str,
             reason: str) -> DispatchRevision:
    """Check, sign, store the revision and update the OpenADR event in place."""
    contract = instruction.contract
    errors = rules.check(draft, _product_rules(contract.product, instruction.operator),
                         _unit_limits(instruction.unit),
                         windows=_windows(contract), previous=previous)
    if errors:
        raise BadRequest("The dispatch does not satisfy the product's rules.", errors=errors)
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
    program = programs.ensure_program(instruction.operator, contract.product).program
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


@transaction.atomic
def issue_dispatch(*, unit: DispatchUnit, service_start: datetime, service_end: datetime,
                   timings: list[rules.Timing], product: Product | None = None,
                   contract: str | None = None, reference: str | None = None,
                   status: str = "run", urgency: str | None = None, issued_by: str = "",
                   reason: str = "", now: datetime | None = None) -> DispatchInstruction:
    """Issue a new dispatch (revision 1) to ``unit`` under its contract for ``product``.

    Times are aware datetimes (kept in UTC, whole seconds); ``reference`` (the NO dispatch
    reference) is generated when not given and is unique per operator.
    """
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
        reference = f"{timezone.now():%Y%m%d}-{secrets.token_hex(4)}"
    if DispatchInstruction.objects.filter(operator=operator, reference=reference).exists():
        raise Conflict(f"{operator.code} already has a dispatch {reference!r}")
    instruction_time = _now(now)
    try:
        start, end = rules.utc_seconds(service_start), rules.utc_seconds(service_end)
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc
    urgency = urgency or found.product.default_urgency
    if not timings and turns_to_zero(found.product.code):
        timings = [rules.Timing(setpoint_time=start, volume=Decimal(0),
                                setpoint_type="absolute")]  # turn to zero: export nothing
    instruction = DispatchInstruction(
        operator=operator, reference=reference, contract=found, unit=unit, revision=0,
        status=status, urgency=urgency, service_start=start, service_end=end)
    draft = rules.DispatchDraft(
        network_operator=operator.code, reference=reference, revision=1, status=status,
        urgency=urgency, fsp=unit.fsp.identifier, unit=unit.reference,
        contract=found.identifier, product=found.product.code,
        instruction_time=instruction_time, service_start=start, service_end=end,
        timings=tuple(_normalised(timings)))
    errors = rules.check(draft, _product_rules(found.product, operator), _unit_limits(unit),
                         windows=_windows(found))
    if errors:
        raise BadRequest("The dispatch does not satisfy the product's rules.", errors=errors)
    try:
        with transaction.atomic():
            instruction.save()
    except IntegrityError as exc:
        raise Conflict(f"{operator.code} already has a dispatch {reference!r}") from exc
    _publish(instruction, draft, None, issued_by=issued_by, reason=reason)
    return instruction


def _normalised(timings: list[rules.Timing]) -> list[rules.Timing]:
    try:
        return [rules.Timing(setpoint_time=rules.utc_seconds(t.setpoint_time),
                             volume=Decimal(t.volume), setpoint_type=t.setpoint_type,
                             service_type=t.service_type,
                             price_gbp_per_kwh=t.price_gbp_per_kwh) for t in timings]
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc


def _locked(dispatch: DispatchInstruction, expected_revision: int | None) -> DispatchInstruction:
    locked = (DispatchInstruction.objects.select_for_update()
              .select_related("operator", "contract__product", "unit__fsp").get(pk=dispatch.pk))
    if expected_revision is not None and expected_revision != locked.revision:
        raise Conflict(f"dispatch {locked.operator.code}/{locked.reference} is at revision "
                       f"{locked.revision}, not {expected_revision}")
    if locked.status in rules.FINAL:
        raise Conflict(f"dispatch {locked.operator.code}/{locked.reference} ended with "
                       f"{locked.status} at revision {locked.revision}; issue a new dispatch")
    return locked


def latest_revision(dispatch: DispatchInstruction) -> DispatchRevision:
    return dispatch.revisions.order_by("-number").first()


@transaction.atomic
def revise_dispatch(*, dispatch: DispatchInstruction, service_start: datetime | None = None,
                    service_end: datetime | None = None,
                    timings: list[rules.Timing] | None = None, status: str | None = None,
                    urgency: str | None = None, expected_revision: int | None = None,
                    issued_by: str = "", reason: str = "",
                    now: datetime | None = None) -> DispatchRevision:
    """A new revision of ``dispatch``: what is not given carries over from the latest one.
    The revision number is the latest plus one, under a row lock, so it never repeats."""
    locked = _locked(dispatch, expected_revision)
    previous = draft_of(latest_revision(locked))
    if status in rules.FINAL:
        raise BadRequest("use stop (or emergency stop) to stop a dispatch")
    try:
        start = rules.utc_seconds(service_start) if service_start else previous.service_start
        end = rules.utc_seconds(service_end) if service_end else previous.service_end
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc
    draft = rules.DispatchDraft(
        **{**previous.__dict__, "revision": locked.revision + 1,
           "status": status or previous.status, "urgency": urgency or previous.urgency,
           "instruction_time": _now(now), "service_start": start, "service_end": end,
           "timings": tuple(_normalised(timings)) if timings is not None else previous.timings})
    return _publish(locked, draft, previous, issued_by=issued_by, reason=reason)


@transaction.atomic
def stop_dispatch(*, dispatch: DispatchInstruction, emergency: bool = False,
                  expected_revision: int | None = None, issued_by: str = "",
                  reason: str = "", now: datetime | None = None) -> DispatchRevision:
    """Stop (or emergency-stop) a dispatch: a final revision without setpoints."""
    locked = _locked(dispatch, expected_revision)
    previous = draft_of(latest_revision(locked))
    draft = rules.DispatchDraft(
        **{**previous.__dict__, "revision": locked.revision + 1,
           "status": "emergency-stop" if emergency else "stop",
           "urgency": "emergency" if emergency else previous.urgency,
           "instruction_time": _now(now), "timings": ()})
    return _publish(locked, draft, previous, issued_by=issued_by, reason=reason)
