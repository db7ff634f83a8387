"""Every write to OpenADR objects, with its rules and side effects.

Services take the internal representation produced by a version's serializer (snake
case, targets in internal form) and the :class:`Caller`. Rule violations raise the
API's problem exceptions, so every entry point (HTTP, commands, tasks) reports them
the same way.
"""

from __future__ import annotations

import json

from django.db import IntegrityError, models, transaction
from django.utils import timezone

from vtn import generations, ownership, protection, report_checks, selectors, webhooks
from vtn import targets as target_rules
from vtn.auth.caller import Caller
from vtn.errors import BadRequest, Conflict, Forbidden
from vtn.models import (
    Event,
    ObjectOwner,
    Program,
    Report,
    Resource,
    Subscription,
    TargetLabel,
    Ven,
)
from vtn.signals import object_changed
from vtn.timing import event_span

Kind = TargetLabel.Kind
Owned = ObjectOwner.Kind


def _set_labels(kind: str, object_id: str, targets: list[dict] | None) -> None:
    TargetLabel.objects.filter(kind=kind, object_id=object_id).delete()
    TargetLabel.objects.bulk_create(
        TargetLabel(kind=kind, object_id=object_id, label=label)
        for label in sorted(target_rules.labels(targets))
    )


TARGETING_TYPES = {"PROGRAM", "EVENT", "VEN", "RESOURCE"}


def _announce(object_type: str, operation: str, instance) -> None:
    """Record a change: bump the cache counter now, send the domain signal after commit."""
    if object_type in TARGETING_TYPES:
        generations.bump(generations.TARGETING)
    transaction.on_commit(lambda: object_changed.send(
        sender=type(instance), object_type=object_type, operation=operation, instance=instance))


def _save(instance, kind: str, conflict: str) -> None:
    try:
        with transaction.atomic():
            instance.save()
            _set_labels(kind, instance.pk, instance.targets)
    except IntegrityError as exc:
        raise Conflict(conflict) from exc


def _wire_name(field: str) -> str:
    """``program_id`` -> ``programID``, ``interval_period`` -> ``intervalPeriod``."""
    head, *rest = field.split("_")
    return head + "".join("ID" if part == "id" else part.capitalize() for part in rest)


def _same(stored: object, sent: object) -> bool:
    """Equal as JSON: ``true`` is not ``1`` and ``[]`` is not absent, so a write found
    unchanged stores exactly what the object held."""
    return json.dumps(stored, sort_keys=True, default=str) == json.dumps(
        sent, sort_keys=True, default=str)


def _guard_owned(caller: Caller, instance, changes: dict) -> None:
    """Refuse a write that changes an object another app owns (:mod:`vtn.protection`).

    ``changes`` holds every field the write sets (relations by their ``..._id``). The
    owning app keeps what the object says in step with its own records, so only its
    internal identity changes it; an API client may send it back unchanged, and may
    change only the fields :func:`vtn.protection.free_fields` leaves it. The refusal is a
    400, as for deleting (the 409 the documents list for PUT means a name already taken);
    its detail names the fields, the owner and where to make the change.
    """
    if caller.internal or instance._state.adding:
        return
    free = protection.free_fields(instance, caller)
    changed = [field for field, value in changes.items()
               if field not in free and not _same(getattr(instance, field), value)]
    if not changed:
        return
    owned_by = protection.owners(instance)
    if owned_by:
        fields = ", ".join(_wire_name(field) for field in changed)
        raise BadRequest(
            f"This {instance._meta.verbose_name} is owned by the registry "
            f"({'; '.join(owned_by)}), which sets its {fields}: the OpenADR API cannot "
            f"change them. {protection.changed_through(instance)}")


def _delete(caller: Caller, instance, object_type: str,
            labelled: dict[str, list[str]]) -> None:
    """Delete ``instance`` and the target labels of it and its dependants, then announce.

    Refuses (400; the documents list no 409 for DELETE) an object another app owns
    (:mod:`vtn.protection`; its own internal identity excepted) or that other records
    depend on, naming them. The returned instance keeps its primary key so it can still
    be rendered.
    """
    kind = instance._meta.verbose_name
    owned_by = [] if caller.internal else protection.owners(instance)
    if owned_by:
        raise BadRequest(f"This {kind} cannot be deleted: the registry owns it "
                         f"({'; '.join(owned_by)}).")
    for label_kind, object_ids in labelled.items():
        TargetLabel.objects.filter(kind=label_kind, object_id__in=object_ids).delete()
    pk = instance.pk
    try:
        with transaction.atomic():
            instance.delete()
    except (models.ProtectedError, models.RestrictedError) as exc:
        blocking = sorted({protection.describe(obj) for obj in list(exc.args[1])[:5]})
        raise BadRequest(f"This {kind} cannot be deleted while other records depend on "
                         f"it: {'; '.join(blocking)}.") from exc
    instance.pk = pk
    _announce(object_type, "DELETE", instance)


def _apply(instance, data: dict) -> None:
    for name, value in data.items():
        setattr(instance, name, value)


# --- programs -------------------------------------------------------------------------------

@transaction.atomic
def save_program(*, caller: Caller, data: dict, program: Program | None = None) -> Program:
    """Create (``program`` None) or replace a program. Program names are unique."""
    operation = "CREATE" if program is None else "UPDATE"
    program = program or Program()
    _guard_owned(caller, program, data)
    _apply(program, data)
    if Program.objects.filter(program_name=program.program_name).exclude(pk=program.pk).exists():
        raise Conflict(f"A program named {program.program_name!r} already exists.")
    _save(program, Kind.PROGRAM, f"A program named {program.program_name!r} already exists.")
    if operation == "CREATE":
        ownership.assign(Owned.PROGRAM, program.pk, ownership.owners_for_new(caller))
    _announce("PROGRAM", operation, program)
    return program


@transaction.atomic
def delete_program(*, caller: Caller, program: Program) -> Program:
    """Delete a program with its events, reports and subscriptions."""
    _delete(caller, program, "PROGRAM", {
        Kind.PROGRAM: [program.pk],
        Kind.EVENT: list(program.events.values_list("id", flat=True)),
        Kind.SUBSCRIPTION: list(program.subscriptions.values_list("id", flat=True)),
    })
    return program


# --- events ---------------------------------------------------------------------------------

def _program_for(caller: Caller, program_id: str) -> Program:
    program = selectors.programs(caller).filter(pk=program_id).first()
    if program is None:
        raise Conflict(f"programID {program_id!r} does not refer to an existing program.",
                       after_rollback=ownership.refusal(caller, "program", program_id))
    return program


@transaction.atomic
def save_event(*, caller: Caller, data: dict, event: Event | None = None) -> Event:
    """Create (``event`` None) or replace an event in an existing program."""
    operation = "CREATE" if event is None else "UPDATE"
    data = dict(data)
    program = _program_for(caller, data.pop("program_id"))
    event = event or Event()
    _guard_owned(caller, event, data | {"program_id": program.pk})
    _apply(event, data)
    event.program = program
    event.starts_at, event.ends_at = event_span(event.interval_period, event.intervals or [],
                                                timezone.now())
    _save(event, Kind.EVENT, "The event conflicts with an existing object.")
    _announce("EVENT", operation, event)
    return event


@transaction.atomic
def delete_event(*, caller: Caller, event: Event) -> Event:
    _delete(caller, event, "EVENT", {Kind.EVENT: [event.pk]})
    return event


# --- reports --------------------------------------------------------------------------------

@transaction.atomic
def save_report(*, caller: Caller, data: dict, report: Report | None = None) -> Report:
    """Create or replace a report on an event the caller can see.

    The report's clientID is the caller's; a 3.0.1 programID must be the event's program.
    Every check registered with :mod:`vtn.report_checks` runs first and may refuse it.
    """
    operation = "CREATE" if report is None else "UPDATE"
    data = dict(data)
    event_id = data.pop("event_id")
    program_id = data.pop("program_id", None)
    event = selectors.events(caller).filter(pk=event_id).select_related("program").first()
    if event is None:
        raise Conflict(f"eventID {event_id!r} does not refer to an existing event.",
                       after_rollback=ownership.refusal(caller, "event", event_id))
    if program_id is not None and program_id != event.program_id:
        raise Conflict(f"programID {program_id!r} is not the program of event {event_id!r}.")
    report_checks.run(caller=caller, event=event, data=data)
    report = report or Report(client_id=caller.client_id)
    _apply(report, data)
    report.event = event
    report.program = event.program
    report.save()
    _announce("REPORT", operation, report)
    return report


@transaction.atomic
def delete_report(*, caller: Caller, report: Report) -> Report:
    _delete(caller, report, "REPORT", {})
    return report


# --- subscriptions --------------------------------------------------------------------------

def save_subscription(*, caller: Caller, data: dict,
                      subscription: Subscription | None = None) -> Subscription:
    """Create or replace a subscription of the caller, optionally scoped to a program.

    Every callback URL must be one the VTN will call, and a new or changed one must pass
    the echo check (vtn.webhooks), before anything is written: the check is a network
    call, so it runs outside the transaction. An owner's update repairs a broken
    subscription.
    """
    webhooks.check_subscription_callbacks(
        data["object_operations"], subscription.object_operations if subscription else None)
    return _store_subscription(caller=caller, data=data, subscription=subscription)


@transaction.atomic
def _store_subscription(*, caller: Caller, data: dict,
                        subscription: Subscription | None) -> Subscription:
    operation = "CREATE" if subscription is None else "UPDATE"
    data = dict(data)
    program_id = data.pop("program_id", None)
    subscription = subscription or Subscription(client_id=caller.client_id)
    _apply(subscription, data)
    subscription.program = _program_for(caller, program_id) if program_id else None
    if operation == "UPDATE":
        webhooks.repair(subscription)
    _save(subscription, Kind.SUBSCRIPTION, "The subscription conflicts with an existing object.")
    if operation == "CREATE":
        ownership.assign(Owned.SUBSCRIPTION, subscription.pk, ownership.owners_for_new(caller))
    _announce("SUBSCRIPTION", operation, subscription)
    return subscription


@transaction.atomic
def delete_subscription(*, caller: Caller, subscription: Subscription) -> Subscription:
    _delete(caller, subscription, "SUBSCRIPTION", {Kind.SUBSCRIPTION: [subscription.pk]})
    return subscription


# --- vens and resources ---------------------------------------------------------------------

UNBOUND_CLIENT_PREFIX = "unbound-"


def _guard_ven_targets(caller: Caller, data: dict, current: list | None) -> None:
    """Only BL may grant targets: a VEN may send none, or exactly the ones it has."""
    if caller.is_bl or "targets" not in data:
        return
    if target_rules.labels(data["targets"]) != target_rules.labels(current):
        raise Forbidden("Only business logic may set targets on ven and resource objects.")


def _guard_bound_client(caller: Caller, client_id: str, ven: Ven) -> None:
    """Business logic narrowed to some operators may not bind a ven to a VEN client that
    already has a ven it cannot see (another operator's site): that would change what the
    other operator's site is granted."""
    if ownership.reach(caller) is None:
        return
    hidden = Ven.objects.filter(client_id=client_id).exclude(pk=ven.pk).exclude(
        pk__in=selectors.vens(caller).values("pk")).values_list("pk", flat=True).first()
    if hidden is not None:
        raise Forbidden("This clientID belongs to a ven of another network operator.",
                        after_rollback=ownership.refusal(caller, "ven", hidden))


@transaction.atomic
def save_ven(*, caller: Caller, data: dict, ven: Ven | None = None,
             resources: list[dict] | None = None) -> Ven:
    """Create or replace a ven.

    A VEN client creates its own (one) ven and its clientID is written into it; BL names
    the clientID (or leaves the ven unbound until a client is bound to it).
    """
    operation = "CREATE" if ven is None else "UPDATE"
    data = dict(data)
    _guard_ven_targets(caller, data, ven.targets if ven else None)
    if caller.is_ven:
        data.pop("targets", None)
        data["client_id"] = caller.client_id
        if ven is None and Ven.objects.filter(client_id=caller.client_id).exists():
            raise Conflict("This client already has a ven; a VEN client owns exactly one.")
    ven = ven or Ven()
    if caller.is_bl and data.get("client_id") is None:
        # A ven BL creates without naming its client (3.0.1 has no clientID) is unbound:
        # it gets a placeholder clientID no OAuth client can hold until one is bound.
        data["client_id"] = ven.client_id or f"{UNBOUND_CLIENT_PREFIX}{ven.pk}"
    if caller.is_bl:
        _guard_bound_client(caller, data["client_id"], ven)
    _guard_owned(caller, ven, data)
    _apply(ven, data)
    conflict = f"A ven named {ven.ven_name!r} already exists."
    if Ven.objects.filter(ven_name=ven.ven_name).exclude(pk=ven.pk).exists():
        raise Conflict(conflict)
    _save(ven, Kind.VEN, conflict)
    if operation == "CREATE":
        ownership.assign(Owned.VEN, ven.pk, ownership.owners_for_new(caller))
    for resource_data in resources or []:
        save_resource(caller=caller, ven=ven, data=resource_data)
    _announce("VEN", operation, ven)
    return ven


@transaction.atomic
def delete_ven(*, caller: Caller, ven: Ven) -> Ven:
    _delete(caller, ven, "VEN", {Kind.VEN: [ven.pk],
                         Kind.RESOURCE: list(ven.resources.values_list("id", flat=True))})
    return ven


@transaction.atomic
def save_resource(*, caller: Caller, ven: Ven, data: dict,
                  resource: Resource | None = None) -> Resource:
    """Create or replace a resource of ``ven``; names are unique within a ven."""
    operation = "CREATE" if resource is None else "UPDATE"
    data = dict(data)
    _guard_ven_targets(caller, data, resource.targets if resource else None)
    if caller.is_ven:
        data.pop("targets", None)
        data["client_id"] = caller.client_id
    elif data.get("client_id") is None:
        data["client_id"] = ven.client_id
    resource = resource or Resource()
    _guard_owned(caller, resource, data | {"ven_id": ven.pk})
    _apply(resource, data)
    resource.ven = ven
    conflict = f"The ven already has a resource named {resource.resource_name!r}."
    if Resource.objects.filter(ven=ven, resource_name=resource.resource_name).exclude(
            pk=resource.pk).exists():
        raise Conflict(conflict)
    _save(resource, Kind.RESOURCE, conflict)
    _announce("RESOURCE", operation, resource)
    return resource


@transaction.atomic
def delete_resource(*, caller: Caller, resource: Resource) -> Resource:
    _delete(caller, resource, "RESOURCE", {Kind.RESOURCE: [resource.pk]})
    return resource
