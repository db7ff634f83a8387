"""Every read with rules: object privacy and the documents' query filters.

A BL caller sees everything its owners reach (``vtn.ownership``: with the GB dispatch
profile, the objects of its network operators). A VEN caller sees programs and events
whose targets it was granted (or that carry no targets), and only the vens, resources,
reports and subscriptions bearing its own clientID. Objects a caller may not see behave
exactly like objects that do not exist.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Count, Exists, F, Min, OuterRef, Q, QuerySet

from vtn import ownership
from vtn import targets as target_rules
from vtn.auth.caller import Caller
from vtn.generations import ProcessCache
from vtn.models import (
    Client,
    Event,
    ObjectOwner,
    Program,
    Report,
    Resource,
    Subscription,
    TargetLabel,
    Ven,
    WebhookDelivery,
)

Kind = TargetLabel.Kind
Owned = ObjectOwner.Kind
# Granted labels per (targeting generation, clientID), for this process. The first miss
# under a generation loads every VEN client's labels at once (_prime_granted), so a fleet's
# polls after a change cost a few queries per process instead of one per VEN.
_granted_cache: ProcessCache[tuple[int, str], frozenset[str]] = ProcessCache(max_entries=50_000)
GRANTED_PRIME_LIMIT = 40_000
_PRIMED = ""  # (generation, _PRIMED) is in the cache once that generation was loaded
_granted_lock = threading.Lock()


@dataclass(frozen=True)
class Page:
    skip: int = 0
    limit: int = 50


@dataclass(frozen=True)
class Filters:
    """Query filters, already parsed from either version's parameters."""

    target_labels: frozenset[str] | None = None  # None: no targets filter given
    program_id: str | None = None
    event_id: str | None = None
    client_name: str | None = None
    ven_name: str | None = None
    ven_id: str | None = None
    resource_name: str | None = None
    objects: frozenset[str] | None = None
    active_at: datetime | None = None  # only events not yet transpired at this instant
    extra: dict = field(default_factory=dict)


def granted_labels(caller: Caller) -> frozenset[str]:
    """Target labels granted to a VEN caller through its ven and resource objects."""
    if caller.granted is None:
        key = (caller.targeting_generation, caller.client_id)
        granted = _granted_cache.get(key)
        if granted is None and _prime_granted(caller.targeting_generation):
            granted = _granted_cache.get(key)
        if granted is None:
            granted = _query_granted_labels(caller)
            _granted_cache.put(key, granted)
        caller.granted = granted
    return caller.granted


def _prime_granted(generation: int) -> bool:
    """Load every VEN client's granted labels under ``generation``, once per generation
    and process, unless there are more than :data:`GRANTED_PRIME_LIMIT` VENs. True if
    this call loaded them; a thread that finds another loading does not wait."""
    marker = (generation, _PRIMED)
    if _granted_cache.get(marker) is not None or not _granted_lock.acquire(blocking=False):
        return False
    try:
        if _granted_cache.get(marker) is not None:
            return False
        if Ven.objects.count() <= GRANTED_PRIME_LIMIT:
            for client_id, labels in granted_labels_by_client(None).items():
                _granted_cache.put((generation, client_id), labels)
        _granted_cache.put(marker, frozenset())
        return True
    finally:
        _granted_lock.release()


def _query_granted_labels(caller: Caller) -> frozenset[str]:
    ven_ids = Ven.objects.filter(client_id=caller.client_id).values("id")
    resource_ids = Resource.objects.filter(ven__client_id=caller.client_id).values("id")
    rows = TargetLabel.objects.filter(
        Q(kind=Kind.VEN, object_id__in=ven_ids) | Q(kind=Kind.RESOURCE, object_id__in=resource_ids)
    ).values_list("label", flat=True)
    return frozenset(rows)


def visible_labels(caller: Caller, filters: Filters) -> frozenset[str] | None:
    """The labels a caller may match and see; None means unrestricted (BL)."""
    if caller.is_bl:
        return None
    requested = None if filters.target_labels is None else set(filters.target_labels)
    return frozenset(target_rules.effective_labels(set(granted_labels(caller)), requested))


def _labelled(kind: str, labels: frozenset[str]) -> Exists:
    return Exists(TargetLabel.objects.filter(kind=kind, object_id=OuterRef("pk"), label__in=labels))


def _untargeted(kind: str) -> Q:
    return ~Q(Exists(TargetLabel.objects.filter(kind=kind, object_id=OuterRef("pk"))))


def _target_condition(kind: str, caller: Caller, filters: Filters,
                      granted: frozenset[str] | None) -> Q:
    """Privacy and the targets filter as one condition on objects of ``kind``."""
    if caller.is_bl:
        if filters.target_labels is None:
            return Q()
        return Q(_labelled(kind, filters.target_labels))
    assert granted is not None, "a VEN caller's granted labels are always looked up"
    effective = granted if filters.target_labels is None else granted & filters.target_labels
    if filters.target_labels is None:
        return _untargeted(kind) | Q(_labelled(kind, effective))
    return Q(_labelled(kind, effective))


def programs(caller: Caller, filters: Filters = Filters()) -> QuerySet[Program]:
    granted = None if caller.is_bl else granted_labels(caller)
    queryset = ownership.visible(Program.objects.all(), caller, Owned.PROGRAM)
    return queryset.filter(_target_condition(Kind.PROGRAM, caller, filters, granted))


def events(caller: Caller, filters: Filters = Filters()) -> QuerySet[Event]:
    queryset = Event.objects.all()
    if not caller.is_bl:
        granted = granted_labels(caller)
        open_programs = Program.objects.filter(_target_condition(Kind.PROGRAM, caller, Filters(),
                                                                 granted))
        queryset = queryset.filter(program__in=open_programs)
    else:
        granted = None
        queryset = ownership.visible(queryset, caller, Owned.PROGRAM, "program_id")
    queryset = queryset.filter(_target_condition(Kind.EVENT, caller, filters, granted))
    if filters.program_id is not None:
        queryset = queryset.filter(program_id=filters.program_id)
    if filters.active_at is not None:
        queryset = queryset.filter(Q(ends_at__isnull=True) | Q(ends_at__gt=filters.active_at))
    return queryset


def _owned(queryset: QuerySet, caller: Caller, field_name: str = "client_id") -> QuerySet:
    return queryset if caller.is_bl else queryset.filter(**{field_name: caller.client_id})


def reports(caller: Caller, filters: Filters = Filters()) -> QuerySet[Report]:
    queryset = ownership.visible(_owned(Report.objects.all(), caller), caller, Owned.PROGRAM,
                                 "program_id")
    if filters.program_id is not None:
        queryset = queryset.filter(program_id=filters.program_id)
    if filters.event_id is not None:
        queryset = queryset.filter(event_id=filters.event_id)
    if filters.client_name is not None:
        queryset = queryset.filter(client_name=filters.client_name)
    return queryset


def subscriptions(caller: Caller, filters: Filters = Filters()) -> QuerySet[Subscription]:
    queryset = ownership.visible(_owned(Subscription.objects.all(), caller), caller,
                                 Owned.SUBSCRIPTION)
    if filters.program_id is not None:
        queryset = queryset.filter(program_id=filters.program_id)
    if filters.client_name is not None:
        queryset = queryset.filter(client_name=filters.client_name)
    if filters.target_labels is not None:
        queryset = queryset.filter(_labelled(Kind.SUBSCRIPTION, filters.target_labels))
    if filters.objects:
        wanted = set(filters.objects)
        ids = [s.id for s in queryset.only("id", "object_operations")
               if wanted & {o for op in s.object_operations for o in op.get("objects", [])}]
        queryset = queryset.filter(id__in=ids)
    return queryset


def vens(caller: Caller, filters: Filters = Filters()) -> QuerySet[Ven]:
    queryset = ownership.visible(_owned(Ven.objects.all(), caller), caller, Owned.VEN)
    if filters.ven_name is not None:
        queryset = queryset.filter(ven_name=filters.ven_name)
    if filters.target_labels is not None:
        queryset = queryset.filter(_labelled(Kind.VEN, filters.target_labels))
    return queryset


def resources(caller: Caller, filters: Filters = Filters()) -> QuerySet[Resource]:
    queryset = ownership.visible(
        _owned(Resource.objects.select_related("ven"), caller, "ven__client_id"), caller,
        Owned.VEN, "ven_id")
    if filters.ven_id is not None:
        queryset = queryset.filter(ven_id=filters.ven_id)
    if filters.resource_name is not None:
        queryset = queryset.filter(resource_name=filters.resource_name)
    if filters.target_labels is not None:
        queryset = queryset.filter(_labelled(Kind.RESOURCE, filters.target_labels))
    return queryset


def next_end(queryset: QuerySet[Event]) -> float | None:
    """POSIX time at which the next of these events ends (None if none has an end)."""
    end = queryset.filter(ends_at__isnull=False).aggregate(first=Min("ends_at"))["first"]
    return end.timestamp() if end else None


def page(queryset: QuerySet, paging: Page) -> list:
    return list(queryset.order_by("created", "id")[paging.skip: paging.skip + paging.limit])


def subscription_deliveries(*, broken_only: bool = False,
                            owners: frozenset[str] | None = None) -> QuerySet[Subscription]:
    """Every subscription with its webhook delivery state, for operators: broken ones
    first, then the newest; ``pending`` counts notifications not delivered yet. With
    ``owners``, only the subscriptions all of whose owners are among them."""
    queryset = ownership.narrowed(Subscription.objects.all(), owners, Owned.SUBSCRIPTION)
    queryset = queryset.annotate(pending=Count(
        "deliveries", filter=Q(deliveries__state=WebhookDelivery.State.PENDING)))
    if broken_only:
        queryset = queryset.filter(broken_at__isnull=False)
    return queryset.order_by(F("broken_at").desc(nulls_last=True), "-created", "id")


def client_names(client_ids: set[str]) -> dict[str, str]:
    """OAuth2 clientID -> the client's name, for display."""
    return dict(Client.objects.filter(application__client_id__in=client_ids)
                .values_list("application__client_id", "name"))


def granted_labels_by_client(client_ids: set[str] | None) -> dict[str, frozenset[str]]:
    """Each VEN client's granted labels (from its vens and resources), in three queries;
    ``None``: every client that has a VEN."""
    Kind = TargetLabel.Kind
    ven_rows = Ven.objects.all() if client_ids is None else \
        Ven.objects.filter(client_id__in=client_ids)
    vens = dict(ven_rows.order_by().values_list("id", "client_id"))
    resource_rows = Resource.objects.all() if client_ids is None else \
        Resource.objects.filter(ven__client_id__in=client_ids)
    resources = dict(resource_rows.order_by().values_list("id", "ven__client_id"))
    granted: dict[str, set[str]] = {client_id: set() for client_id in
                                    (set(vens.values()) if client_ids is None else client_ids)}
    label_rows = TargetLabel.objects.filter(kind__in=(Kind.VEN, Kind.RESOURCE)) \
        if client_ids is None else TargetLabel.objects.filter(
            Q(kind=Kind.VEN, object_id__in=list(vens))
            | Q(kind=Kind.RESOURCE, object_id__in=list(resources)))
    rows = label_rows.order_by().values_list("kind", "object_id", "label")
    for kind, object_id, label in rows:
        owner = vens.get(object_id) if kind == Kind.VEN else resources.get(object_id)
        if owner is not None:
            granted[owner].add(label)
    return {client_id: frozenset(labels) for client_id, labels in granted.items()}
