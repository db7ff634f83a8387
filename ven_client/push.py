"""Wake-ups over MQTT (OpenADR 3.1): a notification makes the agent poll at once.

Installed with the optional extra ``ven-client[mqtt]`` (paho-mqtt, imported only here and
only when the VTN offers MQTT, so the minimal install does without it).

A message is never acted on: it only sets the agent's wake-up event, the agent then polls
the VTN as usual and the signed REST answer stays the source of truth. The VTN's
``/notifiers`` says where the broker is and how to authenticate; the topics are the ones
the VTN gives for this ven (``/notifiers/mqtt/topics/vens/{venID}/events`` and
``/programs``). When the broker cannot be reached the agent keeps polling at its normal
interval, and ``ven-client status`` says so (``push``).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ven_client import logs

if TYPE_CHECKING:
    from ven_client.agent import Agent

OFF = "off"


class Push:
    """One MQTT subscriber for one agent. Callbacks run on paho's thread: they only set
    ``wakeup`` and ``state`` (the agent's thread owns the store and the transport)."""

    def __init__(self, agent: Agent, wakeup: threading.Event) -> None:
        self.agent = agent
        self.wakeup = wakeup
        self.state = OFF
        self.client: Any = None  # a paho client (the optional extra)
        self.username = ""

    def start(self) -> None:
        """Discover the binding and connect in the background; never raises."""
        try:
            self._start()
        except Exception as exc:  # push is an optimisation: polling carries on regardless
            self.state = f"unavailable: {type(exc).__name__}: {exc}"[:200]
        logs.log("push", state=self.state)

    def _start(self) -> None:
        agent = self.agent
        if agent.v301:
            self.state = "not offered (OpenADR 3.0.1)"
            return
        binding = agent._get_json("notifiers").get("MQTT")
        if not binding:
            self.state = "not offered by the VTN"
            return
        try:
            import paho.mqtt.client as mqtt
        except ImportError:
            self.state = "unavailable: install ven-client[mqtt]"
            return
        if agent.ven is None:  # started after discovery, so not expected
            self.state = "unavailable: the VEN is not known yet"
            return
        ven_id = agent.ven["id"]
        topics = [agent._get_json(f"notifiers/mqtt/topics/vens/{ven_id}/{kind}")["topics"]["ALL"]
                  for kind in ("events", "programs")]
        auth = binding.get("authentication") or {}
        method = auth.get("method")
        url = urlsplit(binding["URIS"][0])
        tls = url.scheme in ("mqtts", "ssl")
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        if method == "OAUTH2_BEARER_TOKEN":
            self.username = str(auth.get("username", "{clientID}")).replace(
                "{clientID}", agent.config.client_id)
            client.username_pw_set(self.username, agent.transport.token())
        elif method == "CERTIFICATE":
            # The broker takes the site's TLS client certificate (the one the agent
            # already presents to the VTN) as its identity; no username or password.
            if not (tls and agent.config.client_cert and agent.config.client_key):
                self.state = "unavailable: the broker wants a client certificate over TLS"
                return
        elif method != "ANONYMOUS":
            self.state = f"unavailable: authentication {method!r} not supported"
            return
        if tls:
            config = agent.config
            client.tls_set(ca_certs=config.ca_bundle or None,
                           certfile=config.client_cert or None, keyfile=config.client_key or None)
        client.reconnect_delay_set(min_delay=1, max_delay=30)

        def on_connect(c: Any, userdata: object, flags: object, reason: Any,
                       properties: object) -> None:
            if reason.is_failure:
                self.state = f"broker refused: {reason}"
                return
            self.state = "connected"
            for name in topics:
                c.subscribe(name, qos=1)
            self.wakeup.set()  # anything missed while away: poll now

        def on_disconnect(c: Any, userdata: object, flags: object, reason: object,
                          properties: object) -> None:
            self.state = "broker unreachable; polling at the normal interval"

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        client.on_connect_fail = lambda c, userdata: on_disconnect(c, userdata, None, None, None)
        client.on_message = lambda c, userdata, message: self.wakeup.set()
        self.state = "connecting"
        client.connect_async(url.hostname or "", url.port or (8883 if tls else 1883))
        client.loop_start()
        self.client = client

    def refresh(self) -> None:
        """Each cycle, on the agent's thread: the current token is the broker password
        for the next (re)connection."""
        if self.client is not None and self.username:
            self.client.username_pw_set(self.username, self.agent.transport.token())

    def stop(self) -> None:
        if self.client is not None:
            self.client.loop_stop()
            self.client.disconnect()
            self.client = None
