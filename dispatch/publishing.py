"""How the dispatch app writes OpenADR objects: as business logic (``dispatch.identity``),
with request bodies validated by the 3.1 wire format first, so what the profile publishes
is exactly what an OpenADR client could have sent."""

from __future__ import annotations

from dispatch.identity import PROFILE_CALLER
from vtn import services as vtn_services
from vtn.models import Event, Program
from vtn.wire.v31 import Wire31

WIRE = Wire31()


def save_program(body: dict, *, program: Program | None = None) -> Program:
    """Create (or, given ``program``, replace) an OpenADR program from a 3.1 body."""
    return vtn_services.save_program(caller=PROFILE_CALLER, data=WIRE.program_in(body),
                                     program=program)


def save_event(body: dict, *, event: Event | None = None) -> Event:
    """Create (or, given ``event``, replace) an OpenADR event from a 3.1 body."""
    return vtn_services.save_event(caller=PROFILE_CALLER, data=WIRE.event_in(body), event=event)
