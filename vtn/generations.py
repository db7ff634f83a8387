"""Change counters that invalidate the per-process caches of every web process.

``TARGETING`` moves with any write to programs, events, vens or resources (what a VEN
may see); ``AUTH`` moves when a client is revoked or rotated or its binding changes, and when a
certificate is bound or revoked or a client's ``require_mtls`` changes.
"""

from __future__ import annotations

import secrets
from collections.abc import Hashable
from typing import Any, Generic, TypeVar

from django.db import connection

from vtn.models import Generation

TARGETING = "targeting"
AUTH = "auth"
NAMES = (TARGETING, AUTH)


def bump(name: str) -> None:
    """Move a counter to a fresh value; call inside the transaction that makes the change.

    The new value is random rather than +1 so that a rolled-back transaction can never
    make a later, different state reuse a value that caches already hold.
    """
    value = secrets.randbits(62)
    if not Generation.objects.filter(name=name).update(value=value):
        Generation.objects.get_or_create(name=name, defaults={"value": value})


def current() -> tuple[int, int]:
    """The (targeting, auth) counters as committed now: one query.

    Runs on every authenticated request, so it skips the ORM's query building.
    """
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT name, value FROM {Generation._meta.db_table}")
        values = dict(cursor.fetchall())
    return values.get(TARGETING, 0), values.get(AUTH, 0)


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ProcessCache(Generic[K, V]):
    """A bounded in-memory map for one web process, keyed by generation values.

    Entries are never invalidated one by one: keys include the generations they were
    computed under, so a changed generation simply stops matching them.
    """

    instances: list[ProcessCache[Any, Any]] = []

    def __init__(self, max_entries: int = 20_000):
        self.max_entries = max_entries
        self._data: dict[K, V] = {}
        ProcessCache.instances.append(self)

    def get(self, key: K) -> V | None:
        return self._data.get(key)

    def put(self, key: K, value: V) -> None:
        if len(self._data) >= self.max_entries:
            self._data.clear()
        self._data[key] = value

    def clear(self) -> None:
        self._data.clear()

    @classmethod
    def clear_all(cls) -> None:
        for cache in cls.instances:
            cache.clear()
