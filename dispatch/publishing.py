"""How the dispatch app writes OpenADR objects: as business logic (``dispatch.identity``),
with request bodies validated by the 3.1 wire format first, so what the profile publishes
is exactly what an OpenADR client could have sent."""

from __future__ import annotations

from dispatch.identity import PROFILE_CALLER
from vtn import ownership
from vtn import services as vtn_services
from vtn.models import Event, ObjectOwner, Program, Ven
from vtn.wire.v31 import Wire31

WIRE = Wire31()


def save_program(body: dict, *, operator: str, program: Program | None = None) -> Program:
    """Create (or, given ``program``, replace) an OpenADR program from a 3.1 body; it is
    owned by the network operator ``operator`` (its code), so only business-logic clients
    granted that operator see it on the OpenADR API."""
    saved = vtn_services.save_program(caller=PROFILE_CALLER, data=WIRE.program_in(body),
                                      program=program)
    if program is None:
        ownership.assign(ObjectOwner.Kind.PROGRAM, saved.pk, [operator])
    return saved


def own_ven(ven: Ven, *, operator: str) -> None:
    """Make the network operator ``operator`` the owner of a site's ven (and so of its
    resources) on the OpenADR API."""
    ownership.assign(ObjectOwner.Kind.VEN, ven.pk, [operator])


def save_event(body: dict, *, event: Event | None = None) -> Event:
    """Create (or, given ``event``, replace) an OpenADR event from a 3.1 body."""
    return vtn_services.save_event(caller=PROFILE_CALLER, data=WIRE.event_in(body), event=event)
