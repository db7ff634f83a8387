"""Broker access control: the VTN provisions Mosquitto's dynamic security plugin.

With ``VTN_MQTT_AUTHENTICATION=OAUTH2_BEARER_TOKEN`` and the plugin's admin credentials
(``VTN_MQTT_DYNSEC_USERNAME``/``PASSWORD``), a client connects to the broker with its
OpenADR clientID as username and its current access token as password (the document's
``{"method": "OAUTH2_BEARER_TOKEN", "username": "{clientID}"}``):

* when a token is issued, the client's broker account gets that token as its password
  and one role: business logic reaching every operator (vtn.ownership) may subscribe to
  ``{prefix}/#``, business logic narrowed to some operators to nothing; a VEN only to
  ``{prefix}/vens/{venID}/#`` of its own ven(s), nothing else (the plugin denies every
  other subscription);
* when a client is revoked or its secret rotated, its broker account is deleted, which
  also disconnects it;
* the VTN's own account (the admin) gets a role allowing it to publish under the prefix.

With ``VTN_MQTT_AUTHENTICATION=CERTIFICATE`` VENs connect to a TLS listener that requires
a client certificate from the operator's CA and takes the certificate's subject as the
username (``use_subject_as_username``; the CN alone is the site name, which every FSP's
``main`` site shares). The accounts are then keyed on the subjects (RFC 4514, as
``ClientCertificate.subject`` holds them) of the client's bound, unrevoked certificates,
have no password (so nobody logs in with one), and get the same roles; a revoked
certificate's account is deleted.

Commands go over MQTT to ``$CONTROL/dynamic-security/v1`` from the background pool,
never in the request: a token is issued even while the broker is down (the client then
connects once provisioning has caught up with its next token).
"""

from __future__ import annotations

import json
import logging
import queue
import secrets
from urllib.parse import urlsplit

import paho.mqtt.client as paho
from django.conf import settings
from django.db import transaction

from vtn import background, ownership
from vtn.models import Client, ClientCertificate, IssuedCertificate, Ven

logger = logging.getLogger("vtn.mqtt")

CONTROL = "$CONTROL/dynamic-security/v1"
BL_ROLE = "openadr3-bl"
BL_SCOPED_ROLE = "openadr3-bl-scoped"
PUBLISHER_ROLE = "openadr3-publisher"
TIMEOUT = 5.0


PROVISIONED_METHODS = ("OAUTH2_BEARER_TOKEN", "CERTIFICATE")


def enabled() -> bool:
    return bool(settings.VTN_MQTT_BROKER_URL and settings.VTN_MQTT_DYNSEC_USERNAME
                and settings.VTN_MQTT_AUTHENTICATION in PROVISIONED_METHODS)


def by_certificate() -> bool:
    return settings.VTN_MQTT_AUTHENTICATION == "CERTIFICATE"


def broker_usernames(client_id: str) -> list[str]:
    """The broker usernames of a client: its clientID, or (CERTIFICATE) the subjects of
    its bound certificates that are not revoked."""
    if not by_certificate():
        return [client_id]
    revoked = IssuedCertificate.objects.filter(revoked_at__isnull=False).values("sha256")
    return sorted(set(ClientCertificate.objects.filter(
        client__application__client_id=client_id).exclude(sha256__in=revoked)
        .values_list("subject", flat=True)))


def _ven_role(client_id: str) -> str:
    return f"openadr3-ven-{client_id}"


def run(commands: list[dict], *, may_disconnect: bool = False) -> list[dict]:
    """Send ``commands`` to the plugin as its admin; the plugin's responses, in order.

    The connection never reconnects: a reconnect would send the commands again, and a
    stale batch (an older token as password) could then land after a newer one. With
    ``may_disconnect`` the batch may end by changing the admin's own roles, which makes
    the broker close the admin's connections before it answers; that counts as done.
    """
    url = urlsplit(settings.VTN_MQTT_BROKER_URL)
    tls = url.scheme in ("mqtts", "ssl")
    client = paho.Client(paho.CallbackAPIVersion.VERSION2,
                         client_id=f"vtn-dynsec-{secrets.token_hex(4)}",
                         reconnect_on_failure=False)
    client.username_pw_set(settings.VTN_MQTT_DYNSEC_USERNAME, settings.VTN_MQTT_DYNSEC_PASSWORD)
    if tls:
        client.tls_set(ca_certs=settings.VTN_MQTT_CA_BUNDLE or None)
    answers: queue.Queue = queue.Queue()
    subscribed: queue.Queue = queue.Queue()
    client.on_message = lambda c, u, m: answers.put(json.loads(m.payload))
    client.on_subscribe = lambda c, u, mid, codes, props: subscribed.put(codes)
    client.on_disconnect = lambda c, u, flags, code, props: answers.put(None)
    client.connect(url.hostname or "127.0.0.1", url.port or (8883 if tls else 1883))
    client.loop_start()
    try:
        client.subscribe(f"{CONTROL}/response", qos=1)
        subscribed.get(timeout=TIMEOUT)
        client.publish(CONTROL, json.dumps({"commands": commands}), qos=1)
        answer = answers.get(timeout=TIMEOUT)
        if answer is None:
            if may_disconnect:
                return []
            raise ConnectionError("the broker closed the dynamic-security connection")
        return answer.get("responses", [])
    finally:
        client.loop_stop()
        client.disconnect()


def _ensure_role(name: str, acls: list[dict]) -> list[dict]:
    """Create the role, or (if it exists) set its ACLs: two commands, one succeeds."""
    return [{"command": "createRole", "rolename": name, "acls": acls},
            {"command": "modifyRole", "rolename": name, "acls": acls}]


def _ensure_client(username: str, password: str | None, role: str) -> list[dict]:
    """Create the account or update it; ``password`` None: certificate only, no password."""
    account = {"username": username, "roles": [{"rolename": role}]}
    if password is not None:
        account["password"] = password
    return [{"command": "createClient"} | account, {"command": "modifyClient"} | account]


def _subscribe(pattern: str) -> dict:
    return {"acltype": "subscribePattern", "topic": pattern, "priority": 0, "allow": True}


def provision_token(client_id: str, token: str) -> None:
    """Give ``client_id``'s broker account this token as password and its one role."""
    client = Client.objects.filter(application__client_id=client_id, revoked=False).first()
    if client is None:
        return
    prefix = settings.VTN_MQTT_TOPIC_PREFIX
    # The VTN's own publisher role first, in a batch of its own: giving the admin a role
    # it lacked makes the broker close the admin's connections (this one included).
    run(_ensure_role(PUBLISHER_ROLE, [
        {"acltype": "publishClientSend", "topic": f"{prefix}/#", "priority": 0,
         "allow": True}]) + [{"command": "addClientRole", "username":
                              settings.VTN_MQTT_DYNSEC_USERNAME, "rolename": PUBLISHER_ROLE}],
        may_disconnect=True)
    commands: list[dict] = []
    if client.role == Client.Role.BL and ownership.reach_of_client(client_id) is None:
        role = BL_ROLE
        commands += _ensure_role(role, [_subscribe(f"{prefix}/#")])
    elif client.role == Client.Role.BL:
        # The business-logic topics carry every operator's changes: a client narrowed to
        # some operators (vtn.ownership) subscribes to nothing and uses webhooks instead.
        role = BL_SCOPED_ROLE
        commands += _ensure_role(role, [])
    else:
        role = _ven_role(client_id)
        ven_ids = Ven.objects.filter(client_id=client_id).values_list("id", flat=True)
        commands += _ensure_role(role, [_subscribe(f"{prefix}/vens/{ven_id}/#")
                                        for ven_id in ven_ids])
    if by_certificate():
        for subject in broker_usernames(client_id):
            commands += _ensure_client(subject, None, role)
    else:
        commands += _ensure_client(client_id, token, role)
    run(commands)


def remove_client(client_id: str, usernames: list[str] | None = None) -> None:
    """Delete the client's broker accounts (which disconnects them) and its VEN role."""
    names = broker_usernames(client_id) if usernames is None else usernames
    run([{"command": "deleteClient", "username": name} for name in names]
        + [{"command": "deleteRole", "rolename": _ven_role(client_id)}])


def remove_account(username: str) -> None:
    """Delete one broker account (a revoked certificate's subject); disconnects it."""
    run([{"command": "deleteClient", "username": username}])


def _background(function, *args) -> None:
    transaction.on_commit(lambda: background.submit(function, *args))


def token_issued(client_id: str, token: str) -> None:
    """After the token's transaction commits, provision it on the broker."""
    if enabled():
        _background(provision_token, client_id, token)


def client_withdrawn(client_id: str) -> None:
    """A client revoked or rotated: after commit, its broker account goes."""
    if enabled():
        _background(remove_client, client_id, broker_usernames(client_id))


def certificate_revoked(subject: str) -> None:
    """With CERTIFICATE, a revoked certificate's account goes after commit (the broker
    still accepts the certificate itself until it loads the new CRL)."""
    if enabled() and by_certificate():
        _background(remove_account, subject)
