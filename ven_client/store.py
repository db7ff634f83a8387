"""The agent's durable state: one SQLite file (WAL, ``synchronous=FULL``).

* ``outbox``: every message the agent must deliver, written before any attempt to send
  it, with its idempotency key. A message is ``pending`` until the VTN answered 2xx
  (``sent``) or refused it for good (``rejected``). ``uncertain`` is set before each
  attempt and cleared when an answer arrives, so after a crash the agent knows the VTN
  may already hold the message and checks before sending it again.
* ``revisions``: every dispatch revision accepted, and its handler state: ``received``
  (RECEIVED queued, handler not started), ``actioning`` (handler started), ``actioned``.
* ``refusals``: dispatches refused, by a fingerprint of what was refused (reported once).
* ``ingested``: content hashes of CSV files already queued.
* ``kv``: status values (last poll, comms state, clock skew, ...).
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    body TEXT NOT NULL,
    needs_event TEXT,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    uncertain INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    created_at REAL NOT NULL,
    sent_at REAL,
    response_id TEXT
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (state, id);
CREATE TABLE IF NOT EXISTS revisions (
    operator TEXT NOT NULL,
    dispatch_ref TEXT NOT NULL,
    revision INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    program_id TEXT NOT NULL,
    document TEXT NOT NULL,
    jws TEXT NOT NULL,
    state TEXT NOT NULL,
    outcome TEXT,
    reason TEXT,
    received_at REAL NOT NULL,
    actioning_at REAL,
    actioned_at REAL,
    PRIMARY KEY (operator, dispatch_ref, revision)
);
CREATE TABLE IF NOT EXISTS refusals (
    fingerprint TEXT PRIMARY KEY,
    event_id TEXT NOT NULL,
    dispatch_ref TEXT NOT NULL,
    revision INTEGER,
    reason TEXT NOT NULL,
    refused_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS ingested (
    content_hash TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    rows INTEGER NOT NULL,
    ingested_at REAL NOT NULL
);
"""


@dataclass(frozen=True)
class OutboxMessage:
    id: int
    idempotency_key: str
    kind: str
    method: str
    path: str
    body: dict
    needs_event: str | None
    attempts: int
    uncertain: bool


@dataclass(frozen=True)
class Revision:
    operator: str
    dispatch_ref: str
    revision: int
    event_id: str
    program_id: str
    document: dict
    jws: str
    state: str
    outcome: str | None
    reason: str | None


class Store:
    """The state database. One instance per process; not shared across threads."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA busy_timeout=30000")
        self.db.execute("PRAGMA cache_size=-512")  # KiB: the state is small; keep RSS low
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic, durable write: committed (fsync'd) on exit, rolled back on error."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- kv --

    def get(self, key: str, default: object = None) -> object:
        row = self.db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def put(self, key: str, value: object, conn: sqlite3.Connection | None = None) -> None:
        (conn or self.db).execute(
            "INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET "
            "value = excluded.value", (key, json.dumps(value)))

    # -- outbox --

    def enqueue(self, conn: sqlite3.Connection, *, kind: str, path: str, body: dict,
                method: str = "POST", needs_event: str | None = None,
                idempotency_key: str | None = None) -> str:
        """Queue a message inside the caller's transaction; returns its idempotency key."""
        key = idempotency_key or str(uuid.uuid4())
        conn.execute(
            "INSERT INTO outbox (idempotency_key, kind, method, path, body, needs_event, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (key, kind, method, path, json.dumps(body, sort_keys=True), needs_event,
             time.time()))
        return key

    def pending(self) -> list[OutboxMessage]:
        rows = self.db.execute(
            "SELECT * FROM outbox WHERE state = 'pending' ORDER BY id").fetchall()
        return [OutboxMessage(id=r["id"], idempotency_key=r["idempotency_key"],
                              kind=r["kind"], method=r["method"], path=r["path"],
                              body=json.loads(r["body"]), needs_event=r["needs_event"],
                              attempts=r["attempts"], uncertain=bool(r["uncertain"]))
                for r in rows]

    def pending_count(self) -> int:
        return int(self.db.execute(
            "SELECT count(*) FROM outbox WHERE state = 'pending'").fetchone()[0])

    def fill_body(self, message_id: int, body: dict) -> None:
        """Fix a held message's body once the event it needs is known (before any send)."""
        with self.transaction() as conn:
            conn.execute("UPDATE outbox SET body = ?, needs_event = NULL WHERE id = ? AND "
                         "attempts = 0", (json.dumps(body, sort_keys=True), message_id))

    def mark_attempt(self, message_id: int) -> None:
        """Before a send: the VTN may hold the message from now on."""
        with self.transaction() as conn:
            conn.execute("UPDATE outbox SET attempts = attempts + 1, uncertain = 1 "
                         "WHERE id = ?", (message_id,))

    def mark_unsent(self, message_id: int, error: str) -> None:
        """The attempt certainly did not create anything (an HTTP error answer)."""
        with self.transaction() as conn:
            conn.execute("UPDATE outbox SET uncertain = 0, last_error = ? WHERE id = ?",
                         (error, message_id))

    def mark_error(self, message_id: int, error: str) -> None:
        """The attempt failed without an answer: it stays uncertain."""
        with self.transaction() as conn:
            conn.execute("UPDATE outbox SET last_error = ? WHERE id = ?", (error, message_id))

    def mark_sent(self, message_id: int, response_id: str | None) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE outbox SET state = 'sent', uncertain = 0, sent_at = ?, "
                         "response_id = ? WHERE id = ?", (time.time(), response_id, message_id))

    def mark_rejected(self, message_id: int, error: str) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE outbox SET state = 'rejected', uncertain = 0, last_error = ? "
                         "WHERE id = ?", (error, message_id))

    def messages(self, kind: str | None = None) -> list[dict]:
        query = "SELECT * FROM outbox" + (" WHERE kind = ?" if kind else "") + " ORDER BY id"
        return [dict(r) for r in self.db.execute(query, (kind,) if kind else ())]

    # -- revisions --

    @staticmethod
    def _revision(row: sqlite3.Row) -> Revision:
        return Revision(operator=row["operator"], dispatch_ref=row["dispatch_ref"],
                        revision=row["revision"], event_id=row["event_id"],
                        program_id=row["program_id"], document=json.loads(row["document"]),
                        jws=row["jws"], state=row["state"], outcome=row["outcome"],
                        reason=row["reason"])

    def highest_revision(self, operator: str, dispatch_ref: str) -> int:
        row = self.db.execute("SELECT max(revision) FROM revisions WHERE operator = ? AND "
                              "dispatch_ref = ?", (operator, dispatch_ref)).fetchone()
        return row[0] or 0

    def add_revision(self, conn: sqlite3.Connection, *, operator: str, dispatch_ref: str,
                     revision: int, event_id: str, program_id: str, document: dict,
                     jws: str) -> None:
        conn.execute(
            "INSERT INTO revisions (operator, dispatch_ref, revision, event_id, program_id, "
            "document, jws, state, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'received', ?)",
            (operator, dispatch_ref, revision, event_id, program_id, json.dumps(document),
             jws, time.time()))

    def revisions_in(self, state: str) -> list[Revision]:
        rows = self.db.execute("SELECT * FROM revisions WHERE state = ? ORDER BY received_at, "
                               "revision", (state,)).fetchall()
        return [self._revision(r) for r in rows]

    def mark_actioning(self, revision: Revision) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE revisions SET state = 'actioning', actioning_at = ? WHERE "
                         "operator = ? AND dispatch_ref = ? AND revision = ?",
                         (time.time(), revision.operator, revision.dispatch_ref,
                          revision.revision))

    def mark_actioned(self, conn: sqlite3.Connection, revision: Revision, outcome: str,
                      reason: str) -> None:
        conn.execute("UPDATE revisions SET state = 'actioned', outcome = ?, reason = ?, "
                     "actioned_at = ? WHERE operator = ? AND dispatch_ref = ? AND revision = ?",
                     (outcome, reason, time.time(), revision.operator, revision.dispatch_ref,
                      revision.revision))

    def revisions_between(self, since: float, until: float) -> list[dict]:
        """Revisions held or handled between ``since`` and ``until`` (epoch seconds): the
        current revision of each dispatch whose service period overlaps that time, and any
        revision received or actioned in it; oldest first, documents parsed."""
        rows = self.db.execute(
            "SELECT * FROM revisions r WHERE r.revision = (SELECT MAX(revision) FROM "
            "revisions WHERE operator = r.operator AND dispatch_ref = r.dispatch_ref) OR "
            "received_at BETWEEN ? AND ? OR actioned_at BETWEEN ? AND ? "
            "ORDER BY received_at, revision", (since, until, since, until)).fetchall()
        found = []
        for row in rows:
            entry = dict(row) | {"document": json.loads(row["document"])}
            document = entry["document"]
            start = _epoch(document.get("serviceStart"))
            end = _epoch(document.get("serviceEnd"))
            overlaps = start is not None and end is not None and start < until and end > since
            handled = any(v is not None and since <= v <= until
                          for v in (row["received_at"], row["actioned_at"]))
            if overlaps or handled:
                found.append(entry)
        return found

    def last_revision(self) -> dict | None:
        row = self.db.execute("SELECT * FROM revisions ORDER BY received_at DESC LIMIT 1"
                              ).fetchone()
        if row is None:
            return None
        return {"networkOperatorId": row["operator"], "dispatchRef": row["dispatch_ref"],
                "revision": row["revision"], "state": row["state"], "outcome": row["outcome"],
                "receivedAt": row["received_at"], "actionedAt": row["actioned_at"]}

    # -- refusals and ingested files --

    def refused(self, fingerprint: str) -> bool:
        return self.db.execute("SELECT 1 FROM refusals WHERE fingerprint = ?",
                               (fingerprint,)).fetchone() is not None

    def add_refusal(self, conn: sqlite3.Connection, *, fingerprint: str, event_id: str,
                    dispatch_ref: str, revision: int | None, reason: str) -> None:
        conn.execute("INSERT INTO refusals (fingerprint, event_id, dispatch_ref, revision, "
                     "reason, refused_at) VALUES (?, ?, ?, ?, ?, ?)",
                     (fingerprint, event_id, dispatch_ref, revision, reason, time.time()))

    def ingested(self, content_hash: str) -> bool:
        return self.db.execute("SELECT 1 FROM ingested WHERE content_hash = ?",
                               (content_hash,)).fetchone() is not None

    def add_ingested(self, conn: sqlite3.Connection, *, content_hash: str, name: str,
                     rows: int) -> None:
        conn.execute("INSERT INTO ingested (content_hash, name, rows, ingested_at) VALUES "
                     "(?, ?, ?, ?)", (content_hash, name, rows, time.time()))


def _epoch(text: str | None) -> float | None:
    """An ISO 8601 instant (``Z`` or an offset) as epoch seconds; None if it is not one."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
