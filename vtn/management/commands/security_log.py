"""`manage.py security_log`: read the append-only security log as JSON lines.

Filters: ``--kind`` (repeatable), ``--client`` (client_id), ``--since`` (ISO 8601 time, or
a duration such as ``15m``, ``2h``, ``7d`` back from now) and ``--limit`` (the newest N).
Lines are oldest first, one JSON object each: id, time, kind, client_id, remote_addr,
cert_sha256, detail.
"""

from __future__ import annotations

import datetime as dt
import json
import re

from django.core.management.base import BaseCommand, CommandError, CommandParser

from vtn.auth import security_log
from vtn.models import SecurityEvent

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_since(value: str) -> dt.datetime:
    """An ISO 8601 time (UTC if it names no zone) or a duration back from now."""
    match = _DURATION.match(value.strip())
    if match:
        delta = dt.timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        return dt.datetime.now(dt.UTC) - delta
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"--since {value!r}: use an ISO 8601 time or e.g. 15m, 2h, 7d") \
            from exc
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


class Command(BaseCommand):
    help = "Print security events (token issuance, failures, certificate problems) as JSON lines."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--kind", action="append", choices=SecurityEvent.Kind.values,
                            help="only events of this kind (repeatable)")
        parser.add_argument("--client", help="only events of this client_id")
        parser.add_argument("--since", help="ISO 8601 time, or 15m / 2h / 7d back from now")
        parser.add_argument("--limit", type=int, help="only the newest N events")

    def handle(self, *args, **options) -> None:
        since = parse_since(options["since"]) if options.get("since") else None
        kinds = options.get("kind") or [None]
        rows: list[SecurityEvent] = []
        for kind in kinds:
            rows.extend(security_log.events(kind=kind, client_id=options.get("client"),
                                            since=since, limit=options.get("limit")))
        rows.sort(key=lambda event: (event.time, event.id))
        if options.get("limit"):
            rows = rows[-options["limit"]:]
        for event in rows:
            self.stdout.write(json.dumps(security_log.as_dict(event)))
