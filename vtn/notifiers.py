"""Which notification bindings this VTN delivers.

A binding is advertised only while the VTN delivers notifications over it, so clients
never wait for callbacks that will not come: ``WEBHOOK`` is true unless an operator
turned webhook delivery off (``VTN_WEBHOOKS_ENABLED``); ``MQTT`` is present only when a
broker is configured (``VTN_MQTT_BROKER_URL``).
"""

from __future__ import annotations

from django.conf import settings

from vtn import mqtt


def offered_bindings(client_cert_pem: str = "") -> dict:
    """The `/notifiers` body: MQTT only while a broker is configured. ``client_cert_pem``:
    the certificate the caller presented (advertised with CERTIFICATE authentication)."""
    body: dict[str, object] = {"WEBHOOK": bool(settings.VTN_WEBHOOKS_ENABLED)}
    binding = mqtt.binding(client_cert_pem)
    if binding is not None:
        body["MQTT"] = binding
    return body
