"""How the dispatch app writes OpenADR objects: as business logic (one caller), with
request bodies validated by the 3.1 wire format first, so what the profile publishes is
exactly what an OpenADR client could have sent."""

from __future__ import annotations

from vtn import services as vtn_services
from vtn.api.serializers.v31 import Wire31
from vtn.auth.caller import Caller
from vtn.auth.scopes import ALL_SCOPES
from vtn.models import Event, Program

# The dispatch app acts on OpenADR objects as business logic.
PROFILE_CALLER = Caller(client_id="gb-dispatch-profile", name="gb-dispatch-profile", role="bl",
                        scopes=frozenset(ALL_SCOPES))
WIRE = Wire31()


def save_program(body: dict, *, program: Program | None = None) -> Program:
    """Create (or, given ``program``, replace) an OpenADR program from a 3.1 body."""
    return vtn_services.save_program(caller=PROFILE_CALLER, data=WIRE.program_in(body),
                                     program=program)


def save_event(body: dict, *, event: Event | None = None) -> Event:
    """Create (or, given ``event``, replace) an OpenADR event from a 3.1 body."""
    return vtn_services.save_event(caller=PROFILE_CALLER, data=WIRE.event_in(body), event=event)
