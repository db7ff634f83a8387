"""The MQTT notifier (3.1): topic names, the binding advertised in /notifiers, publishing.

One function, :func:`topic`, names every topic: the publisher uses it and so does every
``/notifiers/mqtt/topics/...`` endpoint, so a discovered topic is always the one
published to. Layout (``VTN_MQTT_TOPIC_PREFIX``, default ``openadr3``)::

    {prefix}/{objects}/{operation}                         business logic, per type
    {prefix}/programs/{programID}/{operation}              one program
    {prefix}/programs/{programID}/events/{operation}       the events of one program
    {prefix}/vens/{venID}/{objects}/{operation}            what that VEN may read
    {prefix}/vens/{venID}/{operation}                      the ven object itself

``{operation}`` is ``create``, ``update`` or ``delete``; ``+`` stands for all of them.
Messages are 3.1 ``notification`` bodies (JSON), QoS 1, never retained. A per-VEN topic
carries only what that VEN could GET, with only its own labels among the targets.

The binding is on only when ``VTN_MQTT_BROKER_URL`` is set. Publishing happens after
the commit, off the request (same path as webhooks), through one paho-mqtt client per
process that reconnects on its own; while the broker is down the API keeps answering
and the messages queue in memory up to a bound (then are dropped: polling covers them).
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from urllib.parse import urlsplit

import paho.mqtt.client as paho
from celery import shared_task
from django.conf import settings

from vtn import notifications, selectors
from vtn.models import Client, Ven
from vtn.notifications import Change, Subscriber
from vtn.schemas import VERSION_31

logger = logging.getLogger("vtn.mqtt")

OPERATIONS = ("CREATE", "UPDATE", "DELETE")
PLURAL = {"PROGRAM": "programs", "EVENT": "events", "REPORT": "reports",
          "SUBSCRIPTION": "subscriptions", "VEN": "vens", "RESOURCE": "resources"}
ALL = "ALL"
MAX_QUEUED = 10_000


def enabled() -> bool:
    return bool(settings.VTN_MQTT_BROKER_URL)


def topic(operation: str, object_type: str | None = None, *, program_id: str | None = None,
          ven_id: str | None = None) -> str:
    """The topic of ``operation`` (CREATE, UPDATE, DELETE or ALL) on objects of a type,
    optionally within one program or for one VEN; ``object_type`` None with ``ven_id``
    (or ``program_id``) is that ven (or program) object itself."""
    parts = [settings.VTN_MQTT_TOPIC_PREFIX]
    if ven_id is not None:
        parts += ["vens", ven_id]
    if program_id is not None:
        parts += ["programs", program_id]
    if object_type is not None:
        parts.append(PLURAL[object_type])
    parts.append("+" if operation == ALL else operation.lower())
    return "/".join(parts)


def topics(object_type: str | None = None, *, program_id: str | None = None,
           ven_id: str | None = None, create: bool = True) -> dict:
    """A ``notifierTopicsResponse``; ``create`` False for one existing object (no CREATE)."""
    names = {op: topic(op, object_type, program_id=program_id, ven_id=ven_id)
             for op in (*OPERATIONS, ALL) if create or op != "CREATE"}
    return {"topics": names}


def binding(client_cert_pem: str = "") -> dict | None:
    """The ``mqttNotifierBindingObject`` of /notifiers, None when MQTT is off.

    With ``CERTIFICATE`` (client certificates on a TLS listener, docs/notifications.md)
    ``caCert`` is the CA certificate that verifies the broker, ``clientCert`` the
    certificate the caller presented on this request (``client_cert_pem``; the broker
    accepts it, it was issued by the operator's CA) and ``clientKey`` is always empty:
    the VTN never holds a client's private key."""
    if not enabled():
        return None
    uris = settings.VTN_MQTT_PUBLIC_URIS or [settings.VTN_MQTT_BROKER_URL]
    method = settings.VTN_MQTT_AUTHENTICATION
    authentication: dict = {"method": method}
    if method == "OAUTH2_BEARER_TOKEN":
        authentication["username"] = "{clientID}"
    elif method == "CERTIFICATE":
        authentication |= {"caCert": broker_ca_pem(), "clientCert": client_cert_pem,
                           "clientKey": ""}
    return {"URIS": uris, "serialization": "JSON", "authentication": authentication}


def broker_ca_pem() -> str:
    """The CA certificate (PEM) a client verifies the broker with."""
    path = (settings.VTN_MQTT_PUBLIC_CA_FILE or settings.VTN_MQTT_CA_BUNDLE
            or str(Path(settings.VTN_PKI_DIR) / "ca.pem"))
    try:
        return Path(path).read_text()
    except OSError:
        logger.warning("MQTT broker CA %s cannot be read; caCert advertised empty", path)
        return ""


# --- what to publish ------------------------------------------------------------------------

def messages(change: Change, vens: list[tuple[str, str, frozenset[str]]]) -> list[tuple]:
    """(topic, body) pairs for one change. ``vens`` is (venID, clientID, granted labels)
    of every ven bound to a live client: each gets, on its own topics, what it may read."""
    if change.bodies.get(VERSION_31) is None:
        return []
    bl = Subscriber(id="", client_id="", is_bl=True, program_id=None, object_operations=[],
                    labels=frozenset(), wire_version=VERSION_31)
    body = notifications.notification_body(bl, change)
    found = [(topic(change.operation, change.object_type), body)]
    if change.object_type == "PROGRAM":
        found.append((topic(change.operation, program_id=change.object_id), body))
    if change.object_type == "EVENT" and change.program_id:
        found.append((topic(change.operation, "EVENT", program_id=change.program_id), body))
    if change.object_type not in ("PROGRAM", "EVENT", "VEN", "RESOURCE"):
        return found
    for ven_id, client_id, granted in vens:
        ven = Subscriber(id="", client_id=client_id, is_bl=False, program_id=None,
                         object_operations=[], labels=frozenset(), wire_version=VERSION_31,
                         granted=granted)
        if not notifications.readable(ven, change):
            continue
        if change.object_type == "VEN":
            name = topic(change.operation, ven_id=ven_id)
        else:
            name = topic(change.operation, change.object_type, ven_id=ven_id)
        found.append((name, notifications.notification_body(ven, change)))
    return found


def publish_change(change: dict) -> int:
    """Publish one change (called off the request, after the commit); the number sent."""
    live = set(Client.objects.filter(revoked=False, role=Client.Role.VEN)
               .values_list("application__client_id", flat=True))
    rows = [(ven_id, client_id) for ven_id, client_id
            in Ven.objects.filter(client_id__in=live).values_list("id", "client_id")]
    granted = selectors.granted_labels_by_client({client_id for _, client_id in rows})
    found = messages(Change.from_dict(change),
                     [(ven_id, client_id, granted[client_id]) for ven_id, client_id in rows])
    publisher = Publisher.get()
    for name, body in found:
        publisher.publish(name, body)
    return len(found)


@shared_task(name="vtn.tasks.publish_mqtt")
def publish_mqtt(change: dict) -> int:
    """Publish one committed change on the MQTT broker (BL and per-VEN topics)."""
    return publish_change(change)


# --- the client -------------------------------------------------------------------------------

class Publisher:
    """One paho-mqtt client per process: connects in the background, reconnects on its own,
    publishes QoS 1 without retain. ``publish`` never blocks on the network."""

    _instance: Publisher | None = None
    _lock = threading.Lock()

    @classmethod
    def get(cls) -> Publisher:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def __init__(self) -> None:
        url = urlsplit(settings.VTN_MQTT_BROKER_URL)
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2,
                                  client_id=settings.VTN_MQTT_CLIENT_ID or "",
                                  protocol=paho.MQTTv311)
        self.client.max_queued_messages_set(MAX_QUEUED)
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        username = settings.VTN_MQTT_USERNAME or settings.VTN_MQTT_DYNSEC_USERNAME
        if username:
            password = (settings.VTN_MQTT_PASSWORD if settings.VTN_MQTT_USERNAME
                        else settings.VTN_MQTT_DYNSEC_PASSWORD)
            self.client.username_pw_set(username, password or None)
        if url.scheme in ("mqtts", "ssl"):
            self.client.tls_set(ca_certs=settings.VTN_MQTT_CA_BUNDLE or None)
        default_port = 8883 if url.scheme in ("mqtts", "ssl") else 1883
        self.client.connect_async(url.hostname or "127.0.0.1", url.port or default_port)
        self.client.loop_start()

    def publish(self, name: str, body: dict) -> None:
        info = self.client.publish(name, json.dumps(body, separators=(",", ":")), qos=1,
                                   retain=False)
        if info.rc not in (0, 4):  # 4: not connected yet, queued for the reconnect
            logger.warning("MQTT publish to %s not queued (rc %s)", name, info.rc)
