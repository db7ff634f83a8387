"""End-to-end OpenADR flow driven by the external ``openadr3-client`` library (ElaadNL).

Runs under Python 3.12 in a virtualenv holding ``openadr3-client`` (see
tests/vtn/test_interop_openadr3_client.py); it imports nothing from this project. Parameters
come from the environment:

    VTN_BASE        https://127.0.0.1:PORT/openadr3/3.1.0 (or .../3.0.1)
    OADR_VERSION    "3.1.0" or "3.0.1"
    TOKEN_URL       the token endpoint (optional for 3.1.0: discovered via /auth/server)
    CA_BUNDLE       PEM of the CA that signed the VTN certificate
    BL_ID, BL_SECRET              business logic client
    VEN_ID, VEN_SECRET            VEN client (no ven bound to it yet)
    VEN2_ID, VEN2_SECRET          a second, unrelated VEN client
    VEN_NAME, VEN2_NAME           the ven names the two VENs register
    TARGET                        the target label BL puts on the program and the event
    FLOW            "generic" (default) or "dispatch"

The "dispatch" flow (FLOW=dispatch) reads a GB dispatch the operator issued: VEN is
the VEN client of the FSP that owns the dispatch unit (already onboarded, with its ven),
VEN2 that of another FSP, EVENT_ID the dispatch's event (BL_*, VEN_NAME, VEN2_NAME and
TARGET are not used). Knowing nothing of the profile, each lists programs and events
with the library's own models, the first also reads the event by id; the output is
what the library parsed (see flow_dispatch).

Generic flow: BL creates a program and an event, both targeted at TARGET. The VEN registers
its ven and a resource; BL grants the ven TARGET; the VEN lists programs and events and
must see the event. The second VEN registers its own ven and must see neither the
program, the event nor the first VEN's objects. The VEN reports on the event and
subscribes; BL reads the report back.

Prints one JSON object on stdout (ids and what each client saw); diagnostics go to
stderr. Exit status 0 on success; on an HTTP error the JSON has an "error" member
(method, URL, status, body) and the exit status is 1.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from datetime import UTC, datetime, timedelta
from pathlib import Path

# TLS: requests reads REQUESTS_CA_BUNDLE on every request, and it wins over the
# library's verify_vtn_tls_certificate (and the OAuth token fetch gets no verify at all;
# the 3.0.1 clients ignore the argument). So the environment variable is the only way
# to trust our CA everywhere; it must be set before the first request.
CA_BUNDLE = os.environ["CA_BUNDLE"]
os.environ["REQUESTS_CA_BUNDLE"] = CA_BUNDLE
os.environ.pop("CURL_CA_BUNDLE", None)

import requests  # noqa: E402
from openadr3_client._models.common.interval import Interval  # noqa: E402
from openadr3_client._models.common.interval_period import IntervalPeriod  # noqa: E402
from openadr3_client.bl.http_factory import BusinessLogicHttpClientFactory  # noqa: E402
from openadr3_client.ven.http_factory import VirtualEndNodeHttpClientFactory  # noqa: E402
from openadr3_client.version import OADRVersion  # noqa: E402

VERSION = os.environ["OADR_VERSION"]
OADR = OADRVersion.OADR_301 if VERSION == "3.0.1" else OADRVersion.OADR_310
VTN_BASE = os.environ["VTN_BASE"].rstrip("/")
TOKEN_URL = os.environ.get("TOKEN_URL") or None
FLOW = os.environ.get("FLOW", "generic")
TARGET = os.environ.get("TARGET", "")
VEN_NAME = os.environ.get("VEN_NAME", "")
VEN2_NAME = os.environ.get("VEN2_NAME", "")
# OPERATIONS_QUIRK: openadr3-client 2.4.2 enumerates subscription operations as
# GET/POST/PUT/DELETE (HTTP verbs), while both documents (3.0.1 and 3.1.1) allow only
# READ/CREATE/UPDATE/DELETE, which the VTN enforces. DELETE is the one value both accept,
# and the library cannot parse READ/CREATE/UPDATE back, so the flows subscribe to DELETE.
START = datetime.now(tz=UTC).replace(microsecond=0) + timedelta(hours=1)


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def bl_client():
    return BusinessLogicHttpClientFactory.create_http_bl_client(
        vtn_base_url=VTN_BASE, client_id=os.environ["BL_ID"],
        client_secret=os.environ["BL_SECRET"], token_url=TOKEN_URL, scopes=None,
        verify_vtn_tls_certificate=Path(CA_BUNDLE), version=OADR)


# As VENs in the field ask: every scope they know of, more than a VEN client holds
# (read_all, which a VEN holds as read_targets and read_ven_objects). The VTN grants the
# ones the client holds (RFC 6749 section 3.3).
# oauthlib (under the library) raises "Scope has changed" when the granted scope differs
# from the requested one, unless told that RFC 6749 section 3.3 allows it, as here.
VEN_SCOPES = ["read_all", "write_reports", "write_subscriptions", "write_vens", "read_targets"]
os.environ.setdefault("OAUTHLIB_RELAX_TOKEN_SCOPE", "1")


def ven_client(prefix: str):
    return VirtualEndNodeHttpClientFactory.create_http_ven_client(
        vtn_base_url=VTN_BASE, client_id=os.environ[f"{prefix}_ID"],
        client_secret=os.environ[f"{prefix}_SECRET"], token_url=TOKEN_URL, scopes=VEN_SCOPES,
        verify_vtn_tls_certificate=Path(CA_BUNDLE), version=OADR)


def status_of(call) -> int:
    """The HTTP status a library call ends with (200 when it returns)."""
    try:
        call()
    except requests.HTTPError as exc:
        return exc.response.status_code
    return 200


def ids(objects) -> list[str]:
    return sorted(item.id for item in objects)


# --- 3.1 ------------------------------------------------------------------------------------

def flow_310(bl, ven, ven2) -> dict:
    from openadr3_client._models.common.attribute import Attribute
    from openadr3_client.oadr310._vtn.interfaces.filters import PaginationFilter
    from openadr3_client.oadr310.models.event.event import NewEvent
    from openadr3_client.oadr310.models.event.event_payload import (
        EventPayload,
        EventPayloadDescriptor,
        EventPayloadType,
    )
    from openadr3_client.oadr310.models.program.program import NewProgram
    from openadr3_client.oadr310.models.report.report import NewReport, ReportResource
    from openadr3_client.oadr310.models.report.report_payload import (
        ReportDescriptor,
        ReportPayload,
        ReportPayloadType,
    )
    from openadr3_client.oadr310.models.resource.resource import NewResourceVenRequest
    from openadr3_client.oadr310.models.subscriptions.subscription import (
        NewSubscription,
        Object,
        ObjectOperation,
        Operation,
    )
    from openadr3_client.oadr310.models.unit import Unit
    from openadr3_client.oadr310.models.ven.ven import NewVenVenRequest, VenUpdateBlRequest

    page = PaginationFilter(skip=0, limit=50)
    program = bl.programs.create_program(new_program=NewProgram(
        program_name=f"interop-{VERSION}-{TARGET}",
        interval_period=IntervalPeriod(start=START, duration=timedelta(hours=4)),
        payload_descriptors=(EventPayloadDescriptor(
            payload_type=EventPayloadType.PRICE, units=Unit.KWH, currency="GBP"),),
        targets=(TARGET,),
        attributes=[Attribute(type="PROGRAM_LONG_NAME", values=("Interop program",))],
    ))
    event = bl.events.create_event(new_event=NewEvent(
        programID=program.id, event_name="interop-event", priority=0, targets=(TARGET,),
        payload_descriptors=(EventPayloadDescriptor(
            payload_type=EventPayloadType.PRICE, units=Unit.KWH, currency="GBP"),),
        report_descriptors=(ReportDescriptor(payload_type=ReportPayloadType.USAGE,
                                             units=Unit.KWH),),
        interval_period=IntervalPeriod(start=START, duration=timedelta(minutes=30)),
        intervals=(
            Interval(id=0, payloads=(EventPayload(type=EventPayloadType.PRICE,
                                                  values=(0.25,)),)),
            Interval(id=1, payloads=(EventPayload(type=EventPayloadType.PRICE,
                                                  values=(0.30,)),)),
        ),
    ))
    log("program", program.id, "event", event.id)

    my_ven = ven.vens.create_ven(new_ven=NewVenVenRequest(ven_name=VEN_NAME))
    resource = ven.resources.create_resource(new_resource=NewResourceVenRequest(
        resource_name="interop-resource", venID=my_ven.id))
    # Before the grant the targeted event is not visible to the VEN.
    events_before = ven.events.get_events(target=None, pagination=page, program_id=None)

    granted = bl.vens.update_ven_by_id(ven_id=my_ven.id, updated_ven=VenUpdateBlRequest(
        ven_name=my_ven.ven_name, clientID=my_ven.client_id, targets=(TARGET,)))

    programs = ven.programs.get_programs(target=None, pagination=page)
    events = ven.events.get_events(target=None, pagination=page, program_id=program.id)
    event_read = ven.events.get_event_by_id(event_id=event.id)

    report = ven.reports.create_report(new_report=NewReport(
        eventID=event.id, client_name=VEN_NAME, report_name="interop-report",
        resources=(ReportResource(
            resource_name=resource.resource_name,
            interval_period=IntervalPeriod(start=START, duration=timedelta(minutes=30)),
            intervals=(Interval(id=0, payloads=(ReportPayload(
                type=ReportPayloadType.USAGE, values=(1.5,)),)),),
        ),),
    ))
    # Library quirk (OPERATIONS_QUIRK above): DELETE notifications only.
    subscription = ven.subscriptions.create_subscription(new_subscription=NewSubscription(
        client_name=VEN_NAME, programID=program.id,
        object_operations=(ObjectOperation(
            objects=(Object.EVENT, Object.PROGRAM), operations=(Operation.DELETE,),
            callback_url="https://127.0.0.1:9/openadr-callback", bearer_token="cb-secret"),),
        targets=(TARGET,),
    ))
    bl_reports = bl.reports.get_reports(pagination=None, program_id=None, event_id=event.id,
                                        client_name=None)
    bl_report = bl.reports.get_report_by_id(report_id=report.id)

    ven2_ven = ven2.vens.create_ven(new_ven=NewVenVenRequest(ven_name=VEN2_NAME))
    return {
        "program_id": program.id,
        "event_id": event.id,
        "ven_id": my_ven.id,
        "ven_client_id": my_ven.client_id,
        "resource_id": resource.id,
        "resource_ven_id": resource.ven_id,
        "granted_targets": list(granted.targets or ()),
        "ven_events_before_grant": ids(events_before),
        "ven_programs": ids(programs),
        "ven_events": ids(events),
        "ven_event_read": event_read.id,
        "report_id": report.id,
        "report_event_id": report.event_id,
        "report_client_id": report.client_id,
        "subscription_id": subscription.id,
        "bl_reports": ids(bl_reports),
        "bl_report_resources": [r.resource_name for r in bl_report.resources],
        "ven2_ven_id": ven2_ven.id,
        "ven2_programs": ids(ven2.programs.get_programs(target=None, pagination=page)),
        "ven2_events": ids(ven2.events.get_events(target=None, pagination=page,
                                                  program_id=None)),
        "ven2_vens": ids(ven2.vens.get_vens(ven_name=None, target=None, pagination=page)),
        "ven2_resources": ids(ven2.resources.get_resources()),
        "ven2_reports": ids(ven2.reports.get_reports(pagination=None, program_id=None,
                                                     event_id=None, client_name=None)),
        "ven2_subscriptions": ids(ven2.subscriptions.get_subscriptions(
            pagination=None, program_id=None, client_name=None, objects=None)),
        "ven2_get_event_status": status_of(lambda: ven2.events.get_event_by_id(event.id)),
        "ven2_get_ven_status": status_of(lambda: ven2.vens.get_ven_by_id(my_ven.id)),
        "ven2_get_report_status": status_of(lambda: ven2.reports.get_report_by_id(report.id)),
    }


# --- 3.0.1 ----------------------------------------------------------------------------------

def flow_301(bl, ven, ven2) -> dict:
    from openadr3_client.oadr301._vtn.interfaces.filters import PaginationFilter
    from openadr3_client.oadr301.models.event.event import NewEvent
    from openadr3_client.oadr301.models.event.event_payload import (
        EventPayload,
        EventPayloadDescriptor,
        EventPayloadType,
    )
    from openadr3_client.oadr301.models.program.program import NewProgram
    from openadr3_client.oadr301.models.report.report import NewReport, ReportResource
    from openadr3_client.oadr301.models.report.report_payload import (
        ReportDescriptor,
        ReportPayload,
        ReportPayloadType,
    )
    from openadr3_client.oadr301.models.subscriptions.subscription import (
        NewSubscription,
        Object,
        ObjectOperation,
        Operation,
    )
    from openadr3_client.oadr301.models.target import Target
    from openadr3_client.oadr301.models.unit import Unit
    from openadr3_client.oadr301.models.ven.resource import NewResource
    from openadr3_client.oadr301.models.ven.ven import NewVen, VenUpdate

    page = PaginationFilter(skip=0, limit=50)
    target = Target(type="GROUP", values=(TARGET,))  # 3.0.1 targets are valuesMaps
    program = bl.programs.create_program(new_program=NewProgram(
        program_name=f"interop-{VERSION}-{TARGET}", program_long_name="Interop program",
        interval_period=IntervalPeriod(start=START, duration=timedelta(hours=4)),
        payload_descriptors=(EventPayloadDescriptor(
            payload_type=EventPayloadType.PRICE, units=Unit.KWH, currency="GBP"),),
        targets=(target,),
    ))
    event = bl.events.create_event(new_event=NewEvent(
        programID=program.id, event_name="interop-event", priority=0, targets=(target,),
        payload_descriptors=(EventPayloadDescriptor(
            payload_type=EventPayloadType.PRICE, units=Unit.KWH, currency="GBP"),),
        report_descriptors=(ReportDescriptor(payload_type=ReportPayloadType.USAGE,
                                             units=Unit.KWH),),
        interval_period=IntervalPeriod(start=START, duration=timedelta(minutes=30)),
        intervals=(
            Interval(id=0, payloads=(EventPayload(type=EventPayloadType.PRICE,
                                                  values=(0.25,)),)),
            Interval(id=1, payloads=(EventPayload(type=EventPayloadType.PRICE,
                                                  values=(0.30,)),)),
        ),
    ))
    log("program", program.id, "event", event.id)

    my_ven = ven.vens.create_ven(new_ven=NewVen(ven_name=VEN_NAME))
    # 3.0.1 resources live under /vens/{venID}/resources; the body repeats venID.
    resource = ven.vens.create_ven_resource(ven_id=my_ven.id, new_resource=NewResource(
        resource_name="interop-resource", venID=my_ven.id))
    events_before = ven.events.get_events(target=None, pagination=page, program_id=None)

    # BL grants the target: a 3.0.1 PUT carries the whole ven (id and timestamps included).
    current = bl.vens.get_ven_by_id(ven_id=my_ven.id)
    granted = bl.vens.update_ven_by_id(ven_id=my_ven.id, updated_ven=current.update(
        VenUpdate(targets=(target,))))

    programs = ven.programs.get_programs(target=None, pagination=page)
    events = ven.events.get_events(target=None, pagination=page, program_id=program.id)
    event_read = ven.events.get_event_by_id(event_id=event.id)

    report = ven.reports.create_report(new_report=NewReport(
        programID=program.id, eventID=event.id, client_name=VEN_NAME,
        report_name="interop-report",
        resources=(ReportResource(
            resource_name=resource.resource_name,
            interval_period=IntervalPeriod(start=START, duration=timedelta(minutes=30)),
            intervals=(Interval(id=0, payloads=(ReportPayload(
                type=ReportPayloadType.USAGE, values=(1.5,)),)),),
        ),),
    ))
    subscription = ven.subscriptions.create_subscription(new_subscription=NewSubscription(
        client_name=VEN_NAME, programID=program.id,
        object_operations=(ObjectOperation(
            # Library quirk (OPERATIONS_QUIRK above): DELETE notifications only.
            objects=(Object.EVENT, Object.PROGRAM), operations=(Operation.DELETE,),
            callback_url="https://127.0.0.1:9/openadr-callback", bearer_token=None),),
        targets=(target,),
    ))
    bl_reports = bl.reports.get_reports(pagination=None, program_id=program.id,
                                        event_id=event.id, client_name=None)
    bl_report = bl.reports.get_report_by_id(report_id=report.id)

    ven2_ven = ven2.vens.create_ven(new_ven=NewVen(ven_name=VEN2_NAME))
    return {
        "program_id": program.id,
        "event_id": event.id,
        "ven_id": my_ven.id,
        "resource_id": resource.id,
        "resource_ven_id": resource.ven_id,
        "granted_targets": [v for t in granted.targets or () for v in t.values],
        "ven_events_before_grant": ids(events_before),
        "ven_programs": ids(programs),
        "ven_events": ids(events),
        "ven_event_read": event_read.id,
        "report_id": report.id,
        "report_event_id": report.event_id,
        "report_program_id": report.program_id,
        "subscription_id": subscription.id,
        "bl_reports": ids(bl_reports),
        "bl_report_resources": [r.resource_name for r in bl_report.resources],
        "ven2_ven_id": ven2_ven.id,
        "ven2_programs": ids(ven2.programs.get_programs(target=None, pagination=page)),
        "ven2_events": ids(ven2.events.get_events(target=None, pagination=page,
                                                  program_id=None)),
        "ven2_vens": ids(ven2.vens.get_vens(ven_name=None, target=None, pagination=page)),
        "ven2_resources": ids(ven2.vens.get_ven_resources(
            ven_id=ven2_ven.id, resource_name=None, target=None, pagination=None)),
        "ven2_reports": ids(ven2.reports.get_reports(pagination=None, program_id=None,
                                                     event_id=None, client_name=None)),
        "ven2_subscriptions": ids(ven2.subscriptions.get_subscriptions(
            pagination=None, target=None, program_id=None, client_name=None, objects=None)),
        "ven2_get_event_status": status_of(lambda: ven2.events.get_event_by_id(event.id)),
        "ven2_get_ven_status": status_of(lambda: ven2.vens.get_ven_by_id(my_ven.id)),
        "ven2_get_report_status": status_of(lambda: ven2.reports.get_report_by_id(report.id)),
        "ven2_get_resource_status": status_of(lambda: ven2.vens.get_ven_resource_by_id(
            my_ven.id, resource.id)),
    }


# --- a GB dispatch, read by a VEN that knows nothing of the profile (both versions) -----

def _seconds(duration: timedelta | None) -> float | None:
    return None if duration is None else duration.total_seconds()


def _period(period) -> dict | None:
    if period is None:
        return None
    return {"start": period.start.astimezone(UTC).isoformat(),
            "duration_seconds": _seconds(period.duration)}


def _targets(targets) -> list:
    """3.1 targets are strings; 3.0.1 targets are the library's Target (type, values)."""
    return [t if isinstance(t, str) else {"type": t.type, "values": list(t.values)}
            for t in targets or ()]


def _event(event) -> dict:
    """What the library parsed of an event, as plain JSON (enums as their values)."""
    return {
        "id": event.id,
        "class": type(event).__name__,
        "program_id": event.program_id,
        "event_name": event.event_name,
        "priority": event.priority,
        "targets": _targets(event.targets),
        "interval_period": _period(event.interval_period),
        "payload_descriptors": [
            {"payload_type": str(d.payload_type.value), "units":
             None if d.units is None else str(d.units.value), "currency": d.currency,
             "class": type(d).__name__}
            for d in event.payload_descriptors or ()],
        "intervals": [
            {"id": interval.id, "interval_period": _period(interval.interval_period),
             "payloads": [{"type": str(p.type.value), "type_class": type(p.type).__name__,
                           "values": list(p.values)} for p in interval.payloads]}
            for interval in event.intervals or ()],
    }


def flow_dispatch(ven, ven2) -> dict:
    if OADR == OADRVersion.OADR_301:
        from openadr3_client.oadr301._vtn.interfaces.filters import PaginationFilter
    else:
        from openadr3_client.oadr310._vtn.interfaces.filters import PaginationFilter
    page = PaginationFilter(skip=0, limit=50)
    event_id = os.environ["EVENT_ID"]
    programs = ven.programs.get_programs(target=None, pagination=page)
    events = ven.events.get_events(target=None, pagination=page, program_id=None)
    event = ven.events.get_event_by_id(event_id=event_id)
    log("dispatch event", event.id, "read by", type(ven).__name__)
    return {
        "ven_programs": [{"id": p.id, "program_name": p.program_name} for p in programs],
        "ven_events": [_event(e) for e in events],
        "ven_event_read": _event(event),
        "ven2_programs": ids(ven2.programs.get_programs(target=None, pagination=page)),
        "ven2_events": ids(ven2.events.get_events(target=None, pagination=page,
                                                  program_id=None)),
        "ven2_get_event_status": status_of(lambda: ven2.events.get_event_by_id(event_id)),
    }


def main() -> int:
    try:
        if FLOW == "dispatch":
            result = flow_dispatch(ven_client("VEN"), ven_client("VEN2"))
        else:
            bl, ven, ven2 = bl_client(), ven_client("VEN"), ven_client("VEN2")
            result = (flow_301 if OADR == OADRVersion.OADR_301 else flow_310)(bl, ven, ven2)
    except requests.HTTPError as exc:
        response = exc.response
        print(json.dumps({"error": {
            "method": response.request.method, "url": response.url,
            "status": response.status_code, "body": response.text[:2000],
            "request_body": (response.request.body or b"")[:2000].decode()
            if isinstance(response.request.body, bytes) else response.request.body,
        }}))
        return 1
    except Exception as exc:  # a library-side failure (e.g. pydantic refusing a response)
        traceback.print_exc()
        print(json.dumps({"error": {"exception": repr(exc)[:4000]}}))
        return 1
    result["version"] = VERSION
    result["flow"] = FLOW
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
