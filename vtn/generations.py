"""Change counters that invalidate the per-process caches of every web process.

``TARGETING`` moves with any write to programs, events, vens or resources (what a VEN
may see); ``AUTH`` moves when a client is revoked or rotated or its binding changes, and when a
certificate is bound or revoked or a client's ``require_mtls`` changes.

How a process learns the current values (:func:`current`, read once per authenticated
request):

* By default, one small query per request. SQLite (the embedded default) answers it
  in-process, without a round trip.
* A web process on PostgreSQL (``manage.py serve`` calls :func:`listen` in each worker)
  keeps them instead from a connection of its own that listens (``LISTEN``) on
  :data:`CHANNEL`. :func:`bump` sends a ``NOTIFY`` in the writing transaction, which
  PostgreSQL delivers to every listening process of every node when, and only if, that
  transaction commits; requests then check that connection's socket without blocking
  (no round trip), at most once per ``VTN_CHANGE_CHECK_SECONDS`` (2 ms: a busy process
  makes that system call, which also hands the GIL to another thread, on a few requests
  in a hundred rather than on each), and re-read the counters only when a notification
  arrived. So a change committed elsewhere is in every answer a process starts 2 ms or
  more after the notification reached it. The writing process also marks its own copy
  stale on commit (its next request re-reads), and every process re-reads at least
  every ``VTN_CHANGE_RECHECK_SECONDS`` whatever it heard. Should the connection fail,
  requests fall back to the query until it is back.
"""

from __future__ import annotations

import logging
import secrets
import select
import threading
import time
from collections.abc import Hashable
from typing import Any, Generic, TypeVar

import psycopg
from django.conf import settings
from django.db import connection, transaction

from vtn.models import Generation

logger = logging.getLogger(__name__)

TARGETING = "targeting"
AUTH = "auth"
NAMES = (TARGETING, AUTH)
# The PostgreSQL notification channel of counter changes.
CHANNEL = "vtn_generations"


def bump(name: str) -> None:
    """Move a counter to a fresh value; call inside the transaction that makes the change.

    The new value is random rather than +1 so that a rolled-back transaction can never
    make a later, different state reuse a value that caches already hold.
    """
    value = secrets.randbits(62)
    if not Generation.objects.filter(name=name).update(value=value):
        Generation.objects.get_or_create(name=name, defaults={"value": value})
    if connection.vendor == "postgresql":
        # Delivered to every listening process when (and only if) the transaction commits.
        with connection.cursor() as cursor:
            cursor.execute(f"NOTIFY {CHANNEL}")
    listener = _listener
    if listener is not None:
        transaction.on_commit(listener.mark_stale)


def _read(cursor: Any) -> tuple[int, int]:
    cursor.execute(f"SELECT name, value FROM {Generation._meta.db_table}")
    values = dict(cursor.fetchall())
    return values.get(TARGETING, 0), values.get(AUTH, 0)


def current() -> tuple[int, int]:
    """The (targeting, auth) counters as committed now.

    Runs on every authenticated request: from this process's listener when it has one
    (no round trip), else one query that skips the ORM's query building.
    """
    listener = _listener
    if listener is not None:
        values = listener.values()
        if values is not None:
            return values
    with connection.cursor() as cursor:
        return _read(cursor)


class ChangeListener:
    """This process's view of the counters, kept current by PostgreSQL notifications.

    Thread-safe; :meth:`values` never blocks on the network unless a notification has
    arrived (or the recheck interval has passed), and returns None while the connection
    is down, so that callers query instead.
    """

    def __init__(self, conninfo: dict[str, Any], recheck_seconds: float,
                 retry_seconds: float = 5.0, check_seconds: float = 0.0) -> None:
        self._conninfo = conninfo
        self._recheck_seconds = recheck_seconds
        self._retry_seconds = retry_seconds
        self._check_seconds = min(check_seconds, recheck_seconds)
        self._lock = threading.Lock()
        self._conn: psycopg.Connection | None = None
        self._values: tuple[int, int] | None = None
        self._stale = True
        self._read_at = 0.0
        self._retry_at = 0.0
        # Until then, the socket was looked at too recently to look again (see values()).
        self._checked_until = 0.0

    @property
    def backend_pid(self) -> int | None:
        """The PostgreSQL backend process of the listening connection (None while down)."""
        conn = self._conn
        return conn.info.backend_pid if conn is not None else None

    def mark_stale(self) -> None:
        """Re-read on the next request (this process changed a counter)."""
        self._stale = True

    def _heard(self, _notify: Any) -> None:
        self._stale = True

    def _connect(self) -> None:
        conn = psycopg.connect(**self._conninfo, autocommit=True)
        conn.add_notify_handler(self._heard)
        conn.execute(f"LISTEN {CHANNEL}")  # before the first read: no change slips between
        self._conn = conn
        self._stale = True

    def _drop(self, exc: BaseException) -> None:
        logger.warning("change notifications unavailable (%s); reading the counters per "
                       "request until the connection is back", exc)
        conn, self._conn, self._values = self._conn, None, None
        self._retry_at = time.monotonic() + self._retry_seconds
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                pass

    def values(self) -> tuple[int, int] | None:
        # Without the lock or a system call while the socket was looked at less than
        # check_seconds ago and nothing marked the values stale since.
        values = self._values
        if values is not None and not self._stale and time.monotonic() < self._checked_until:
            return values
        with self._lock:
            try:
                if self._conn is None:
                    if time.monotonic() < self._retry_at:
                        return None
                    self._connect()
                conn = self._conn
                assert conn is not None
                if select.select([conn.fileno()], [], [], 0)[0]:
                    # Data is waiting: notifications, or the server ending the connection
                    # (an error message, then the end of the stream). Take it in and read
                    # the counters again, which also proves the connection still works.
                    conn.pgconn.consume_input()
                    while conn.pgconn.notifies() is not None:
                        pass
                    self._stale = True
                now = time.monotonic()
                while self._stale or now - self._read_at >= self._recheck_seconds:
                    # Cleared before the read: a notification during it reads again.
                    self._stale = False
                    with conn.cursor() as cursor:
                        self._values = _read(cursor)
                    self._read_at = time.monotonic()
                self._checked_until = min(now + self._check_seconds,
                                          self._read_at + self._recheck_seconds)
                return self._values
            except (psycopg.Error, OSError) as exc:
                self._drop(exc)
                return None

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()


_listener: ChangeListener | None = None


def listen() -> bool:
    """Keep this process's counters from PostgreSQL notifications (see the module doc).

    Call once per web process, after it is forked; returns False (and changes nothing)
    on a database other than PostgreSQL."""
    global _listener
    if connection.vendor != "postgresql":
        return False
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    params.pop("server_side_binding", None)
    params.pop("prepare_threshold", None)
    _listener = ChangeListener(
        params, float(getattr(settings, "VTN_CHANGE_RECHECK_SECONDS", 1.0)),
        check_seconds=float(getattr(settings, "VTN_CHANGE_CHECK_SECONDS", 0.002)))
    return True


def stop_listening() -> None:
    global _listener
    listener, _listener = _listener, None
    if listener is not None:
        listener.close()


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
