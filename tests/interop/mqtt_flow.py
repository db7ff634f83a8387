"""MQTT notifications to a VEN written with the external ``openadr3-client`` library.

Runs under Python 3.12 in the virtualenv of tests/vtn/test_interop_openadr3_client.py (with the
library's ``mqtt`` extra); imports nothing from this project. Parameters (environment):

    VTN_BASE          https://127.0.0.1:PORT/openadr3/3.1.0
    CA_BUNDLE         PEM of the CA that signed the VTN certificate
    BL_ID, BL_SECRET  business logic client
    VEN_ID, VEN_SECRET the VEN client, bound to the ven VEN_NAME, which BL granted TARGET
    VEN_NAME, TARGET
    OTHER_TARGET      a label of another VEN

As a 3.1 VEN, with the library only: read ``/notifiers`` (the MQTT binding), find its own
ven, discover its event topics (``/notifiers/mqtt/topics/vens/{venID}/events``), connect
the library's ``MQTTClient`` to the advertised broker and subscribe to the discovered
``ALL`` topic. BL (the library too) then creates an event for another VEN and one for this
VEN. Prints one JSON object: the binding and topics seen, and every message received
(topic, operation, object id, targets) within the wait. Exit status 1 with an ``error``
member on failure.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import time
import traceback
from datetime import UTC, datetime, timedelta
from pathlib import Path

CA_BUNDLE = os.environ["CA_BUNDLE"]
os.environ.setdefault("REQUESTS_CA_BUNDLE", CA_BUNDLE)
os.environ.setdefault("OAUTHLIB_RELAX_TOKEN_SCOPE", "1")

from openadr3_client._models.common.interval import Interval  # noqa: E402
from openadr3_client._models.common.interval_period import IntervalPeriod  # noqa: E402
from openadr3_client.bl.http_factory import BusinessLogicHttpClientFactory  # noqa: E402
from openadr3_client.oadr310._vtn.interfaces.filters import PaginationFilter  # noqa: E402
from openadr3_client.oadr310._vtn.mqtt.client import MQTTClient  # noqa: E402
from openadr3_client.oadr310.models.event.event import NewEvent  # noqa: E402
from openadr3_client.oadr310.models.event.event_payload import (  # noqa: E402
    EventPayload,
    EventPayloadType,
)
from openadr3_client.oadr310.models.program.program import NewProgram  # noqa: E402
from openadr3_client.ven.http_factory import VirtualEndNodeHttpClientFactory  # noqa: E402
from openadr3_client.version import OADRVersion  # noqa: E402

VTN_BASE = os.environ["VTN_BASE"].rstrip("/")
VEN_NAME = os.environ["VEN_NAME"]
TARGET, OTHER_TARGET = os.environ["TARGET"], os.environ["OTHER_TARGET"]
START = datetime.now(tz=UTC).replace(microsecond=0) + timedelta(hours=1)
WAIT_S = 10.0
# AUTHENTICATION_QUIRK: openadr3-client 2.4.2 types the binding's ``authentication`` as
# its abstract base model, so pydantic keeps none of its fields (method, username,
# caCert, ...) and ``MQTTClient`` configures no credentials: it connects anonymously
# whatever the VTN advertises. Its CERTIFICATE model also names the fields ca_cert,
# client_cert, client_key (no camelCase aliases) and hands them to paho as file paths,
# while the document defines them as the PEM strings; and for OAUTH2_BEARER_TOKEN it sends
# the token with no username. Only an ANONYMOUS broker works with the library as it is.
VEN_SCOPES = ["read_all", "write_reports", "write_subscriptions", "write_vens", "read_targets"]


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def event_for(bl, program_id: str, name: str, target: str):
    return bl.events.create_event(new_event=NewEvent(
        programID=program_id, event_name=name, priority=0, targets=(target,),
        interval_period=IntervalPeriod(start=START, duration=timedelta(minutes=30)),
        intervals=(Interval(id=0, payloads=(EventPayload(type=EventPayloadType.SIMPLE,
                                                         values=(1,)),)),)))


def main() -> dict:
    bl = BusinessLogicHttpClientFactory.create_http_bl_client(
        vtn_base_url=VTN_BASE, client_id=os.environ["BL_ID"],
        client_secret=os.environ["BL_SECRET"], token_url=None, scopes=None,
        verify_vtn_tls_certificate=Path(CA_BUNDLE), version=OADRVersion.OADR_310)
    ven = VirtualEndNodeHttpClientFactory.create_http_ven_client(
        vtn_base_url=VTN_BASE, client_id=os.environ["VEN_ID"],
        client_secret=os.environ["VEN_SECRET"], token_url=None, scopes=VEN_SCOPES,
        verify_vtn_tls_certificate=Path(CA_BUNDLE), version=OADRVersion.OADR_310)

    notifiers = ven.notifiers.get_notifiers()
    binding = notifiers.mqtt
    my_ven = next(v for v in ven.vens.get_vens(
        ven_name=VEN_NAME, target=None, pagination=PaginationFilter(skip=0, limit=50)))
    topics = ven.notifiers.get_event_topics_for_ven(my_ven.id).topics
    log("binding", binding, "topics", topics)

    received: queue.Queue = queue.Queue()
    subscribed: queue.Queue = queue.Queue()
    client = MQTTClient(mqtt_notifier_binding=binding)
    client.on_message = lambda c, userdata, message: received.put(
        (message.topic, json.loads(message.payload)))
    client.on_subscribe = lambda c, userdata, mid, codes, props: subscribed.put(
        [code.value for code in codes])
    uri = binding.uris[0]
    client.connect(uri.host, uri.port or 1883)
    client.loop_start()
    try:
        client.subscribe(topics.all, qos=1)
        granted = subscribed.get(timeout=WAIT_S)

        program = bl.programs.create_program(new_program=NewProgram(
            program_name=f"interop-mqtt-{TARGET}",
            interval_period=IntervalPeriod(start=START, duration=timedelta(hours=4))))
        other = event_for(bl, program.id, "for-another-ven", OTHER_TARGET)
        mine = event_for(bl, program.id, "for-this-ven", TARGET)
        started = time.monotonic()
        messages = []
        deadline = started + WAIT_S
        while time.monotonic() < deadline:
            try:
                name, body = received.get(timeout=max(0.05, deadline - time.monotonic()))
            except queue.Empty:
                break
            messages.append({"topic": name, "operation": body.get("operation"),
                             "objectType": body.get("objectType"),
                             "id": body.get("object", {}).get("id"),
                             "targets": body.get("object", {}).get("targets"),
                             "afterSeconds": round(time.monotonic() - started, 3)})
            if any(m["id"] == mine.id for m in messages):
                time.sleep(1.0)  # room for a message that should never come
                while not received.empty():
                    name, body = received.get()
                    messages.append({"topic": name, "id": body.get("object", {}).get("id")})
                break
    finally:
        client.loop_stop()
        client.disconnect()
    return {"webhook": notifiers.webhook, "uris": [str(u) for u in binding.uris],
            "authenticationParsedAs": type(binding.authentication).__name__,
            "venID": my_ven.id,
            "topics": {"ALL": topics.all, "CREATE": topics.create}, "granted": granted,
            "mineID": mine.id, "otherID": other.id, "messages": messages}


if __name__ == "__main__":
    try:
        print(json.dumps(main()))
    except Exception as exc:  # report, do not hide: the test prints this
        traceback.print_exc()
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        sys.exit(1)
