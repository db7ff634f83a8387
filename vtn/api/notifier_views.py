"""Notifier discovery (3.1): the bindings this VTN delivers, and the MQTT topic names.

Every topic endpoint answers from ``vtn.mqtt.topic`` (the publisher's own function), with
the scopes the document gives: the per-type and per-program topics are for business
logic (``read_all``); a VEN asks only for its own ven's topics (``read_ven_objects``).
Without a broker configured every topic endpoint answers 404.
"""

from __future__ import annotations

import ssl

from rest_framework.request import Request
from rest_framework.response import Response

from vtn import mqtt, selectors
from vtn.api.views import OpenADRView
from vtn.auth.authentication import caller_of
from vtn.auth.scopes import READ_ALL, READ_TARGETS, READ_VEN_OBJECTS
from vtn.errors import NotFound
from vtn.notifiers import offered_bindings
from vtn.signals import topics_discovered

READ_ANY = frozenset({READ_ALL, READ_TARGETS, READ_VEN_OBJECTS})
NO_MQTT = "This VTN does not offer the MQTT notifier binding."


class NotifierList(OpenADRView):
    scopes = {"GET": READ_ANY}

    def get(self, request: Request) -> Response:
        peer = getattr(request._request, "client_cert", None)
        pem = ssl.DER_cert_to_PEM_cert(peer.der) if peer is not None else ""
        return Response(offered_bindings(pem))


def _require_mqtt() -> None:
    if not mqtt.enabled():
        raise NotFound(NO_MQTT)


class BusinessLogicTopics(OpenADRView):
    """``/notifiers/mqtt/topics/{objects}``: one object type, all of it."""

    scopes = {"GET": frozenset({READ_ALL})}
    object_type: str = ""

    def get(self, request: Request) -> Response:
        _require_mqtt()
        return Response(mqtt.topics(self.object_type))


class ProgramTopics(OpenADRView):
    """``/programs/{programID}`` (no CREATE: it exists) and ``/programs/{programID}/events``."""

    scopes = {"GET": frozenset({READ_ALL})}
    events: bool = False

    def get(self, request: Request, program_id: str) -> Response:
        _require_mqtt()
        if not selectors.programs(caller_of(request)).filter(pk=program_id).exists():
            raise NotFound("No program with this ID exists, or it is not visible to this client.")
        if self.events:
            return Response(mqtt.topics("EVENT", program_id=program_id))
        return Response(mqtt.topics(program_id=program_id, create=False))


class VenTopics(OpenADRView):
    """``/vens/{venID}`` and its events, programs and resources: the caller's own ven."""

    scopes = {"GET": frozenset({READ_ALL, READ_VEN_OBJECTS})}
    object_type: str | None = None

    def get(self, request: Request, ven_id: str) -> Response:
        _require_mqtt()
        if not selectors.vens(caller_of(request)).filter(pk=ven_id).exists():
            raise NotFound("No ven with this ID exists, or it is not visible to this client.")
        topics_discovered.send(sender=VenTopics, client_id=caller_of(request).client_id,
                               ven_id=ven_id, object_type=self.object_type)
        if self.object_type is None:
            return Response(mqtt.topics(ven_id=ven_id, create=False))
        return Response(mqtt.topics(self.object_type, ven_id=ven_id))
