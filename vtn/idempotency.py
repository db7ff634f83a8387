"""Idempotent creates: a client's ``Idempotency-Key`` makes a resent POST harmless.

An FSP agent resends what it is not sure the VTN committed (after a crash or an outage)
with the key it first used. The first request with a key creates the object and, in the
same transaction, records (client, key) -> fingerprint (method, path, SHA-256 of the
canonical JSON body), status and the created object. A repeat with the same fingerprint
creates nothing and answers the object as it is now, with ``Idempotent-Replayed: true``;
a repeat with another fingerprint is refused with 422; if the object was deleted since,
409. A request that fails creates no record, so the key stays free.

Concurrency: the record is inserted first, before the object, under a unique constraint
on (client, key). A second request with the same key waits on that constraint until the
first one's transaction ends; if it committed, the second replays it (or gets 422), if it
rolled back, the second proceeds as a first request. Records expire after
``IDEMPOTENCY_KEY_RETENTION_HOURS``; :func:`purge_expired` (the Celery task
``vtn.tasks.purge_idempotency_keys``) deletes them.

This module keeps the records; the API's side (reading the header, answering a replay or
a refusal) is ``vtn/api/idempotency.py``.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework import status
from rest_framework.request import Request

from vtn.models import IdempotencyKey

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
VALID_KEY = re.compile(r"[\x20-\x7e]{1,255}")  # printable ASCII
PROBLEM_KEY_REUSED = "urn:gbflex-vtn:problem:idempotency-key-reused"
PROBLEM_OBJECT_GONE = "urn:gbflex-vtn:problem:idempotency-key-object-deleted"


@dataclass(frozen=True)
class Fingerprint:
    """What makes two requests "the same request": method, path and body."""

    method: str
    path: str
    body_sha256: str

    @classmethod
    def of(cls, request: Request) -> Fingerprint:
        """The fingerprint of a request; the body is hashed as canonical JSON (sorted keys,
        no insignificant whitespace), so key order and spacing do not matter."""
        canonical = json.dumps(request.data, sort_keys=True, separators=(",", ":"),
                               ensure_ascii=False, default=str)
        return cls(str(request.method).upper(), request.path,
                   hashlib.sha256(canonical.encode()).hexdigest())

    def matches(self, record: IdempotencyKey) -> bool:
        return (record.method, record.path, record.body_sha256) == (
            self.method, self.path, self.body_sha256)


def retention() -> timedelta:
    return timedelta(hours=settings.IDEMPOTENCY_KEY_RETENTION_HOURS)


def live_record(client_id: str, key: str) -> IdempotencyKey | None:
    return IdempotencyKey.objects.filter(
        client_id=client_id, key=key, created__gte=timezone.now() - retention()).first()


def claim(client_id: str, key: str, fingerprint: Fingerprint,
           object_type: str) -> IdempotencyKey | None:
    """Insert the record (object id still unknown) in the caller's transaction; None when
    another request holds the key. Waits while a concurrent holder is uncommitted."""
    # An expired record not purged yet no longer holds its key.
    IdempotencyKey.objects.filter(client_id=client_id, key=key,
                                  created__lt=timezone.now() - retention()).delete()
    try:
        with transaction.atomic():
            return IdempotencyKey.objects.create(
                client_id=client_id, key=key, method=fingerprint.method,
                path=fingerprint.path, body_sha256=fingerprint.body_sha256,
                status_code=status.HTTP_201_CREATED, object_type=object_type)
    except IntegrityError:
        return None


def purge_expired(*, now: datetime | None = None) -> int:
    """Delete records older than the retention; the number deleted."""
    cutoff = (now or timezone.now()) - retention()
    deleted, _ = IdempotencyKey.objects.filter(created__lt=cutoff).delete()
    return deleted
