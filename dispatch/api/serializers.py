"""Operator API request and response bodies (camelCase like the OpenADR API). The response
serializers are both the documentation (drf-spectacular) and the rendering of each body:
the API, the commands and the console render dispatches, sites, keys, readings and
intakes with them."""

from __future__ import annotations

import re
from decimal import Decimal

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from dispatch import comms
from dispatch.rules import STATUSES, URGENCIES, Timing, iso
from dispatch.selectors import acknowledgement_state
from vtn import timing

ZONED = re.compile(r"(?:[Zz]|[+-]\d\d:?\d\d)$")

UNIT_SERVICE_TYPES = {"KW": "real", "MW": "real", "KVAR": "reactive"}
# The units each stored meter reading type is kept in (the rest: KW).
READING_UNITS = {"USAGE": "KWH", "GB_REACTIVE": "KVARH"}
# The longest reason an operator may give with a dispatch, revision or stop.
MAX_REASON_LENGTH = 1000


class AwareDateTimeField(serializers.DateTimeField):
    """An RFC 3339 date-time that names its offset (``Z`` or ``+01:00``): a zone-less
    time is ambiguous across the clock change, so it is refused rather than guessed;
    years outside vtn.timing's sane limits are refused too."""

    def to_internal_value(self, value):
        if isinstance(value, str):
            try:
                timing.check_datetime(value)
            except ValueError as exc:
                raise serializers.ValidationError(str(exc)) from exc
            if not ZONED.search(value.strip()):
                raise serializers.ValidationError(
                    "give the time zone offset (Z or +hh:mm): a time without one is ambiguous")
        return super().to_internal_value(value)


def reason_field(**kwargs) -> serializers.CharField:
    return serializers.CharField(required=False, default="", allow_blank=True,
                                 max_length=MAX_REASON_LENGTH, **kwargs)


class ServiceTimingSerializer(serializers.Serializer):
    setpointTime = AwareDateTimeField(help_text="UTC; the setpoint is reached by then")
    volume = serializers.DecimalField(max_digits=15, decimal_places=3, min_value=Decimal(0),
                                      help_text="non-negative, in `units`")
    units = serializers.ChoiceField(choices=list(UNIT_SERVICE_TYPES), default="KW",
                                    help_text="KW or KVAR; MW is converted to KW")
    setpointType = serializers.ChoiceField(
        choices=["absolute", "delta"], required=False,
        help_text="absolute level, or delta to baseline (default: the product's first)")
    serviceType = serializers.ChoiceField(choices=["real", "reactive"], required=False)
    pricePerUnit = serializers.DecimalField(max_digits=12, decimal_places=5, required=False,
                                            min_value=Decimal(0),
                                            help_text="GBP per kWh (KVAR setpoints: per kVArh); "
                                                      "the utilisation price of this period "
                                                      "(pay as instructed)")

    def validate(self, attrs: dict) -> dict:
        implied = UNIT_SERVICE_TYPES[attrs["units"]]
        if attrs.get("serviceType", implied) != implied:
            raise serializers.ValidationError(f"units {attrs['units']} are not "
                                              f"{attrs['serviceType']} power")
        return attrs


def timings_from(data: list[dict], default_setpoint_type: str) -> list[Timing]:
    result = []
    for item in data:
        volume = item["volume"] * (1000 if item["units"] == "MW" else 1)
        result.append(Timing(setpoint_time=item["setpointTime"], volume=volume,
                             setpoint_type=item.get("setpointType", default_setpoint_type),
                             service_type=UNIT_SERVICE_TYPES[item["units"]],
                             price_gbp_per_kwh=item.get("pricePerUnit")))
    return result


class IssueSerializer(serializers.Serializer):
    unit = serializers.CharField(help_text="unit reference, or FSP/REF")
    fsp = serializers.CharField(required=False)
    operator = serializers.CharField(required=False)
    product = serializers.CharField(required=False, help_text="e.g. SUSTAIN, MW_DISPATCH")
    contract = serializers.CharField(required=False)
    reference = serializers.CharField(required=False, max_length=63,
                                      help_text="NO dispatch reference (generated if absent)")
    serviceStart = AwareDateTimeField()
    serviceEnd = AwareDateTimeField()
    status = serializers.ChoiceField(choices=["pre-notify", "run"], default="run")
    urgency = serializers.ChoiceField(choices=list(URGENCIES), required=False)
    serviceTimings = ServiceTimingSerializer(
        many=True, required=False, help_text="required, except for a product that turns to "
        "zero by default (MW_DISPATCH: absent means absolute 0 from serviceStart)")
    reason = reason_field()
    confirmCommsLoss = serializers.BooleanField(
        default=False, help_text="issue even though the unit's site is in comms loss "
                                 "(otherwise 409 naming the site)")


class ReviseSerializer(serializers.Serializer):
    serviceStart = AwareDateTimeField(required=False)
    serviceEnd = AwareDateTimeField(required=False)
    status = serializers.ChoiceField(choices=["pre-notify", "run"], required=False)
    urgency = serializers.ChoiceField(choices=list(URGENCIES), required=False)
    serviceTimings = ServiceTimingSerializer(many=True, required=False, allow_empty=False)
    expectedRevision = serializers.IntegerField(required=False, min_value=1,
                                                help_text="refuse (409) if not current")
    reason = reason_field()


class StopSerializer(serializers.Serializer):
    expectedRevision = serializers.IntegerField(required=False, min_value=1)
    reason = reason_field()


class ProductParametersRequestSerializer(serializers.Serializer):
    parameters = serializers.DictField(
        child=serializers.CharField(allow_null=True, max_length=32),
        help_text="notice_period, ramp_time, heartbeat_interval: ISO 8601 durations "
                  "(heartbeat_interval may be NONE); DEFAULT returns to the product's default")
    reason = serializers.CharField(required=False, default="", allow_blank=True,
                                   max_length=1000)


class ProductParametersSerializer(serializers.Serializer):
    """Renders ``dispatch.programs.ProductParameterSettings``."""

    operator = serializers.CharField()
    product = serializers.CharField()
    programName = serializers.CharField(source="program_name")
    parameters = serializers.DictField(child=serializers.CharField(allow_null=True))
    defaults = serializers.DictField(child=serializers.CharField(allow_null=True))
    operatorSet = serializers.ListField(source="operator_set", child=serializers.CharField())


# --- responses: each serializer documents a body and renders it --------------------------------

class UtcDateTimeField(serializers.DateTimeField):
    """An aware datetime rendered as ISO 8601 UTC to the second (``dispatch.rules.iso``)."""

    def to_representation(self, value):
        return iso(value)


class BlankAsNullCharField(serializers.CharField):
    """Stored blank, rendered null."""

    def to_representation(self, value):
        return None if value == "" else super().to_representation(value)


class AmountField(serializers.CharField):
    """A Decimal rendered as plain text without trailing zeros (``12.5``, never ``1.25E+1``)."""

    def to_representation(self, value):
        return format(value.normalize(), "f")


class AcknowledgementSerializer(serializers.Serializer):
    stage = serializers.ChoiceField(choices=["received", "actioned", "refused", ""])
    outcome = serializers.ChoiceField(choices=[
        "accepted", "read_back_mismatch", "invalid_signature", "unknown_key",
        "stale_revision", "duplicate"])
    result = BlankAsNullCharField(allow_null=True,
                                  help_text="actioned: did the asset act on it (ACCEPTED or "
                                            "FAILED)")
    reason = serializers.CharField(help_text="the FSP's reason for FAILED or REFUSED")
    detail = serializers.CharField(help_text="why the outcome is not accepted")
    receivedAt = UtcDateTimeField(source="received_at")
    claimedRevision = serializers.IntegerField(source="claimed_revision", allow_null=True)
    reportID = serializers.CharField(source="report_id")
    clientID = serializers.CharField(source="client_id")
    kid = serializers.CharField()
    signedAt = UtcDateTimeField(source="signed_at", allow_null=True,
                                help_text="when the FSP says it signed it (its signedAt)")


class AcknowledgedSerializer(serializers.Serializer):
    """Documents ``dispatch.selectors.acknowledgement_state``."""

    received = serializers.CharField(allow_null=True, help_text="first accepted, or null")
    actioned = serializers.CharField(allow_null=True, help_text="first accepted, or null")
    actionedResult = serializers.CharField(allow_null=True)
    refused = serializers.CharField(allow_null=True,
                                    help_text="first accepted refusal by the agent, or null")
    refusedReason = serializers.CharField(allow_null=True)


class RevisionSerializer(serializers.Serializer):
    revision = serializers.IntegerField(source="number")
    status = serializers.ChoiceField(choices=list(STATUSES))
    urgency = serializers.ChoiceField(choices=list(URGENCIES))
    instructionTime = UtcDateTimeField(source="instruction_time")
    issuedAt = UtcDateTimeField(source="created")
    kid = serializers.CharField(source="signing_key.kid")
    issuedBy = serializers.CharField(source="issued_by")
    reason = serializers.CharField()
    document = serializers.JSONField(help_text="the signed Appendix A document")
    signature = serializers.CharField(help_text="compact JWS over canonical(document)")
    acknowledged = serializers.SerializerMethodField()
    acknowledgements = serializers.SerializerMethodField()

    @staticmethod
    def _acks(revision) -> list:
        return list(revision.acknowledgements.order_by("received_at", "id"))

    @extend_schema_field(AcknowledgedSerializer)
    def get_acknowledged(self, revision) -> dict:
        return acknowledgement_state(self._acks(revision))

    @extend_schema_field(AcknowledgementSerializer(many=True))
    def get_acknowledgements(self, revision) -> list:
        return list(AcknowledgementSerializer(self._acks(revision), many=True).data)


class CommsSerializer(serializers.Serializer):
    """A site's comms state in brief (also shown with each of its dispatches)."""

    site = serializers.CharField(source="path", help_text="OPERATOR/FSP/SITE")
    state = serializers.ChoiceField(source="comms_state",
                                    choices=["unknown", "online", "comms_lost"])
    lastSeen = UtcDateTimeField(source="last_seen", allow_null=True)
    changed = UtcDateTimeField(source="comms_changed", allow_null=True,
                               help_text="when the state last changed")


# "from" is a Python keyword: the class is built from a dict of fields.
CommsTransitionSerializer = type("CommsTransitionSerializer", (serializers.Serializer,), {
    "from": serializers.CharField(source="from_state"),
    "to": serializers.CharField(source="to_state"),
    "at": UtcDateTimeField(), "lastSeen": UtcDateTimeField(source="last_seen", allow_null=True),
    "detail": serializers.CharField()})


class SiteUnitSerializer(serializers.Serializer):
    reference = serializers.CharField()
    direction = serializers.CharField()
    capacityKw = AmountField(source="capacity_kw", help_text="real power the unit can deliver")
    capacityKvar = AmountField(source="capacity_kvar", allow_null=True,
                               help_text="reactive power the unit can deliver (null: none; "
                                         "reactive dispatches to it are refused)")
    commsState = serializers.CharField(source="comms_state")
    operatingState = BlankAsNullCharField(source="operating_state", allow_null=True)
    availableKw = serializers.CharField(source="available_kw", allow_null=True)
    stateReportedAt = UtcDateTimeField(source="state_reported_at", allow_null=True)


class SiteSerializer(CommsSerializer):
    """A site with its comms state, heartbeat interval (with its operator's own values),
    units with their last reported state, and latest transitions (``transitions``: how
    many, 20 by default)."""

    operator = serializers.CharField(source="fsp.operator.code")
    fsp = serializers.CharField(source="fsp.identifier")
    name = serializers.CharField()
    venID = serializers.CharField(source="ven_id")
    heartbeatIntervalSeconds = serializers.SerializerMethodField()
    units = serializers.SerializerMethodField()
    transitions = serializers.SerializerMethodField()
    offlineLogs = serializers.SerializerMethodField(
        help_text="the agent's latest logs of outages it rode out (GB_OFFLINE_LOG), newest "
                  "first: offlineFrom, offlineUntil, entries, receivedAt")

    def __init__(self, *args, transitions: int = 20, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.transition_count = transitions

    def get_heartbeatIntervalSeconds(self, site) -> int | None:  # noqa: N802
        interval = comms.effective_interval(site)
        return int(interval.total_seconds()) if interval else None

    @extend_schema_field(SiteUnitSerializer(many=True))
    def get_units(self, site) -> list:
        return list(SiteUnitSerializer(site.units.order_by("reference"), many=True).data)

    @extend_schema_field(CommsTransitionSerializer(many=True))
    def get_transitions(self, site) -> list:
        recent = list(site.transitions.order_by("-at", "-id")[:self.transition_count])
        return list(CommsTransitionSerializer(list(reversed(recent)), many=True).data)

    def get_offlineLogs(self, site) -> list:  # noqa: N802
        return [{**(record.offline_log or {}), "receivedAt": iso(record.received_at)}
                for record in site.heartbeats.filter(offline_log__isnull=False)
                .order_by("-received_at", "-id")[:5]]


class DispatchSerializer(serializers.Serializer):
    """A dispatch with its current revision (:class:`DispatchHistorySerializer`: and every
    revision, oldest first)."""

    networkOperator = serializers.CharField(source="operator.code")
    reference = serializers.CharField()
    fsp = serializers.CharField(source="unit.fsp.identifier")
    unit = serializers.CharField(source="unit.reference")
    contract = serializers.CharField(source="contract.identifier")
    product = serializers.CharField(source="contract.product.code")
    status = serializers.ChoiceField(choices=list(STATUSES))
    urgency = serializers.ChoiceField(choices=list(URGENCIES))
    revision = serializers.IntegerField()
    serviceStart = UtcDateTimeField(source="service_start")
    serviceEnd = UtcDateTimeField(source="service_end")
    eventID = serializers.CharField(source="event_id", allow_null=True)
    programID = serializers.CharField(source="event.program_id", allow_null=True)
    created = UtcDateTimeField()
    modified = UtcDateTimeField()
    comms = CommsSerializer(source="unit.site", help_text="the comms state of the unit's site")
    current = serializers.SerializerMethodField()
    revisions = serializers.SerializerMethodField()

    with_history = False  # DispatchHistorySerializer: True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not self.with_history:
            self.fields.pop("revisions")

    @extend_schema_field(RevisionSerializer(allow_null=True))
    def get_current(self, dispatch) -> dict | None:
        latest = dispatch.revisions.select_related("signing_key").order_by("-number").first()
        return RevisionSerializer(latest).data if latest else None

    @extend_schema_field(RevisionSerializer(many=True))
    def get_revisions(self, dispatch) -> list:
        return list(RevisionSerializer(
            dispatch.revisions.select_related("signing_key").order_by("number"), many=True).data)


class DispatchHistorySerializer(DispatchSerializer):
    """A dispatch with every revision, oldest first."""

    with_history = True


class UnitSerializer(SiteUnitSerializer):
    """A dispatch unit with its capabilities."""

    operator = serializers.CharField(source="fsp.operator.code")
    fsp = serializers.CharField(source="fsp.identifier")
    site = serializers.CharField(source="site.name")
    zone = serializers.CharField()
    contracts = serializers.SerializerMethodField()

    def get_contracts(self, unit) -> list[str]:
        return sorted(unit.contracts.values_list("identifier", flat=True))


class UnitCapabilitiesRequestSerializer(serializers.Serializer):
    capacityKw = serializers.DecimalField(
        max_digits=12, decimal_places=3, required=False, min_value=Decimal("0.001"),
        help_text="real power (kW, positive); absent: unchanged")
    capacityKvar = serializers.DecimalField(
        max_digits=12, decimal_places=3, required=False, allow_null=True,
        min_value=Decimal("0.001"),
        help_text="reactive power (kVAr, positive); null: none; absent: unchanged")
    reason = reason_field(help_text="why (kept in the audit entry)")

    def validate(self, attrs: dict) -> dict:
        if "capacityKw" not in attrs and "capacityKvar" not in attrs:
            raise serializers.ValidationError("give capacityKw, capacityKvar or both")
        return attrs


class SiteKeyRequestSerializer(serializers.Serializer):
    jwk = serializers.JSONField(help_text="public Ed25519 JWK with a kid (no 'd')")
    fsp = serializers.CharField(required=False, help_text="must be the caller's own FSP")
    site = serializers.CharField(required=False, help_text="must be the caller's own site")


class SiteKeySerializer(serializers.Serializer):
    kid = serializers.CharField()
    jwk = serializers.JSONField(source="public_jwk")
    created = UtcDateTimeField()
    revokedAt = UtcDateTimeField(source="revoked_at", allow_null=True)
    site = serializers.CharField(source="site.path", help_text="OPERATOR/FSP/SITE")


class AuditExportSerializer(serializers.Serializer):
    format = serializers.CharField()
    networkOperatorId = serializers.CharField()
    dispatchRef = serializers.CharField()
    exportedAt = serializers.CharField()
    entries = serializers.ListField(child=serializers.JSONField())
    links = serializers.ListField(child=serializers.JSONField())
    headHash = serializers.CharField()
    operatorKeys = serializers.JSONField()
    siteKeys = serializers.JSONField()


class MeterReadingSerializer(serializers.Serializer):
    fsp = serializers.CharField(source="unit.fsp.identifier")
    unit = serializers.CharField(source="unit.reference")
    type = serializers.ChoiceField(source="reading_type",
                                   choices=["USAGE", "DEMAND", "BASELINE", "GB_REACTIVE"])
    start = UtcDateTimeField()
    end = UtcDateTimeField()
    value = AmountField(allow_null=True, help_text="kWh (USAGE), kVArh (GB_REACTIVE) or kW; "
                                                   "+ import, - export; null when flagged "
                                                   "MISSING")
    units = serializers.SerializerMethodField()
    quality = serializers.ChoiceField(choices=["OK", "MISSING", "ESTIMATED", "BAD"])
    version = serializers.IntegerField()
    receivedAt = UtcDateTimeField(source="received_at")
    reportID = serializers.CharField(source="intake.report_id")
    supersededAt = UtcDateTimeField(source="superseded_at", allow_null=True)

    @extend_schema_field(serializers.ChoiceField(choices=["KWH", "KW", "KVARH"]))
    def get_units(self, row) -> str:
        return READING_UNITS.get(row.reading_type, "KW")


class IntakeProblemSerializer(serializers.Serializer):
    unit = serializers.CharField()
    type = serializers.CharField()
    start = serializers.CharField()
    outcome = serializers.ChoiceField(choices=["invalid", "unknown_unit", "conflict", "late"])
    detail = serializers.CharField()


class ReportIntakeSerializer(serializers.Serializer):
    site = serializers.CharField(source="site.path")
    kind = serializers.ChoiceField(choices=["availability", "metering"])
    channel = serializers.ChoiceField(
        choices=["report", "bulk"], help_text="report: an OpenADR report of the site's VEN "
        "(reportID names it); bulk: the site's rows of a bulk meter-readings request of "
        "the FSP's back office (reportID empty)")
    reportID = serializers.CharField(source="report_id")
    receivedAt = UtcDateTimeField(source="received_at")
    stored = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    corrections = serializers.IntegerField()
    rejected = serializers.IntegerField()
    problems = serializers.SerializerMethodField()
    signed = serializers.SerializerMethodField(
        help_text="whether the site signed the report (its signature verified)")
    kid = BlankAsNullCharField(allow_null=True, help_text="the site key it was signed with")
    signedAt = UtcDateTimeField(source="signed_at", allow_null=True,
                                help_text="when the site says it signed it")

    def get_signed(self, row) -> bool:
        return bool(row.jws)

    @extend_schema_field(IntakeProblemSerializer(many=True))
    def get_problems(self, row) -> list:
        return row.problems  # stored as rendered when the report was taken in


class AvailabilitySpanSerializer(serializers.Serializer):
    start = serializers.CharField()
    end = serializers.CharField()
    declaredKw = serializers.CharField()
    contractedKw = serializers.CharField()
    shortfallKw = serializers.CharField()
    units = serializers.DictField(child=serializers.CharField(allow_null=True))


class AvailabilityWindowSerializer(serializers.Serializer):
    start = serializers.CharField()
    end = serializers.CharField()
    spans = AvailabilitySpanSerializer(many=True)


class AvailabilitySerializer(serializers.Serializer):
    operator = serializers.CharField()
    contract = serializers.CharField()
    fsp = serializers.CharField()
    product = serializers.CharField()
    locals()["from"] = serializers.CharField()  # a keyword in Python, a member on the wire
    to = serializers.CharField()
    contractedKw = serializers.CharField()
    windows = AvailabilityWindowSerializer(many=True)
    summary = serializers.DictField()


class BulkReadingRowSerializer(serializers.Serializer):
    """One row of a bulk meter-data request (documentation: the rows are checked by
    ``dispatch.readings.parse_bulk_rows``, which lists every faulty row at once)."""

    unit = serializers.CharField(max_length=128, help_text="dispatch unit reference, or "
                                 "FSP/REF")
    fsp = serializers.CharField(max_length=128, required=False,
                                help_text="FSP identifier, when the reference is ambiguous")
    operator = serializers.CharField(max_length=128, required=False,
                                     help_text="network operator code, when ambiguous")
    start = serializers.DateTimeField(help_text="start of the interval (RFC 3339 with a "
                                                "time zone)")
    duration = serializers.CharField(required=False, default="PT30M",
                                     help_text="ISO 8601 duration, at most one day")
    kwh = serializers.DecimalField(max_digits=18, decimal_places=6, required=False,
                                   allow_null=True, coerce_to_string=False,
                                   help_text="energy over the interval (USAGE): + import, "
                                             "- export; a number or a decimal string")
    kvarh = serializers.DecimalField(max_digits=18, decimal_places=6, required=False,
                                     allow_null=True, coerce_to_string=False,
                                     help_text="reactive energy over the interval "
                                               "(GB_REACTIVE): + absorbed, - supplied")
    quality = serializers.ChoiceField(choices=["OK", "MISSING", "ESTIMATED", "BAD"],
                                      required=False, default="OK",
                                      help_text="MISSING: kwh and kvarh are null")
    correction = serializers.BooleanField(
        required=False, default=False,
        help_text="true replaces the reading held for the period (a new version)")


class BulkReadingsRequestSerializer(serializers.Serializer):
    readings = BulkReadingRowSerializer(many=True, help_text="at most 20,000 rows (and the "
                                        "request body at most VTN_MAX_BODY_BYTES)")


class BulkReadingsSerializer(serializers.Serializer):
    stored = serializers.IntegerField(help_text="readings stored as new")
    duplicates = serializers.IntegerField(help_text="readings already held, the same")
    corrections = serializers.IntegerField(help_text="readings stored as a new version")
    intakes = ReportIntakeSerializer(many=True, help_text="one per site named")
