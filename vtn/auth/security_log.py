"""The append-only security log: one writer, one reader with filters.

Every authentication decision worth reviewing (tokens issued and refused, failed bearer
tokens, certificate mismatches, revoked certificates, rate limiting) and every credential
change (clients and certificates created, rotated, bound, revoked) is recorded as a
:class:`~vtn.models.SecurityEvent`. Rows are never updated or deleted.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.db import DatabaseError
from django.db.models import QuerySet

from vtn.models import SecurityEvent

Kind = SecurityEvent.Kind
logger = logging.getLogger("vtn.security")


def record(kind: str, *, client_id: str = "", remote_addr: str = "", cert_sha256: str = "",
           detail: str = "") -> SecurityEvent | None:
    """Append one event (and log it). A database failure is logged, never raised: the
    request being judged must get its answer whether or not the log write succeeded."""
    event = SecurityEvent(kind=kind, client_id=client_id[:128], remote_addr=remote_addr[:64],
                          cert_sha256=cert_sha256, detail=detail)
    logger.info("security event %s client=%s addr=%s cert=%s %s", kind, client_id or "-",
                remote_addr or "-", cert_sha256 or "-", detail)
    try:
        event.save()
    except DatabaseError:
        logger.exception("could not write security event %s", kind)
        return None
    return event


def events(*, kind: str | None = None, client_id: str | None = None,
           since: dt.datetime | None = None, limit: int | None = None) -> QuerySet:
    """Events matching the filters, newest last; ``limit`` keeps the newest ``limit``."""
    queryset = SecurityEvent.objects.all()
    if kind:
        queryset = queryset.filter(kind=kind)
    if client_id:
        queryset = queryset.filter(client_id=client_id)
    if since is not None:
        queryset = queryset.filter(time__gte=since)
    if limit:
        ids = list(queryset.order_by("-time", "-id").values_list("id", flat=True)[:limit])
        queryset = SecurityEvent.objects.filter(id__in=ids)
    return queryset.order_by("time", "id")


def as_dict(event: SecurityEvent) -> dict:
    return {"id": event.id, "time": event.time.isoformat(), "kind": event.kind,
            "client_id": event.client_id, "remote_addr": event.remote_addr,
            "cert_sha256": event.cert_sha256, "detail": event.detail}
