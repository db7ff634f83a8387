"""Notifier discovery (3.1): only the bindings this VTN actually delivers are listed."""

from __future__ import annotations

from rest_framework.request import Request
from rest_framework.response import Response

from vtn.api.problems import NotFound
from vtn.api.views import OpenADRView
from vtn.auth.scopes import READ_ALL, READ_TARGETS, READ_VEN_OBJECTS
from vtn.notifiers import offered_bindings

READ_ANY = frozenset({READ_ALL, READ_TARGETS, READ_VEN_OBJECTS})


class NotifierList(OpenADRView):
    scopes = {"GET": READ_ANY}

    def get(self, request: Request) -> Response:
        return Response(offered_bindings())


class MqttTopics(OpenADRView):
    """Topic names exist only while the MQTT binding is offered."""

    scopes = {"GET": READ_ANY}

    def get(self, request: Request, **kwargs) -> Response:
        raise NotFound("This VTN does not offer the MQTT notifier binding.")
