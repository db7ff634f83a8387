"""Demo data for the sandbox: GB flexibility programs, demo VENs and upcoming events.

The data lives in ``demo_data/`` as OpenADR 3.1 request bodies and goes through the 3.1
wire format and :mod:`vtn.services`, so it is validated exactly like API input. Loading
is idempotent: objects are matched by name and left alone when they exist, except demo
events that have already ended, which are moved forward so the sandbox always shows
upcoming dispatches.

Fixture files (all JSON lists):

- ``programs.json``: 3.1 ``programRequest`` bodies.
- ``vens.json``: ``{"ven": <BL_VEN_REQUEST>, "resources": [<BL_RESOURCE_REQUEST without
  venID>, ...]}``; the loader fills in ``venID``.
- ``events.json``: ``{"program": <programName>, "startsInDays": int, "startTimeUtc":
  "HH:MM", "event": <eventRequest without programID>}``; the loader fills in
  ``programID`` and ``intervalPeriod.start`` (that many days after today, at that UTC
  time), so the events are always in the future when loaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from vtn import services
from vtn.auth.caller import Caller
from vtn.auth.scopes import DEFAULT_SCOPES
from vtn.auth.services import IssuedCredentials, create_client, rotate_secret
from vtn.errors import Problem
from vtn.models import Client, Event, Program, Resource, Ven
from vtn.wire.v31 import Wire31

DEMO_DATA_DIR = Path(settings.BASE_DIR) / "demo_data"


class DemoDataError(ValueError):
    """A demo file breaks the OpenADR document or the VTN's rules; says which and why."""


@dataclass
class LoadSummary:
    """Names of the demo objects created, refreshed or already present."""

    created: list[str] = field(default_factory=list)
    refreshed: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)


def _loader() -> Caller:
    """The business-logic identity the demo data is written as."""
    return Caller(client_id="sandbox-loader", name="sandbox-loader", role="bl",
                  scopes=frozenset(DEFAULT_SCOPES["bl"]), internal=True)


def _read(data_dir: Path, name: str) -> list:
    with (data_dir / name).open(encoding="utf-8") as handle:
        return json.load(handle)


@transaction.atomic
def load_demo_data(*, data_dir: Path = DEMO_DATA_DIR,
                   now: datetime | None = None) -> LoadSummary:
    """Load the demo programs, VENs (with resources) and events; safe to call repeatedly.

    ``now`` (UTC, default: the current time) anchors the event start times. Raises
    :class:`DemoDataError` (and loads nothing) when a demo file is invalid.
    """
    try:
        return _load(data_dir, now or timezone.now())
    except Problem as exc:
        details = "; ".join(exc.errors)
        raise DemoDataError(f"invalid demo data in {data_dir}: {exc.detail}"
                            + (f" ({details})" if details else "")) from exc


def _load(data_dir: Path, now: datetime) -> LoadSummary:
    caller = _loader()
    wire = Wire31()
    summary = LoadSummary()

    for body in _read(data_dir, "programs.json"):
        data = wire.program_in(body)
        if Program.objects.filter(program_name=data["program_name"]).exists():
            summary.existing.append(f"program {data['program_name']}")
            continue
        services.save_program(caller=caller, data=data)
        summary.created.append(f"program {data['program_name']}")

    for item in _read(data_dir, "vens.json"):
        data, _ = wire.ven_in(item["ven"], caller)
        ven = Ven.objects.filter(ven_name=data["ven_name"]).first()
        if ven is None:
            ven = services.save_ven(caller=caller, data=data)
            summary.created.append(f"ven {ven.ven_name}")
        else:
            summary.existing.append(f"ven {ven.ven_name}")
        for body in item.get("resources", []):
            resource = wire.resource_in({**body, "venID": ven.pk}, caller)
            resource.pop("ven_id")
            name = f"resource {ven.ven_name}/{resource['resource_name']}"
            if Resource.objects.filter(ven=ven, resource_name=resource["resource_name"]).exists():
                summary.existing.append(name)
                continue
            # The resource belongs to whichever client the ven is bound to now.
            resource["client_id"] = ven.client_id
            services.save_resource(caller=caller, ven=ven, data=resource)
            summary.created.append(name)

    for item in _read(data_dir, "events.json"):
        program = Program.objects.get(program_name=item["program"])
        body = _anchored_event(item, program.pk, now)
        data = wire.event_in(body)
        existing = Event.objects.filter(program=program, event_name=data["event_name"]).first()
        name = f"event {data['event_name']}"
        if existing is None:
            services.save_event(caller=caller, data=data)
            summary.created.append(name)
        elif existing.ends_at is not None and existing.ends_at <= now:
            services.save_event(caller=caller, data=data, event=existing)
            summary.refreshed.append(name)
        else:
            summary.existing.append(name)
    return summary


def _anchored_event(item: dict, program_id: str, now: datetime) -> dict:
    """The demo event's body with its programID and a concrete start time."""
    day = now.astimezone(UTC).date() + timedelta(days=int(item["startsInDays"]))
    start = datetime.combine(day, time.fromisoformat(item["startTimeUtc"]), tzinfo=UTC)
    event = dict(item["event"])
    event["programID"] = program_id
    event["intervalPeriod"] = {**event.get("intervalPeriod", {}),
                               "start": start.isoformat().replace("+00:00", "Z")}
    return event


def issue_sandbox_client(*, name: str, role: str,
                         ven_name: str | None = None) -> IssuedCredentials:
    """Credentials for a sandbox client: created on first use, a fresh secret afterwards.

    The secret is only ever stored hashed, so a re-run cannot show the old one; it
    rotates instead, keeping the client_id (and the VEN binding) stable.
    """
    client = Client.objects.filter(name=name).first()
    if client is None:
        return create_client(name=name, role=role, ven_name=ven_name)
    if client.role != role:
        raise ValueError(f"client {name!r} exists with role {client.role!r}, not {role!r}")
    return rotate_secret(client_id=client.client_id)
