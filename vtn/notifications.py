"""Who is notified of a change, and with what body (pure: no ORM, no network).

A change is described once, right after it committed, as a :class:`Change` (plain data,
so it can travel through Celery). :func:`recipients` then decides, for each live
subscription, whether it asked for this object type and operation, whether its
``programID`` and ``targets`` filters let the object through, and, for a subscription
owned by a VEN client, whether that client could read the object with a GET at this
moment: the same rules as ``vtn.selectors`` (a program or event is visible when it has
no targets or shares a label with the VEN's granted labels, an event only inside a
visible program; vens, resources, reports and subscriptions only to their own client).
A VEN also sees only its own labels among an object's targets, as in a GET. A
business-logic subscription is told only of objects all of whose owners its client
reaches (``vtn.ownership``: its network operators), as in a GET.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from vtn import targets as target_rules
from vtn.schemas import VERSION_31

LABELLED_TYPES = frozenset({"PROGRAM", "EVENT", "VEN", "RESOURCE", "SUBSCRIPTION"})
OWNED_TYPES = frozenset({"REPORT", "SUBSCRIPTION", "VEN", "RESOURCE"})
HIDDEN_TARGET_TYPES = frozenset({"PROGRAM", "EVENT"})
# 3.0.1 notifications name operations by HTTP method.
OPERATIONS_301 = {"CREATE": "POST", "UPDATE": "PUT", "DELETE": "DELETE"}


@dataclass(frozen=True)
class Change:
    """One committed change, with what privacy and filtering need to know about it."""

    object_type: str
    operation: str  # CREATE, UPDATE or DELETE
    object_id: str
    program_id: str | None  # the program it belongs to (a program: itself)
    owner: str | None  # clientID owning a report, subscription, ven or resource
    labels: tuple[str, ...]  # the object's target labels
    program_labels: tuple[str, ...] | None  # an event's program's labels
    targets: list  # the object's targets, internal form (for per-VEN hiding)
    bodies: dict  # wire version -> the object rendered in full (None: not expressible)
    owners: tuple[str, ...] = ()  # the object's owners (vtn.ownership), none: unowned

    def as_dict(self) -> dict:
        return {"object_type": self.object_type, "operation": self.operation,
                "object_id": self.object_id, "program_id": self.program_id,
                "owner": self.owner, "labels": list(self.labels),
                "program_labels": (None if self.program_labels is None
                                   else list(self.program_labels)),
                "targets": self.targets, "bodies": self.bodies, "owners": list(self.owners)}

    @classmethod
    def from_dict(cls, data: dict) -> Change:
        return cls(object_type=data["object_type"], operation=data["operation"],
                   object_id=data["object_id"], program_id=data["program_id"],
                   owner=data["owner"], labels=tuple(data["labels"]),
                   program_labels=(None if data["program_labels"] is None
                                   else tuple(data["program_labels"])),
                   targets=data["targets"], bodies=data["bodies"],
                   owners=tuple(data.get("owners", ())))


@dataclass(frozen=True)
class Subscriber:
    """A live subscription as the rules need it."""

    id: str
    client_id: str
    is_bl: bool
    program_id: str | None
    object_operations: list
    labels: frozenset[str]  # the subscription's targets filter (empty: none)
    wire_version: str
    granted: frozenset[str] = field(default=frozenset())  # a VEN owner's granted labels
    # The owners a business-logic client reaches (None: every owner).
    reach: frozenset[str] | None = None


@dataclass(frozen=True)
class Recipient:
    subscription_id: str
    callback_url: str
    bearer_token: str | None
    body: dict


def wanted(subscriber: Subscriber, change: Change) -> list[tuple[str, str | None]]:
    """The (callbackUrl, bearerToken) pairs of entries naming this type and operation."""
    found: dict[str, str | None] = {}
    for entry in subscriber.object_operations:
        if (change.object_type in entry.get("objects", [])
                and change.operation in entry.get("operations", [])):
            found.setdefault(entry["callbackUrl"], entry.get("bearerToken"))
    return list(found.items())


def _matches(object_labels: set[str], allowed: set[str] | None) -> bool:
    """With a targets filter (or a VEN's labels) the object needs one of the labels."""
    return allowed is None or bool(object_labels & allowed)


def readable(subscriber: Subscriber, change: Change) -> bool:
    """Whether the subscriber's client may read the object now, with its filters applied."""
    if change.program_id is not None and subscriber.program_id is not None \
            and change.program_id != subscriber.program_id:
        return False
    labels = set(change.labels)
    requested = set(subscriber.labels) or None
    if change.object_type not in LABELLED_TYPES:
        requested = None  # reports carry no targets; the filter does not apply
    if subscriber.is_bl:
        if subscriber.reach is not None and (
                not subscriber.reach or not set(change.owners) <= subscriber.reach):
            return False
        return _matches(labels, requested)
    if change.object_type in OWNED_TYPES:
        return change.owner == subscriber.client_id and _matches(labels, requested)
    granted = set(subscriber.granted)
    if change.object_type == "EVENT" and not target_rules.is_visible(
            set(change.program_labels or ()), granted):
        return False
    if requested is None:
        return target_rules.is_visible(labels, granted)
    return bool(labels & granted & requested)


def visible_labels(subscriber: Subscriber) -> set[str] | None:
    """The labels a subscriber sees among an object's targets (None: all)."""
    if subscriber.is_bl:
        return None
    return target_rules.effective_labels(set(subscriber.granted), set(subscriber.labels) or None)


def notification_body(subscriber: Subscriber, change: Change) -> dict | None:
    """The version's ``notification`` for this subscriber; None if it cannot express it."""
    rendered = change.bodies.get(subscriber.wire_version)
    if rendered is None:
        return None
    rendered = dict(rendered)
    visible = visible_labels(subscriber)
    if change.object_type in HIDDEN_TARGET_TYPES and visible is not None:
        render = (target_rules.to_strings if subscriber.wire_version == VERSION_31
                  else target_rules.to_values_maps)
        hidden = render(change.targets, visible)
        rendered.pop("targets", None)
        if hidden is not None:
            rendered["targets"] = hidden
    operation = change.operation
    if subscriber.wire_version != VERSION_31:
        operation = OPERATIONS_301[operation]
    return {"objectType": change.object_type, "operation": operation, "object": rendered}


def recipients(change: Change, subscribers: Iterable[Subscriber]) -> list[Recipient]:
    """Every (subscription, callback) to notify of ``change``, with its body."""
    result: list[Recipient] = []
    for subscriber in subscribers:
        callbacks = wanted(subscriber, change)
        if not callbacks or not readable(subscriber, change):
            continue
        body = notification_body(subscriber, change)
        if body is None:
            continue
        result.extend(Recipient(subscriber.id, url, token, body) for url, token in callbacks)
    return result


def retry_delay(failed_attempts: int, delays: list[float],
                rand: random.Random | None = None) -> float | None:
    """Seconds before the next try after ``failed_attempts`` failures (+-20 % jitter);
    None when the schedule is exhausted (the subscription is then broken)."""
    if failed_attempts > len(delays):
        return None
    base = delays[failed_attempts - 1]
    return base * (rand or random).uniform(0.8, 1.2)
