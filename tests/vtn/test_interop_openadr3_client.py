"""Interoperability with the external ``openadr3-client`` library (ElaadNL, PyPI).

The library is a third-party OpenADR 3 client for business logic and VENs; it needs
Python 3.12, so it runs in its own virtualenv (created once per machine and kept in the
test cache, ``$VTN_TEST_CACHE_DIR`` or ``~/.cache/gb-flex-vtn-tests``, under
``interop-venv/openadr3-client-<version>``, shared by every clone) and drives
``tests/interop/flow.py`` against the real VTN over HTTPS (the ``vtn_server`` fixture),
for 3.1.0 and for 3.0.1.

What this proves, per version: a client written by someone else, from the documents
alone, can fetch tokens (HTTP Basic client authentication; 3.1 discovers the token URL
through /auth/server), create programs and events, register a ven and a resource as a
VEN, have BL grant the ven a target, read the targeted event, report on it and
subscribe, and BL can read the report back. Object privacy holds through the library:
a second VEN sees neither the targeted program and event nor the first VEN's objects.
Plain HTTPS requests then cross-check what the library reported.

And for the GB dispatch profile: after the operator issues dispatches through the
dispatch API, an FSP's VEN that is the library (knowing nothing of the profile) reads
the program and the events with its own models, setpoints, timing, instruction and
units included, in both versions; another FSP's VEN, also the library, sees neither.

And over MQTT (3.1): a VEN written with the library's notifier interface and its
``MQTTClient`` (the ``mqtt`` extra) reads /notifiers, discovers its ven's event topics,
subscribes on our Mosquitto and receives the notification of its own event, only with its
own label, and nothing of another VEN's event (``tests/interop/mqtt_flow.py``; what the
library cannot do yet is listed there under AUTHENTICATION_QUIRK).

Python 3.12 is required: without it the tests are skipped and named in the summary at the
end of the run (``VTN_TEST_REQUIRE_ALL=1``, set by CI, makes that a failure). Set
INTEROP_PYTHON to use a specific interpreter.
"""

from __future__ import annotations

import fcntl
import glob
import json
import os
import secrets
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.fixtures.cache import CACHE_DIR
from tests.fixtures.requirements import need_python, starts_processes

pytestmark = [pytest.mark.interop, pytest.mark.slow]

CLIENT_PACKAGE = "openadr3-client"
CLIENT_VERSION = "2.4.2"
ROOT = Path(__file__).resolve().parents[2]
FLOW = ROOT / "tests" / "interop" / "flow.py"
MQTT_FLOW = ROOT / "tests" / "interop" / "mqtt_flow.py"
VENV_ROOT = CACHE_DIR / "interop-venv"
VENV = VENV_ROOT / f"{CLIENT_PACKAGE}-{CLIENT_VERSION}"
READY = VENV / ".installed"
# The mqtt extra brings paho-mqtt for the library's MQTT client (tests/interop/mqtt_flow.py).
REQUIREMENT = f"{CLIENT_PACKAGE}[mqtt]=={CLIENT_VERSION}"
FLOW_TIMEOUT = 300
VERSIONS = {"OADR_310": "3.1.0", "OADR_301": "3.0.1"}


def find_python312() -> str:
    """INTEROP_PYTHON, else a python3.12 on PATH, else one installed by pyenv; else skip."""
    return need_python((3, 12), [
        os.environ.get("INTEROP_PYTHON"), shutil.which("python3.12"),
        *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python3.12")))])


def _run(args: list[str], timeout: int = 600) -> None:
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n"
                    f"{result.stderr}", pytrace=False)


@pytest.fixture(scope="session")
def interop_python() -> str:
    """The python of a virtualenv with the pinned openadr3-client (built once, cached)."""
    python = VENV / "bin" / "python"
    VENV_ROOT.mkdir(parents=True, exist_ok=True)
    with (VENV_ROOT / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel sessions build it once
        if READY.exists() and python.exists() and READY.read_text().strip() == REQUIREMENT:
            return str(python)
        interpreter = find_python312()
        shutil.rmtree(VENV, ignore_errors=True)
        _run([interpreter, "-m", "venv", str(VENV)])
        _run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
              REQUIREMENT])
        READY.write_text(f"{REQUIREMENT}\n")
    return str(python)


def _run_flow(python: str, vtn_server, version: str, params: dict, script: Path = FLOW
              ) -> dict:
    env = {key: value for key, value in os.environ.items()
           if key not in {"REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "DJANGO_SETTINGS_MODULE",
                          "DATABASE_URL", "PYTHONPATH", "VIRTUAL_ENV"}}
    env.update(params)
    result = subprocess.run([python, str(script)], env=env, capture_output=True, text=True,
                            timeout=FLOW_TIMEOUT, cwd=ROOT)
    lines = result.stdout.strip().splitlines()
    try:
        output = json.loads(lines[-1]) if lines else {}
    except ValueError:
        output = {}
    if result.returncode != 0 or "error" in output or not output:
        server_log = vtn_server.output()[-6000:]
        pytest.fail(f"openadr3-client flow for {version} failed ({result.returncode}):\n"
                    f"stdout:\n{result.stdout}\nstderr:\n{result.stderr[-6000:]}\n"
                    f"server log (tail):\n{server_log}", pytrace=False)
    return output


@pytest.mark.parametrize("version", VERSIONS.values(), ids=VERSIONS.keys())
def test_openadr3_client_flow(interop_python, vtn_server, version):
    tag = secrets.token_hex(3)
    bl = vtn_server.create_client("bl", f"interop-bl-{tag}")
    ven = vtn_server.create_client("ven", f"interop-ven-{tag}")
    ven2 = vtn_server.create_client("ven", f"interop-ven2-{tag}")
    target = f"interop-group-{tag}"
    ven_name, ven2_name = f"interop-ven-{tag}", f"interop-ven2-{tag}"
    params = {
        "OADR_VERSION": version,
        "VTN_BASE": vtn_server.url(version).rstrip("/"),
        # 3.1 clients discover the token endpoint through /auth/server; 3.0.1 has no
        # discovery, so the library needs the URL.
        "TOKEN_URL": "" if version == "3.1.0" else vtn_server.url(version, "auth/token"),
        "CA_BUNDLE": vtn_server.ca_bundle,
        "BL_ID": bl["client_id"], "BL_SECRET": bl["client_secret"],
        "VEN_ID": ven["client_id"], "VEN_SECRET": ven["client_secret"],
        "VEN2_ID": ven2["client_id"], "VEN2_SECRET": ven2["client_secret"],
        "VEN_NAME": ven_name, "VEN2_NAME": ven2_name, "TARGET": target,
    }
    result = _run_flow(interop_python, vtn_server, version, params)
    assert result["version"] == version

    # --- what the library saw -------------------------------------------------------------
    program_id, event_id, ven_id = result["program_id"], result["event_id"], result["ven_id"]
    assert result["granted_targets"] == [target]
    assert event_id not in result["ven_events_before_grant"]
    assert program_id in result["ven_programs"]
    assert result["ven_events"] == [event_id]
    assert result["ven_event_read"] == event_id
    assert result["resource_ven_id"] == ven_id
    assert result["report_event_id"] == event_id
    assert result["report_id"] in result["bl_reports"]
    assert result["bl_report_resources"] == ["interop-resource"]
    if version == "3.1.0":
        assert result["ven_client_id"] == ven["client_id"]
        assert result["report_client_id"] == ven["client_id"]
    else:
        assert result["report_program_id"] == program_id
    # The second VEN: none of the targeted or foreign objects, only its own ven.
    assert program_id not in result["ven2_programs"]
    assert event_id not in result["ven2_events"]
    assert result["ven2_vens"] == [result["ven2_ven_id"]]
    assert ven_id not in result["ven2_vens"]
    assert result["resource_id"] not in result["ven2_resources"]
    assert result["report_id"] not in result["ven2_reports"]
    assert result["subscription_id"] not in result["ven2_subscriptions"]
    assert result["ven2_get_event_status"] == 404
    assert result["ven2_get_ven_status"] == 404
    assert result["ven2_get_report_status"] == 404
    if version == "3.0.1":
        assert result["ven2_get_resource_status"] == 404

    # --- cross-check with plain HTTPS, in both versions -----------------------------------
    other = "3.0.1" if version == "3.1.0" else "3.1.0"
    with vtn_server.session(vtn_server.token(bl, version)) as bl_http, \
            vtn_server.session(vtn_server.token(ven, version)) as ven_http, \
            vtn_server.session(vtn_server.token(ven2, version)) as ven2_http:
        event = bl_http.get(vtn_server.url(version, f"events/{event_id}")).json()
        assert event["programID"] == program_id
        assert event["eventName"] == "interop-event"
        assert len(event["intervals"]) == 2

        vens = ven_http.get(vtn_server.url(version, "vens")).json()
        assert [v["id"] for v in vens] == [ven_id]
        assert vens[0]["venName"] == ven_name

        report = bl_http.get(vtn_server.url(version, f"reports/{result['report_id']}"))
        assert report.status_code == 200, report.text
        assert report.json()["eventID"] == event_id
        assert report.json()["clientName"] == ven_name

        subscriptions = ven_http.get(vtn_server.url(version, "subscriptions")).json()
        assert [s["id"] for s in subscriptions] == [result["subscription_id"]]
        assert subscriptions[0]["programID"] == program_id

        # Objects created through one version are the same objects in the other.
        bl_ven = bl_http.get(vtn_server.url(other, f"vens/{ven_id}"))
        assert bl_ven.status_code == 200, bl_ven.text
        assert bl_ven.json()["venName"] == ven_name
        other_events = ven_http.get(vtn_server.url(other, "events"),
                                    params={"programID": program_id}).json()
        assert [e["id"] for e in other_events] == [event_id]
        if other == "3.1.0":
            assert bl_ven.json()["clientID"] == ven["client_id"]
            assert target in bl_ven.json()["targets"]

        # Privacy over plain HTTPS too.
        for path in (f"events/{event_id}", f"programs/{program_id}", f"vens/{ven_id}",
                     f"reports/{result['report_id']}",
                     f"subscriptions/{result['subscription_id']}"):
            response = ven2_http.get(vtn_server.url(version, path))
            assert response.status_code == 404, (path, response.status_code, response.text)


# --- a GB dispatch read through the library ------------------------------------------------------

def _z(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def gb_dispatches(vtn_server) -> dict:
    """Two FSPs onboarded at NGED-WM; the operator issues, through the dispatch API, a
    DYNAMIC dispatch (delta setpoints 250 then 100 kW) of the first FSP's bat1 and an
    MW_DISPATCH (absolute 1500 kW) of its wt1. The second FSP owns only pv1."""
    fsp, other = vtn_server.unique("oadr-fsp"), vtn_server.unique("oadr-other")
    printed = vtn_server.manage_many(
        ["fsp", "onboard", "--operator", "NGED-WM", "--fsp", fsp, "--unit", "bat1:500:export",
         "--unit", "wt1:2000:export"],
        ["fsp", "onboard", "--operator", "NGED-WM", "--fsp", other, "--unit", "pv1:900:export"],
        *[["fsp", "contract", "--operator", "NGED-WM", "--fsp", fsp, "--id", f"{fsp}-{contract}",
           "--product", product, "--unit", unit]
          for contract, product, unit in (("dyn", "DYNAMIC", "bat1"),
                                          ("mw", "MW_DISPATCH", "wt1"))])
    mine, theirs = json.loads(printed[0]), json.loads(printed[1])
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=2)
    issued = {}
    with vtn_server.session(vtn_server.token(
            vtn_server.create_client("bl", "oadr-dno"))) as operator:
        for name, body in (
                ("relative", {"unit": f"{fsp}/bat1", "product": "DYNAMIC",
                              "reference": f"{fsp}-dyn-1", "serviceStart": _z(start),
                              "serviceEnd": _z(start + timedelta(hours=2)),
                              "serviceTimings": [
                                  {"setpointTime": _z(start), "volume": 250},
                                  {"setpointTime": _z(start + timedelta(hours=1)),
                                   "volume": 100}]}),
                ("absolute", {"unit": f"{fsp}/wt1", "product": "MW_DISPATCH",
                              "reference": f"{fsp}-mw-1", "serviceStart": _z(start),
                              "serviceEnd": _z(start + timedelta(minutes=30)),
                              "serviceTimings": [{"setpointTime": _z(start), "volume": 1500,
                                                  "setpointType": "absolute"}]})):
            response = operator.post(f"{vtn_server.base_url}/dispatch/api/v1/dispatches",
                                     json=body, timeout=30)
            assert response.status_code == 201, response.text
            issued[name] = response.json()
        # What the VTN published, read as the operator over plain HTTPS.
        events = {}
        for name, dispatch in issued.items():
            event = operator.get(vtn_server.url("3.1.0", f"events/{dispatch['eventID']}"),
                                 timeout=30)
            assert event.status_code == 200, event.text
            events[name] = event.json()
    return {"fsp": fsp, "mine": mine, "theirs": theirs, "start": start,
            "dispatches": issued, "events": events}


@pytest.mark.parametrize("version", VERSIONS.values(), ids=VERSIONS.keys())
def test_openadr3_client_reads_a_gb_dispatch(interop_python, vtn_server, gb_dispatches,
                                             version):
    """The FSP's VEN is openadr3-client, knowing nothing of the profile: with its own
    auth and models it reads the program and both dispatch events (setpoints, timing,
    instruction, units); the other FSP's VEN, also the library, sees neither event."""
    mine, theirs = gb_dispatches["mine"], gb_dispatches["theirs"]
    relative = gb_dispatches["dispatches"]["relative"]
    params = {
        "FLOW": "dispatch",
        "OADR_VERSION": version,
        "VTN_BASE": vtn_server.url(version).rstrip("/"),
        "TOKEN_URL": "" if version == "3.1.0" else vtn_server.url(version, "auth/token"),
        "CA_BUNDLE": vtn_server.ca_bundle,
        "VEN_ID": mine["client_id"], "VEN_SECRET": mine["client_secret"],
        "VEN2_ID": theirs["client_id"], "VEN2_SECRET": theirs["client_secret"],
        "EVENT_ID": relative["eventID"],
    }
    result = _run_flow(interop_python, vtn_server, version, params)
    assert (result["version"], result["flow"]) == (version, "dispatch")

    fsp, start = gb_dispatches["fsp"], gb_dispatches["start"]
    published = gb_dispatches["events"]
    events = {event["id"]: event for event in result["ven_events"]}
    relative_event = events[relative["eventID"]]
    absolute_event = events[gb_dispatches["dispatches"]["absolute"]["eventID"]]
    assert result["ven_event_read"] == relative_event
    assert relative_event["class"] == "ExistingEvent"

    # The programs: the operator's product programs, as the library parsed them.
    programs = {p["id"]: p["program_name"] for p in result["ven_programs"]}
    assert programs[relative_event["program_id"]] == "GB-NGED-WM-DYNAMIC"
    assert programs[absolute_event["program_id"]] == "GB-NGED-WM-MW_DISPATCH"
    assert relative_event["program_id"] == published["relative"]["programID"]

    # Names, targets and the whole service period.
    assert relative_event["event_name"] == f"NGED-WM/{fsp}-dyn-1"
    label = f"unit:NGED-WM:{fsp}:bat1"
    assert relative_event["targets"] == (
        [label] if version == "3.1.0" else [{"type": "TARGET", "values": [label]}])
    assert relative_event["interval_period"] == {
        "start": start.isoformat(), "duration_seconds": 7200.0}

    # Each interval: its own start and duration, the setpoint in kW, the instruction.
    def payloads(interval: dict) -> dict:
        assert {p["type_class"] for p in interval["payloads"]} == {"EventPayloadType"}
        return {p["type"]: p["values"] for p in interval["payloads"]}

    assert [(i["id"], i["interval_period"]) for i in relative_event["intervals"]] == [
        (0, {"start": start.isoformat(), "duration_seconds": 3600.0}),
        (1, {"start": (start + timedelta(hours=1)).isoformat(), "duration_seconds": 3600.0})]
    first, second = (payloads(i) for i in relative_event["intervals"])
    assert first["DISPATCH_SETPOINT_RELATIVE"] == [250]
    assert second["DISPATCH_SETPOINT_RELATIVE"] == [100]
    assert first["DISPATCH_INSTRUCTION"] == second["DISPATCH_INSTRUCTION"] == ["RUN"]
    assert "DISPATCH_SETPOINT" not in first
    assert {"payload_type": "DISPATCH_SETPOINT_RELATIVE", "units": "KW", "currency": None,
            "class": "EventPayloadDescriptor"} in relative_event["payload_descriptors"]

    (only,) = absolute_event["intervals"]
    assert only["interval_period"] == {"start": start.isoformat(), "duration_seconds": 1800.0}
    absolute = payloads(only)
    assert absolute["DISPATCH_SETPOINT"] == [1500]
    assert absolute["DISPATCH_INSTRUCTION"] == ["RUN"]
    assert [(d["payload_type"], d["units"]) for d in absolute_event["payload_descriptors"]
            if d["payload_type"].startswith("DISPATCH")] == [("DISPATCH_SETPOINT", "KW")]

    # The library read exactly what the VTN published (the payloads, in order).
    assert [[p["type"] for p in i["payloads"]] for i in relative_event["intervals"]] == [
        [p["type"] for p in i["payloads"]] for i in published["relative"]["intervals"]]

    # The other FSP's VEN sees the (untargeted) programs but neither dispatch event.
    assert relative_event["program_id"] in result["ven2_programs"]
    assert relative["eventID"] not in result["ven2_events"]
    assert absolute_event["id"] not in result["ven2_events"]
    assert result["ven2_get_event_status"] == 404


# --- MQTT (3.1): discovery and delivery to a VEN written with the library --------------------


@pytest.fixture(scope="module")
@starts_processes
def mqtt_vtn(tmp_path_factory):
    """A VTN of its own publishing to a real Mosquitto (the shipped anonymous development
    configuration, on a free port)."""
    from tests.fixtures.broker import Broker
    from tests.fixtures.server import E2EDatabase, VtnServer

    workdir = tmp_path_factory.mktemp("interop_mqtt")
    broker = Broker(workdir)
    broker.start()
    database = E2EDatabase(os.environ.get("DATABASE_URL", ""), workdir)
    server = VtnServer(workdir, database)
    server.env.pop("CELERY_BROKER_URL", None)
    server.env.update({"VTN_MQTT_BROKER_URL": f"mqtt://127.0.0.1:{broker.port}",
                       "VTN_MQTT_AUTHENTICATION": "ANONYMOUS"})
    try:
        server.prepare()
        server.start()
        yield server, broker
    finally:
        server.stop(graceful=False)
        broker.stop()
        database.drop()


def test_openadr3_client_ven_discovers_its_topics_and_gets_its_event_over_mqtt(
        interop_python, mqtt_vtn):
    server, broker = mqtt_vtn
    tag = secrets.token_hex(3)
    bl = server.create_client("bl", f"interop-mqtt-bl-{tag}")
    ven = server.create_client("ven", f"interop-mqtt-ven-{tag}", ven=f"interop-mqtt-ven-{tag}")
    target, other_target = f"mqtt-group-{tag}", f"mqtt-other-{tag}"
    with server.session(server.token(bl)) as bl_http:  # BL grants the ven its label
        granted = bl_http.put(server.url("3.1.0", f"vens/{ven['ven_id']}"), json={
            "objectType": "BL_VEN_REQUEST", "venName": ven["ven_name"],
            "clientID": ven["client_id"], "targets": [target]})
        assert granted.status_code == 200, granted.text

    result = _run_flow(interop_python, server, "3.1.0", {
        "VTN_BASE": server.url("3.1.0").rstrip("/"), "CA_BUNDLE": server.ca_bundle,
        "BL_ID": bl["client_id"], "BL_SECRET": bl["client_secret"],
        "VEN_ID": ven["client_id"], "VEN_SECRET": ven["client_secret"],
        "VEN_NAME": ven["ven_name"], "TARGET": target, "OTHER_TARGET": other_target,
    }, script=MQTT_FLOW)

    # What the library parsed from /notifiers and the topic endpoint.
    assert result["webhook"] is True
    assert result["uris"] == [f"mqtt://127.0.0.1:{broker.port}"]
    # The library keeps no detail of the authentication object (AUTHENTICATION_QUIRK in
    # mqtt_flow.py), so it can only use an anonymous broker: the one this VTN advertises.
    assert result["venID"] == ven["ven_id"]
    assert result["topics"]["ALL"] == f"openadr3/vens/{ven['ven_id']}/events/+"
    assert result["granted"] == [1]
    # Delivery on the discovered topic: this VEN's event, with only its own label; never
    # the event for another VEN.
    mine = [m for m in result["messages"] if m["id"] == result["mineID"]]
    assert mine, result["messages"]
    assert mine[0]["topic"] == result["topics"]["CREATE"]
    assert mine[0]["operation"] == "CREATE" and mine[0]["objectType"] == "EVENT"
    assert mine[0]["targets"] == [target]
    assert mine[0]["afterSeconds"] < 2.0
    assert not [m for m in result["messages"] if m["id"] == result["otherID"]]
