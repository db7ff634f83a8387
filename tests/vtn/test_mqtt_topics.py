"""MQTT topic discovery in process: every /notifiers/mqtt/topics/... endpoint answers
from vtn.mqtt.topic (the publisher's function), with the document's scopes; responses
are validated against the 3.1 document by the test client."""

from __future__ import annotations

import pytest

from tests.fixtures.api import program_body
from tests.spec import VERSION_31
from vtn import mqtt
from vtn.models import Ven

pytestmark = pytest.mark.parametrize("version", [VERSION_31])
BROKER = "mqtts://broker.vtn.example:8883"


@pytest.fixture
def broker(settings):
    settings.VTN_MQTT_BROKER_URL = BROKER
    settings.VTN_MQTT_AUTHENTICATION = "ANONYMOUS"


def test_notifiers_advertise_mqtt_only_when_configured(bl, settings):
    assert bl.api.get("/notifiers").json == {"WEBHOOK": True}
    settings.VTN_MQTT_BROKER_URL = BROKER
    settings.VTN_MQTT_PUBLIC_URIS = ["mqtts://public.vtn.example"]
    assert bl.api.get("/notifiers").json == {"WEBHOOK": True, "MQTT": {
        "URIS": ["mqtts://public.vtn.example"], "serialization": "JSON",
        "authentication": {"method": "ANONYMOUS"}}}


def test_business_logic_topics_are_the_published_ones(broker, bl):
    for plural, object_type in (("programs", "PROGRAM"), ("events", "EVENT"),
                                ("reports", "REPORT"), ("subscriptions", "SUBSCRIPTION"),
                                ("vens", "VEN"), ("resources", "RESOURCE")):
        reply = bl.api.get(f"/notifiers/mqtt/topics/{plural}")
        assert reply.status == 200
        assert reply.json["topics"] == {op: mqtt.topic(op, object_type)
                                        for op in ("CREATE", "UPDATE", "DELETE", "ALL")}
    program = bl.api.post("/programs", program_body(VERSION_31)).json
    one = bl.api.get(f"/notifiers/mqtt/topics/programs/{program['id']}").json["topics"]
    assert "CREATE" not in one and one["UPDATE"] == mqtt.topic("UPDATE",
                                                                program_id=program["id"])
    events = bl.api.get(f"/notifiers/mqtt/topics/programs/{program['id']}/events").json
    assert events["topics"]["CREATE"] == mqtt.topic("CREATE", "EVENT", program_id=program["id"])
    assert bl.api.get("/notifiers/mqtt/topics/programs/nope").status == 404


def test_a_ven_discovers_only_its_own_topics(broker, ven_a, ven_b):
    mine = Ven.objects.get(ven_name="ven-a").id
    theirs = Ven.objects.get(ven_name="ven-b").id
    assert ven_a.api.get(f"/notifiers/mqtt/topics/vens/{mine}").json["topics"]["UPDATE"] \
        == mqtt.topic("UPDATE", ven_id=mine)
    for kind, object_type in (("events", "EVENT"), ("programs", "PROGRAM"),
                              ("resources", "RESOURCE")):
        reply = ven_a.api.get(f"/notifiers/mqtt/topics/vens/{mine}/{kind}")
        assert reply.json["topics"]["ALL"] == mqtt.topic("ALL", object_type, ven_id=mine)
        assert ven_a.api.get(f"/notifiers/mqtt/topics/vens/{theirs}/{kind}").status == 404
    # The business-logic topics need read_all. Where the document lists no 403 for one of
    # these operations, the refusal is a 400 whose detail says so (docs/openadr-api.md).
    for plural in ("programs", "events", "reports", "subscriptions", "vens", "resources"):
        refused = ven_a.api.get(f"/notifiers/mqtt/topics/{plural}")
        assert refused.status in (400, 403), (plural, refused)
        assert "lacks a scope" in refused.json["detail"], (plural, refused)


def test_certificate_authentication_advertises_the_brokers_ca(bl, settings, tmp_path, version):
    ca = tmp_path / "broker-ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    settings.VTN_MQTT_BROKER_URL = "mqtt://127.0.0.1:1883"
    settings.VTN_MQTT_PUBLIC_URIS = [BROKER]
    settings.VTN_MQTT_AUTHENTICATION = "CERTIFICATE"
    settings.VTN_MQTT_PUBLIC_CA_FILE = str(ca)
    # Validated against the 3.1 document by the test client: all three strings present.
    auth = bl.api.get("/notifiers").json["MQTT"]["authentication"]
    assert auth == {"method": "CERTIFICATE", "caCert": ca.read_text(), "clientCert": "",
                    "clientKey": ""}  # no certificate on this request; never a key


@pytest.mark.parametrize("method, uris, refused", [
    ("CERTIFICATE", "mqtt://broker.example:1883", True),
    ("CERTIFICATE", "mqtts://broker.example:8883", False),
    ("PASSWORD", "mqtts://broker.example:8883", True),
])
def test_settings_refuse_an_authentication_the_broker_cannot_do(method, uris, refused,
                                                                 version):
    import os
    import subprocess
    import sys

    env = dict(os.environ, DJANGO_SETTINGS_MODULE="config.settings",
               VTN_MQTT_BROKER_URL="mqtt://127.0.0.1:1883", VTN_MQTT_PUBLIC_URIS=uris,
               VTN_MQTT_AUTHENTICATION=method)
    result = subprocess.run([sys.executable, "-c", "from django.conf import settings; "
                             "settings.VTN_MQTT_AUTHENTICATION"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert (result.returncode != 0) == refused, result.stderr[-2000:]
    if refused:
        assert "ImproperlyConfigured" in result.stderr
