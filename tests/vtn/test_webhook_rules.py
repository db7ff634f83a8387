"""The pure rules behind webhook notifications: who is told, with what body, the retry
schedule, and the callback address policy (literal addresses only: no network)."""

from __future__ import annotations

import random

import pytest

from vtn import notifications
from vtn.errors import BadRequest
from vtn.notifications import Change, Subscriber
from vtn.webhooks import callback_problem, check_callback_url

V31, V301 = "3.1.0", "3.0.1"
URL = "https://receiver.example/cb"


def change(object_type: str = "EVENT", operation: str = "CREATE", *, labels=(),
           program_labels=(), program_id="p1", owner=None, bodies=None) -> Change:
    targets = [{"type": "TARGET", "values": list(labels)}] if labels else []
    body31 = {"id": "o1", "objectType": object_type}
    body301 = {"id": "o1", "objectType": object_type}
    if labels:
        body31["targets"] = list(labels)
        body301["targets"] = [{"type": "TARGET", "values": list(labels)}]
    return Change(object_type=object_type, operation=operation, object_id="o1",
                  program_id=program_id, owner=owner, labels=tuple(labels),
                  program_labels=tuple(program_labels) if object_type == "EVENT" else None,
                  targets=targets, bodies=bodies or {V31: body31, V301: body301})


def subscriber(*, is_bl=False, client_id="ven-a", granted=(), objects=("EVENT",),
               operations=("CREATE",), program_id=None, labels=(), version=V31,
               url=URL, token=None) -> Subscriber:
    return Subscriber(id=f"s-{client_id}", client_id=client_id, is_bl=is_bl,
                      program_id=program_id,
                      object_operations=[{"objects": list(objects),
                                          "operations": list(operations),
                                          "callbackUrl": url, "bearerToken": token}],
                      labels=frozenset(labels), wire_version=version,
                      granted=frozenset(granted))


def told(c: Change, *subs: Subscriber) -> list[str]:
    return [r.subscription_id for r in notifications.recipients(c, subs)]


def test_business_logic_is_told_everything_it_asked_for():
    bl = subscriber(is_bl=True, client_id="bl")
    assert told(change(labels=["g1"]), bl) == ["s-bl"]
    assert told(change("REPORT", owner="ven-z"), subscriber(is_bl=True, client_id="bl",
                                                           objects=("REPORT",))) == ["s-bl"]
    assert told(change(operation="DELETE"), bl) == []  # DELETE not asked for


def test_a_ven_is_told_only_of_events_it_could_read():
    ven = subscriber(granted=["g1"])
    assert told(change(labels=["g1", "g2"]), ven) == ["s-ven-a"]
    assert told(change(labels=["g2"]), ven) == []
    assert told(change(labels=[]), ven) == ["s-ven-a"]  # untargeted: open to every VEN
    # An event inside a program targeted elsewhere is not readable.
    assert told(change(labels=[], program_labels=["g9"]), ven) == []
    assert told(change(labels=["g1"], program_labels=["g1"]), ven) == ["s-ven-a"]


def test_owned_objects_reach_only_their_owner():
    for object_type in ("REPORT", "VEN", "RESOURCE", "SUBSCRIPTION"):
        mine = change(object_type, owner="ven-a", program_id=None)
        theirs = change(object_type, owner="ven-b", program_id=None)
        ven = subscriber(objects=(object_type,), granted=["g1"])
        assert told(mine, ven) == ["s-ven-a"], object_type
        assert told(theirs, ven) == [], object_type


def test_program_and_targets_filters():
    assert told(change(program_id="p2"), subscriber(program_id="p1")) == []
    assert told(change(program_id="p1"), subscriber(program_id="p1")) == ["s-ven-a"]
    bl = subscriber(is_bl=True, client_id="bl", labels=["g1"])
    assert told(change(labels=["g2"]), bl) == []
    assert told(change(labels=["g1"]), bl) == ["s-bl"]
    assert told(change(labels=[]), bl) == []  # a targets filter needs a matching label
    ven = subscriber(granted=["g1", "g2"], labels=["g2"])
    assert told(change(labels=["g1"]), ven) == []
    assert told(change(labels=["g2"]), ven) == ["s-ven-a"]
    # Objects of no program pass a programID filter (3.0.1 always names one).
    assert told(change("VEN", owner="ven-a", program_id=None),
                subscriber(objects=("VEN",), program_id="p1")) == ["s-ven-a"]


def test_bodies_follow_the_subscription_version_and_hide_other_targets():
    c = change(labels=["g1", "secret"])
    [r31] = notifications.recipients(c, [subscriber(granted=["g1"], token="t")])
    assert r31.body == {"objectType": "EVENT", "operation": "CREATE",
                        "object": {"id": "o1", "objectType": "EVENT", "targets": ["g1"]}}
    assert r31.bearer_token == "t"
    [r301] = notifications.recipients(
        change(operation="UPDATE", labels=["g1", "secret"]),
        [subscriber(granted=["g1"], operations=("UPDATE",), version=V301)])
    assert r301.body["operation"] == "PUT"
    assert r301.body["object"]["targets"] == [{"type": "TARGET", "values": ["g1"]}]
    [bl] = notifications.recipients(c, [subscriber(is_bl=True, client_id="bl")])
    assert bl.body["object"]["targets"] == ["g1", "secret"]
    # A body the version cannot express is not sent.
    inexpressible = change(bodies={V31: {"id": "o1"}, V301: None})
    assert told(inexpressible, subscriber(version=V301)) == []


def test_one_notification_per_callback_url():
    sub = Subscriber(id="s", client_id="bl", is_bl=True, program_id=None, object_operations=[
        {"objects": ["EVENT"], "operations": ["CREATE"], "callbackUrl": URL},
        {"objects": ["EVENT", "PROGRAM"], "operations": ["CREATE"], "callbackUrl": URL},
        {"objects": ["EVENT"], "operations": ["CREATE"], "callbackUrl": URL + "2"},
    ], labels=frozenset(), wire_version=V31)
    assert [r.callback_url for r in notifications.recipients(change(), [sub])] == [URL, URL + "2"]


def test_the_retry_schedule_has_jitter_and_an_end():
    delays = [30.0, 120.0, 480.0, 1200.0]
    rand = random.Random(7)
    for attempt, base in enumerate(delays, start=1):
        for _ in range(50):
            assert 0.8 * base <= notifications.retry_delay(attempt, delays, rand) <= 1.2 * base
    assert notifications.retry_delay(len(delays) + 1, delays) is None
    assert len({notifications.retry_delay(1, delays, rand) for _ in range(10)}) > 1


@pytest.mark.parametrize("url", [
    "http://receiver.example/cb", "ftp://receiver.example/cb", "https:///cb", "not a url",
    "https://user:pw@receiver.example/cb", "https://127.0.0.1/cb", "https://10.1.2.3/cb",
    "https://192.168.0.5/cb", "https://169.254.169.254/latest", "https://[::1]/cb",
    "https://[::ffff:127.0.0.1]/cb", "https://0.0.0.0/cb", "https://224.0.0.1/cb",
    "https://[fe80::1]/cb", "https://receiver.example:99999/cb",
])
def test_callback_urls_the_vtn_will_not_call(settings, url):
    settings.VTN_CALLBACK_ALLOW_PRIVATE = False
    assert callback_problem(url, resolve=False) is not None
    with pytest.raises(BadRequest):
        check_callback_url(url, resolve=False)


def test_public_https_callbacks_and_the_private_address_setting(settings):
    settings.VTN_CALLBACK_ALLOW_PRIVATE = False
    assert callback_problem("https://93.184.215.14/cb", resolve=False) is None
    assert callback_problem("https://receiver.example/cb?x=1", resolve=False) is None
    settings.VTN_CALLBACK_ALLOW_PRIVATE = True
    assert callback_problem("https://127.0.0.1:8443/cb", resolve=False) is None
    # HTTPS stays required whatever the setting.
    assert callback_problem("http://127.0.0.1:8443/cb", resolve=False) is not None


def test_a_name_resolving_to_loopback_is_refused(settings, tmp_path):
    settings.VTN_CALLBACK_ALLOW_PRIVATE = False
    assert callback_problem("https://localhost/cb", resolve=False) is not None
    # A name that looks public but resolves into the VTN's network: find one in this
    # machine's resolver (its own host name usually maps to a loopback address).
    import ipaddress
    import socket

    from vtn.callbacks import internal

    name = socket.gethostname()
    addresses = {info[4][0] for info in socket.getaddrinfo(name, 443)}
    url = f"https://{name}/cb"
    assert callback_problem(url, resolve=False) is None
    if any(internal(ipaddress.ip_address(a.split("%")[0])) for a in addresses):
        assert "resolves to" in callback_problem(url, resolve=True)
    else:
        assert callback_problem(url, resolve=True) is None


def test_business_logic_narrowed_to_operators_is_told_only_of_their_objects():
    from dataclasses import replace

    def owned(*owners: str) -> Change:
        return replace(change(), owners=owners)

    enwl = replace(subscriber(is_bl=True, client_id="enwl"), reach=frozenset({"ENWL"}))
    nobody = replace(subscriber(is_bl=True, client_id="nobody"), reach=frozenset())
    everyone = subscriber(is_bl=True, client_id="national")  # reach None: every operator
    assert told(owned("ENWL"), enwl, nobody, everyone) == ["s-enwl", "s-national"]
    assert told(owned("SPEN-D"), enwl, nobody, everyone) == ["s-national"]
    assert told(owned("ENWL", "SPEN-D"), enwl, everyone) == ["s-national"]
    assert told(owned(), enwl, nobody, everyone) == ["s-enwl", "s-national"]  # unowned
    assert Change.from_dict(owned("ENWL").as_dict()).owners == ("ENWL",)
