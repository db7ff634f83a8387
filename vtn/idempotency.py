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
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from vtn.api.problems import PROBLEM_CONTENT_TYPE, BadRequest, problem_body
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
        return cls(request.method.upper(), request.path,
                   hashlib.sha256(canonical.encode()).hexdigest())

    def matches(self, record: IdempotencyKey) -> bool:
        return (record.method, record.path, record.body_sha256) == (
            self.method, self.path, self.body_sha256)


def retention() -> timedelta:
    return timedelta(hours=settings.IDEMPOTENCY_KEY_RETENTION_HOURS)


def key_of(request: Request) -> str | None:
    """The request's Idempotency-Key, None without one; 400 when it is malformed."""
    key = request.headers.get(HEADER)
    if key is not None and not VALID_KEY.fullmatch(key):
        raise BadRequest(f"{HEADER} must be 1 to 255 printable ASCII characters.")
    return key


def create_once(request: Request, *, object_type: str, create: Callable[[], object],
                find: Callable[[str], object | None],
                render: Callable[[object], dict]) -> Response:
    """Answer a creating POST: ``create()`` at most once per client and Idempotency-Key.

    ``create`` parses the request and makes the object (raising the API's problems),
    ``find(object_id)`` returns the object as the caller may see it now (None if gone),
    ``render(object)`` gives its body in the request's wire format. Without a key this
    is ``create()`` answered with 201.
    """
    key = key_of(request)
    if key is None:
        return Response(render(create()), status=status.HTTP_201_CREATED)
    client_id = request.user.client_id
    fingerprint = Fingerprint.of(request)
    earlier = _live_record(client_id, key)
    if earlier is None:
        with transaction.atomic():
            record = _claim(client_id, key, fingerprint, object_type)
            if record is not None:
                instance = create()
                record.object_id = str(instance.pk)
                record.save(update_fields=["object_id"])
                return Response(render(instance), status=record.status_code)
            # A concurrent request with this key committed first: answer as its retry.
            earlier = _live_record(client_id, key)
    return _replay(earlier, fingerprint, find, render)


def _live_record(client_id: str, key: str) -> IdempotencyKey | None:
    return IdempotencyKey.objects.filter(
        client_id=client_id, key=key, created__gte=timezone.now() - retention()).first()


def _claim(client_id: str, key: str, fingerprint: Fingerprint,
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


def _replay(record: IdempotencyKey | None, fingerprint: Fingerprint,
            find: Callable[[str], object | None],
            render: Callable[[object], dict]) -> Response:
    if record is None:  # the concurrent holder's record expired in between: vanishingly rare
        return _problem(status.HTTP_409_CONFLICT, PROBLEM_OBJECT_GONE,
                        "Idempotency-Key no longer usable",
                        f"The request that used this {HEADER} could not be found; "
                        "retry with a new key.")
    if not fingerprint.matches(record):
        return _problem(422, PROBLEM_KEY_REUSED, "Idempotency-Key reused",
                        f"This {HEADER} was already used for a different request "
                        f"({record.method} {record.path} with another body); nothing was "
                        "changed. Use a new key for a new request.")
    instance = find(record.object_id)
    if instance is None:
        return _problem(status.HTTP_409_CONFLICT, PROBLEM_OBJECT_GONE,
                        "Created object deleted",
                        f"The {record.object_type.lower()} {record.object_id} created by the "
                        f"first request with this {HEADER} has since been deleted; nothing "
                        "was created again.")
    response = Response(render(instance), status=record.status_code)
    response[REPLAYED_HEADER] = "true"
    return response


def _problem(status_code: int, problem_type: str, title: str, detail: str) -> Response:
    body = problem_body(status_code, detail) | {"type": problem_type, "title": title}
    return Response(body, status=status_code, content_type=PROBLEM_CONTENT_TYPE)


def purge_expired(*, now: datetime | None = None) -> int:
    """Delete records older than the retention; the number deleted."""
    cutoff = (now or timezone.now()) - retention()
    deleted, _ = IdempotencyKey.objects.filter(created__lt=cutoff).delete()
    return deleted
