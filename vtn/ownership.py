"""Which owners (network operators) a business-logic caller may reach on the OpenADR API.

``vtn`` knows nothing of network operators: it stores opaque owner codes per object
(:class:`~vtn.models.ObjectOwner`) and asks a registered :class:`OwnerPolicy` which
codes a business-logic client acts for. The GB dispatch app registers the policy
(``dispatch.apps``): a client's codes are its operator grants. With no policy
registered (``vtn`` alone), business logic sees everything, as OpenADR defines it.

The rules, for a business-logic caller reaching the owners ``R``:

- Programs, vens and subscriptions carry their owners; events and reports are owned as
  their program, resources as their ven.
- An object is visible when every one of its owners is in ``R`` (so an object with no
  owner is visible to every business-logic caller holding a grant). A caller holding
  every owner the policy knows of sees everything without any condition; a caller with
  no grant sees nothing and creates nothing (403).
- What a business-logic client creates is owned by every owner it reaches; what a VEN
  client creates (its subscriptions) is owned as its ven. Owner rows outlive a deleted
  object (ids are never reused), so its deletion is notified by the same rules.
- Webhook notifications follow the same rule (``vtn.notifications``); the MQTT
  business-logic topics carry every owner's changes, so only a caller reaching every
  owner may subscribe to them (``vtn.mqtt_acl``).
- Another owner's object answers exactly as one that does not exist (404), and the
  attempt is written to the security log as ``out_of_scope``.

VEN callers are untouched: object privacy (``vtn.selectors``) decides what they see.
The condition is one ``NOT EXISTS`` on an indexed table, added to business-logic
queries only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.db import models
from django.db.models import Exists, OuterRef, Q, QuerySet

from vtn import generations
from vtn.auth import security_log
from vtn.auth.caller import Caller
from vtn.errors import Forbidden
from vtn.generations import ProcessCache
from vtn.models import Event, ObjectOwner, Program, Report, Resource, Subscription, Ven

Kind = ObjectOwner.Kind


@dataclass(frozen=True)
class OwnerPolicy:
    """What another app tells ``vtn`` about owners.

    ``owners_of_client(client_id)`` is the owner codes a business-logic client acts for;
    ``every`` is every code there is (a caller holding all of them is not narrowed)."""

    owners_of_client: Callable[[str], frozenset[str]]
    every: frozenset[str]


_policy: OwnerPolicy | None = None
# A business-logic client's owner codes per (auth generation, clientID), for this process.
# Changing a client's grants moves the auth generation.
_reach_cache: ProcessCache[tuple[int, str], frozenset[str]] = ProcessCache()


def register(policy: OwnerPolicy | None) -> None:
    """Install the owner policy (``None`` removes it: business logic sees everything)."""
    global _policy
    _policy = policy
    _reach_cache.clear()


def reach(caller: Caller) -> frozenset[str] | None:
    """The owner codes ``caller`` may reach; ``None`` when it is not narrowed by owner
    (VEN callers, internal identities, no policy, or a caller holding every owner)."""
    if _policy is None or not caller.is_bl or caller.internal:
        return None
    key = (caller.auth_generation, caller.client_id)
    owners = _reach_cache.get(key)
    if owners is None:
        owners = frozenset(_policy.owners_of_client(caller.client_id))
        _reach_cache.put(key, owners)
    return None if owners >= _policy.every else owners


def reach_of_client(client_id: str) -> frozenset[str] | None:
    """:func:`reach` of a business-logic client named by its clientID (for notifying its
    subscriptions), read now."""
    if _policy is None:
        return None
    owners = frozenset(_policy.owners_of_client(client_id))
    return None if owners >= _policy.every else owners


def owners_of_change(object_type: str, instance) -> tuple[str, ...]:
    """The owners of a changed object, by its type's root (for its notification)."""
    kind, path, _ = ROOTS[object_type.lower()]
    root = getattr(instance, "pk" if path == "pk" else path)
    return tuple(sorted(ObjectOwner.objects.filter(kind=kind, object_id=root)
                        .values_list("owner", flat=True)))


def narrowed(queryset: QuerySet, owners: frozenset[str] | None, kind: str,
             path: str = "pk") -> QuerySet:
    """``queryset`` limited to objects whose owners (of ``kind``, found through ``path``)
    are all within ``owners``; ``None`` leaves it as it is, an empty set empties it."""
    if owners is None:
        return queryset
    if not owners:
        return queryset.none()
    foreign = ObjectOwner.objects.filter(kind=kind, object_id=OuterRef(path)).exclude(
        owner__in=owners)
    return queryset.filter(~Q(Exists(foreign)))


def visible(queryset: QuerySet, caller: Caller, kind: str, path: str = "pk") -> QuerySet:
    return narrowed(queryset, reach(caller), kind, path)


# Where each object type finds its owners: (owner kind, path from the object, model).
ROOTS: dict[str, tuple[str, str, type[models.Model]]] = {
    "program": (Kind.PROGRAM, "pk", Program),
    "event": (Kind.PROGRAM, "program_id", Event),
    "report": (Kind.PROGRAM, "program_id", Report),
    "subscription": (Kind.SUBSCRIPTION, "pk", Subscription),
    "ven": (Kind.VEN, "pk", Ven),
    "resource": (Kind.VEN, "ven_id", Resource),
}


def owners_of(object_type: str, object_id: str) -> frozenset[str]:
    """The owner codes of one object (``object_type`` a key of :data:`ROOTS`)."""
    kind, path, model = ROOTS[object_type]
    root = model._default_manager.filter(pk=object_id).values_list(path, flat=True).first()
    if root is None:
        return frozenset()
    return frozenset(ObjectOwner.objects.filter(kind=kind, object_id=root)
                     .values_list("owner", flat=True))


def refusal(caller: Caller, object_type: str, object_id: object
            ) -> Callable[[], object] | None:
    """After a lookup by id found nothing: when an object of that id exists but belongs to
    owners the caller does not reach, the ``out_of_scope`` security log line to write.
    The caller answers as for an object that does not exist and hands this to the
    problem (``after_rollback``), so the line survives the request's rollback."""
    owners = reach(caller)
    if owners is None or not isinstance(object_id, str):
        return None
    _, _, model = ROOTS[object_type]
    if not model._default_manager.filter(pk=object_id).exists():
        return None
    foreign = sorted(owners_of(object_type, object_id) - owners)
    detail = (f"{object_type} {object_id} of {', '.join(foreign)} is outside the "
              f"caller's operators ({', '.join(sorted(owners)) or 'none'})")
    return lambda: security_log.record(security_log.Kind.OUT_OF_SCOPE,
                                       client_id=caller.client_id,
                                       remote_addr=caller.remote_addr, detail=detail)


def assign(kind: str, object_id: str, owners: Iterable[str]) -> None:
    """Set the owners of one program, ven or subscription (replacing any it had); call
    inside the transaction that writes the object."""
    codes = sorted(set(owners))
    generations.bump(generations.TARGETING)  # cached answers of polled lists depend on it
    ObjectOwner.objects.filter(kind=kind, object_id=object_id).exclude(
        owner__in=codes).delete()
    present = set(ObjectOwner.objects.filter(kind=kind, object_id=object_id)
                  .values_list("owner", flat=True))
    ObjectOwner.objects.bulk_create(ObjectOwner(kind=kind, object_id=object_id, owner=code)
                                    for code in codes if code not in present)


def owners_for_new(caller: Caller) -> frozenset[str]:
    """Who owns what ``caller`` creates: every owner a business-logic client reaches (one
    that reaches none may not create: 403), a VEN client's ven's owners; nothing for
    internal identities (their code assigns)."""
    if caller.internal or _policy is None:
        return frozenset()
    if caller.is_bl:
        owners = reach(caller)
        if owners is not None and not owners:
            raise Forbidden("This client acts for no network operator, so it cannot create "
                            "objects; an administrator grants it operators "
                            "(manage.py operator_scope).")
        return _policy.every if owners is None else owners
    vens = Ven.objects.filter(client_id=caller.client_id).values("id")
    return frozenset(ObjectOwner.objects.filter(kind=Kind.VEN, object_id__in=vens)
                     .values_list("owner", flat=True))


