"""OpenADR 3.0.1 wire format (served at /openadr3/3.0.1).

Differences from 3.1 handled here: targets are valuesMaps; request bodies are the
full object schemas; program fields such as ``programLongName`` are 3.1 program
attributes internally; reports and subscriptions carry a required ``programID``;
resources live under ``/vens/{venID}/resources`` and may be nested in a ven; interval
periods require a ``start`` (3.1's "now", 0001-01-01, fills in where 3.1 left it out).
"""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import QueryDict

from vtn import targets as target_rules
from vtn.auth.caller import Caller
from vtn.errors import BadRequest
from vtn.models import Event, Program, Report, Resource, Subscription, Ven
from vtn.schemas import VERSION_301
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

# 3.0.1 program properties and the 3.1 program attribute types that carry them.
PROGRAM_ATTRIBUTES = {
    "programLongName": "PROGRAM_LONG_NAME",
    "retailerName": "RETAILER_NAME",
    "retailerLongName": "RETAILER_LONG_NAME",
    "programType": "PROGRAM_TYPE",
    "country": "COUNTRY",
    "principalSubdivision": "PRINCIPAL_SUBDIVISION",
    "bindingEvents": "BINDING_EVENTS",
    "localPrice": "LOCAL",
    "timeZoneOffset": "TIME_ZONE_OFFSET",
}


class Wire301(WireFormat):
    version = VERSION_301

    # -- queries ---------------------------------------------------------------------------

    def target_labels(self, query: QueryDict) -> frozenset[str] | None:
        values = query.getlist("targetValues")
        if query.get("targetType") is not None and not values:
            raise BadRequest("targetType needs targetValues.")
        return self._labels(values)

    # -- programs --------------------------------------------------------------------------

    def program_in(self, body: object) -> dict:
        data = self.validated("program", body)
        attributes = [{"type": PROGRAM_ATTRIBUTES[key], "values": [data[key]]}
                      for key in PROGRAM_ATTRIBUTES if data.get(key) is not None]
        return {
            "program_name": data["programName"],
            "interval_period": data.get("intervalPeriod"),
            "program_descriptions": data.get("programDescriptions"),
            "payload_descriptors": with_descriptor_types(data.get("payloadDescriptors"),
                                                         EVENT_PAYLOAD_DESCRIPTOR),
            "attributes": attributes or None,
            "targets": target_rules.from_values_maps(data.get("targets")),
        }

    def program_out(self, program: Program, visible: frozenset[str] | None) -> dict:
        legacy = {}
        by_type = {item.get("type"): item.get("values") or [] for item in program.attributes or []}
        for key, attribute in PROGRAM_ATTRIBUTES.items():
            if by_type.get(attribute):
                legacy[key] = by_type[attribute][0]
        return metadata(program, "PROGRAM") | compact({
            "programName": program.program_name,
            **legacy,
            "intervalPeriod": period_out(program.interval_period),
            "programDescriptions": program.program_descriptions,
            "payloadDescriptors": program.payload_descriptors,
            "targets": target_rules.to_values_maps(program.targets, visible),
        })

    # -- events ----------------------------------------------------------------------------

    def event_in(self, body: object) -> dict:
        data = self.validated("event", body)
        return {
            "program_id": data["programID"],
            "event_name": data.get("eventName"),
            "priority": data.get("priority"),
            "duration": None,
            "targets": target_rules.from_values_maps(data.get("targets")),
            "report_descriptors": data.get("reportDescriptors"),
            "payload_descriptors": with_descriptor_types(data.get("payloadDescriptors"),
                                                         EVENT_PAYLOAD_DESCRIPTOR),
            "interval_period": data.get("intervalPeriod"),
            "intervals": data["intervals"],
        }

    def event_out(self, event: Event, visible: frozenset[str] | None) -> dict:
        return metadata(event, "EVENT") | compact({
            "programID": event.program_id,
            "eventName": event.event_name,
            "priority": event.priority,
            "targets": target_rules.to_values_maps(event.targets, visible),
            "reportDescriptors": event.report_descriptors,
            "payloadDescriptors": event.payload_descriptors,
            "intervalPeriod": period_out(event.interval_period),
            "intervals": intervals_out(event.intervals),
        })

    # -- reports ---------------------------------------------------------------------------

    def report_in(self, body: object) -> dict:
        data = self.validated("report", body)
        return {
            "program_id": data["programID"],
            "event_id": data["eventID"],
            "client_name": data["clientName"],
            "report_name": data.get("reportName"),
            "payload_descriptors": with_descriptor_types(data.get("payloadDescriptors"),
                                                         REPORT_PAYLOAD_DESCRIPTOR),
            "resources": data["resources"],
        }

    def report_out(self, report: Report) -> dict:
        return metadata(report, "REPORT") | compact({
            "programID": report.program_id,
            "eventID": report.event_id,
            "clientName": report.client_name,
            "reportName": report.report_name,
            "payloadDescriptors": report.payload_descriptors,
            "resources": report_resources_out(report.resources),
        })

    # -- subscriptions ---------------------------------------------------------------------

    def subscription_in(self, body: object) -> dict:
        data = self.validated("subscription", body)
        return {
            "client_name": data["clientName"],
            "program_id": data["programID"],
            "object_operations": data["objectOperations"],
            "wire_version": self.version,
            "targets": target_rules.from_values_maps(data.get("targets")),
        }

    def expressible_subscriptions(self, queryset: QuerySet) -> QuerySet:
        """3.0.1 requires programID: subscriptions to no program are 3.1-only."""
        return queryset.filter(program__isnull=False)

    def subscription_out(self, subscription: Subscription) -> dict:
        return metadata(subscription, "SUBSCRIPTION") | compact({
            "clientName": subscription.client_name,
            "programID": subscription.program_id,
            "objectOperations": operations_out(subscription.object_operations),
            "targets": target_rules.to_values_maps(subscription.targets),
        })

    # -- vens ------------------------------------------------------------------------------

    def ven_in(self, body: object, caller: Caller) -> tuple[dict, list[dict]]:
        data = self.validated("ven", body)
        internal = {"ven_name": data["venName"], "attributes": data.get("attributes")}
        if caller.is_bl or "targets" in data:
            internal["targets"] = target_rules.from_values_maps(data.get("targets"))
        client_id = body.get("clientID") if isinstance(body, dict) else None
        if caller.is_bl and isinstance(client_id, str) and 1 <= len(client_id) <= 128:
            internal["client_id"] = client_id
        resources = [self._resource_fields(item, caller) for item in data.get("resources") or []]
        return internal, resources

    def ven_out(self, ven: Ven) -> dict:
        return metadata(ven, "VEN") | compact({
            "venName": ven.ven_name,
            "attributes": ven.attributes,
            "targets": target_rules.to_values_maps(ven.targets),
        })

    # -- resources -------------------------------------------------------------------------

    @staticmethod
    def _resource_fields(data: dict, caller: Caller) -> dict:
        internal = {"resource_name": data["resourceName"], "attributes": data.get("attributes")}
        if caller.is_bl or "targets" in data:
            internal["targets"] = target_rules.from_values_maps(data.get("targets"))
        return internal

    def resource_in(self, body: object, caller: Caller) -> dict:
        return self._resource_fields(self.validated("resource", body), caller)

    def resource_out(self, resource: Resource) -> dict:
        return metadata(resource, "RESOURCE") | compact({
            "resourceName": resource.resource_name,
            "venID": resource.ven_id,
            "attributes": resource.attributes,
            "targets": target_rules.to_values_maps(resource.targets),
        })
