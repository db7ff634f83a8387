"""OpenADR 3.1 wire format (served at /openadr3/3.1.0, per the 3.1.1 document)."""

from __future__ import annotations

from datetime import datetime

from django.http import QueryDict

from vtn import targets as target_rules
from vtn.auth.caller import Caller
from vtn.errors import BadRequest, Forbidden
from vtn.models import Event, Program, Report, Resource, Subscription, Ven
from vtn.schemas import VERSION_31
from vtn.wire.base import (
    EVENT_PAYLOAD_DESCRIPTOR,
    REPORT_PAYLOAD_DESCRIPTOR,
    WireFormat,
    compact,
    intervals_out,
    metadata,
    operations_out,
    period_out,
    report_resources_out,
    with_descriptor_types,
)

BL_VEN_REQUEST = "BL_VEN_REQUEST"
VEN_VEN_REQUEST = "VEN_VEN_REQUEST"
BL_RESOURCE_REQUEST = "BL_RESOURCE_REQUEST"
VEN_RESOURCE_REQUEST = "VEN_RESOURCE_REQUEST"


class Wire31(WireFormat):
    version = VERSION_31

    # -- queries ---------------------------------------------------------------------------

    def target_labels(self, query: QueryDict) -> frozenset[str] | None:
        return self._labels(query.getlist("targets"))

    def active_at(self, query: QueryDict) -> datetime | None:
        raw = query.get("active")
        if raw is None:
            return None
        if raw.lower() not in ("true", "false"):
            raise BadRequest("active must be true or false.")
        return self.now() if raw.lower() == "true" else None

    # -- programs --------------------------------------------------------------------------

    def program_in(self, body: object) -> dict:
        data = self.validated("programRequest", body)
        return {
            "program_name": data["programName"],
            "interval_period": data.get("intervalPeriod"),
            "program_descriptions": data.get("programDescriptions"),
            "payload_descriptors": data.get("payloadDescriptors"),
            "attributes": data.get("attributes"),
            "targets": target_rules.from_strings(data.get("targets")),
        }

    def program_out(self, program: Program, visible: frozenset[str] | None) -> dict:
        return metadata(program, "PROGRAM") | compact({
            "programName": program.program_name,
            "intervalPeriod": period_out(program.interval_period),
            "programDescriptions": program.program_descriptions,
            "payloadDescriptors": with_descriptor_types(program.payload_descriptors,
                                                        EVENT_PAYLOAD_DESCRIPTOR),
            "attributes": program.attributes,
            "targets": target_rules.to_strings(program.targets, visible),
        })

    # -- events ----------------------------------------------------------------------------

    def event_in(self, body: object) -> dict:
        data = self.validated("eventRequest", body)
        return {
            "program_id": data["programID"],
            "event_name": data.get("eventName"),
            "priority": data.get("priority"),
            "duration": data.get("duration"),
            "targets": target_rules.from_strings(data.get("targets")),
            "report_descriptors": data.get("reportDescriptors"),
            "payload_descriptors": data.get("payloadDescriptors"),
            "interval_period": data.get("intervalPeriod"),
            "intervals": data.get("intervals") or [],
        }

    def event_out(self, event: Event, visible: frozenset[str] | None) -> dict:
        return metadata(event, "EVENT") | compact({
            "programID": event.program_id,
            "eventName": event.event_name,
            "duration": event.duration,
            "priority": event.priority,
            "targets": target_rules.to_strings(event.targets, visible),
            "reportDescriptors": event.report_descriptors,
            "payloadDescriptors": with_descriptor_types(event.payload_descriptors,
                                                        EVENT_PAYLOAD_DESCRIPTOR),
            "intervalPeriod": period_out(event.interval_period),
            "intervals": intervals_out(event.intervals),
        })

    # -- reports ---------------------------------------------------------------------------

    def report_in(self, body: object) -> dict:
        data = self.validated("reportRequest", body)
        return {
            "event_id": data["eventID"],
            "client_name": data["clientName"],
            "report_name": data.get("reportName"),
            "payload_descriptors": data.get("payloadDescriptors"),
            "resources": data["resources"],
        }

    def report_out(self, report: Report) -> dict:
        return metadata(report, "REPORT") | compact({
            "programID": report.program_id,
            "eventID": report.event_id,
            "clientID": report.client_id,
            "clientName": report.client_name,
            "reportName": report.report_name,
            "payloadDescriptors": with_descriptor_types(report.payload_descriptors,
                                                        REPORT_PAYLOAD_DESCRIPTOR),
            "resources": report_resources_out(report.resources),
        })

    # -- subscriptions ---------------------------------------------------------------------

    def subscription_in(self, body: object) -> dict:
        data = self.validated("subscriptionRequest", body)
        return {
            "client_name": data["clientName"],
            "program_id": data.get("programID"),
            "object_operations": data["objectOperations"],
            "wire_version": self.version,
            "targets": target_rules.from_strings(data.get("targets")),
        }

    def subscription_out(self, subscription: Subscription) -> dict:
        return metadata(subscription, "SUBSCRIPTION") | compact({
            "clientID": subscription.client_id,
            "clientName": subscription.client_name,
            "programID": subscription.program_id,
            "objectOperations": operations_out(subscription.object_operations),
            "targets": target_rules.to_strings(subscription.targets),
        })

    # -- vens ------------------------------------------------------------------------------

    def ven_in(self, body: object, caller: Caller) -> tuple[dict, list[dict]]:
        data = self.validated("venRequest", body)
        kind = data["objectType"]
        if kind == BL_VEN_REQUEST and not caller.is_bl:
            raise Forbidden("Only business logic may send a BL_VEN_REQUEST.")
        if kind == VEN_VEN_REQUEST and caller.is_bl:
            raise BadRequest("Business logic creates vens with a BL_VEN_REQUEST naming clientID.")
        internal = {"ven_name": data["venName"], "attributes": data.get("attributes")}
        if kind == BL_VEN_REQUEST:
            internal["client_id"] = data["clientID"]
            internal["targets"] = target_rules.from_strings(data.get("targets"))
        return internal, []

    def ven_out(self, ven: Ven) -> dict:
        return metadata(ven, "VEN") | compact({
            "clientID": ven.client_id or None,
            "venName": ven.ven_name,
            "attributes": ven.attributes,
            "targets": target_rules.to_strings(ven.targets),
        })

    # -- resources -------------------------------------------------------------------------

    def resource_in(self, body: object, caller: Caller) -> dict:
        data = self.validated("resourceRequest", body)
        kind = data["objectType"]
        if kind == BL_RESOURCE_REQUEST and not caller.is_bl:
            raise Forbidden("Only business logic may send a BL_RESOURCE_REQUEST.")
        if kind == VEN_RESOURCE_REQUEST and caller.is_bl:
            raise BadRequest("Business logic creates resources with a BL_RESOURCE_REQUEST.")
        internal = {"resource_name": data["resourceName"], "ven_id": data["venID"],
                    "attributes": data.get("attributes")}
        if kind == BL_RESOURCE_REQUEST:
            internal["client_id"] = data["clientID"]
            internal["targets"] = target_rules.from_strings(data.get("targets"))
        return internal

    def resource_out(self, resource: Resource) -> dict:
        return metadata(resource, "RESOURCE") | compact({
            "clientID": resource.client_id or resource.ven.client_id or None,
            "resourceName": resource.resource_name,
            "venID": resource.ven_id,
            "attributes": resource.attributes,
            "targets": target_rules.to_strings(resource.targets),
        })
