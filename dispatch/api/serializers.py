"""Operator API request and response bodies (camelCase like the OpenADR API)."""

from __future__ import annotations

import re
from decimal import Decimal

from rest_framework import serializers

from dispatch.rules import STATUSES, URGENCIES, Timing
from vtn import timing

ZONED = re.compile(r"(?:[Zz]|[+-]\d\d:?\d\d)$")

UNIT_SERVICE_TYPES = {"KW": "real", "MW": "real", "KVAR": "reactive"}
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
                                            min_value=Decimal(0), help_text="GBP per kWh")

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
    operator = serializers.CharField()
    product = serializers.CharField()
    programName = serializers.CharField()
    parameters = serializers.DictField(child=serializers.CharField(allow_null=True))
    defaults = serializers.DictField(child=serializers.CharField(allow_null=True))
    operatorSet = serializers.ListField(child=serializers.CharField())


# --- responses (documentation) ------------------------------------------------------------------

class AcknowledgementSerializer(serializers.Serializer):
    stage = serializers.ChoiceField(choices=["received", "actioned", "refused", ""])
    outcome = serializers.ChoiceField(choices=[
        "accepted", "read_back_mismatch", "invalid_signature", "unknown_key",
        "stale_revision", "duplicate"])
    result = serializers.ChoiceField(choices=["ACCEPTED", "FAILED"], allow_null=True,
                                     help_text="actioned: did the asset act on it")
    reason = serializers.CharField(help_text="the FSP's reason for FAILED or REFUSED")
    detail = serializers.CharField(help_text="why the outcome is not accepted")
    receivedAt = serializers.CharField()
    claimedRevision = serializers.IntegerField(allow_null=True)
    reportID = serializers.CharField()
    clientID = serializers.CharField()
    kid = serializers.CharField()


class AcknowledgedSerializer(serializers.Serializer):
    received = serializers.CharField(allow_null=True, help_text="first accepted, or null")
    actioned = serializers.CharField(allow_null=True, help_text="first accepted, or null")
    actionedResult = serializers.CharField(allow_null=True)
    refused = serializers.CharField(allow_null=True,
                                    help_text="first accepted refusal by the agent, or null")
    refusedReason = serializers.CharField(allow_null=True)


class RevisionSerializer(serializers.Serializer):
    revision = serializers.IntegerField()
    status = serializers.ChoiceField(choices=list(STATUSES))
    urgency = serializers.ChoiceField(choices=list(URGENCIES))
    instructionTime = serializers.CharField()
    kid = serializers.CharField()
    issuedBy = serializers.CharField()
    reason = serializers.CharField()
    document = serializers.JSONField(help_text="the signed Appendix A document")
    signature = serializers.CharField(help_text="compact JWS over canonical(document)")
    issuedAt = serializers.CharField()
    acknowledged = AcknowledgedSerializer()
    acknowledgements = AcknowledgementSerializer(many=True)


class CommsSerializer(serializers.Serializer):
    site = serializers.CharField(help_text="OPERATOR/FSP/SITE")
    state = serializers.ChoiceField(choices=["unknown", "online", "comms_lost"])
    lastSeen = serializers.CharField(allow_null=True)
    changed = serializers.CharField(allow_null=True, help_text="when the state last changed")


# "from" is a Python keyword: the class is built from a dict of fields.
CommsTransitionSerializer = type("CommsTransitionSerializer", (serializers.Serializer,), {
    "from": serializers.CharField(), "to": serializers.CharField(),
    "at": serializers.CharField(), "lastSeen": serializers.CharField(allow_null=True),
    "detail": serializers.CharField()})


class SiteUnitSerializer(serializers.Serializer):
    reference = serializers.CharField()
    commsState = serializers.CharField()
    operatingState = serializers.CharField(allow_null=True)
    availableKw = serializers.CharField(allow_null=True)
    stateReportedAt = serializers.CharField(allow_null=True)


class SiteSerializer(CommsSerializer):
    operator = serializers.CharField()
    fsp = serializers.CharField()
    name = serializers.CharField()
    venID = serializers.CharField()
    heartbeatIntervalSeconds = serializers.IntegerField(allow_null=True)
    units = SiteUnitSerializer(many=True)
    transitions = CommsTransitionSerializer(many=True)


class DispatchSerializer(serializers.Serializer):
    networkOperator = serializers.CharField()
    reference = serializers.CharField()
    fsp = serializers.CharField()
    unit = serializers.CharField()
    contract = serializers.CharField()
    product = serializers.CharField()
    status = serializers.ChoiceField(choices=list(STATUSES))
    urgency = serializers.ChoiceField(choices=list(URGENCIES))
    revision = serializers.IntegerField()
    serviceStart = serializers.CharField()
    serviceEnd = serializers.CharField()
    eventID = serializers.CharField(allow_null=True)
    programID = serializers.CharField(allow_null=True)
    created = serializers.CharField()
    modified = serializers.CharField()
    comms = CommsSerializer(help_text="the comms state of the unit's site")
    current = RevisionSerializer(allow_null=True)
    revisions = RevisionSerializer(many=True, required=False)


class SiteKeyRequestSerializer(serializers.Serializer):
    jwk = serializers.JSONField(help_text="public Ed25519 JWK with a kid (no 'd')")
    fsp = serializers.CharField(required=False, help_text="must be the caller's own FSP")
    site = serializers.CharField(required=False, help_text="must be the caller's own site")


class SiteKeySerializer(serializers.Serializer):
    kid = serializers.CharField()
    jwk = serializers.JSONField()
    created = serializers.CharField()
    revokedAt = serializers.CharField(allow_null=True)
    site = serializers.CharField(help_text="OPERATOR/FSP/SITE")


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
    fsp = serializers.CharField()
    unit = serializers.CharField()
    type = serializers.ChoiceField(choices=["USAGE", "DEMAND", "BASELINE"])
    start = serializers.CharField()
    end = serializers.CharField()
    value = serializers.CharField(allow_null=True,
                                  help_text="kWh (USAGE) or kW; + import, - export; "
                                            "null when flagged MISSING")
    units = serializers.ChoiceField(choices=["KWH", "KW"])
    quality = serializers.ChoiceField(choices=["OK", "MISSING", "ESTIMATED", "BAD"])
    version = serializers.IntegerField()
    receivedAt = serializers.CharField()
    reportID = serializers.CharField()
    supersededAt = serializers.CharField(allow_null=True)


class IntakeProblemSerializer(serializers.Serializer):
    unit = serializers.CharField()
    type = serializers.CharField()
    start = serializers.CharField()
    outcome = serializers.ChoiceField(choices=["invalid", "unknown_unit", "conflict", "late"])
    detail = serializers.CharField()


class ReportIntakeSerializer(serializers.Serializer):
    site = serializers.CharField()
    kind = serializers.ChoiceField(choices=["availability", "metering"])
    reportID = serializers.CharField()
    receivedAt = serializers.CharField()
    stored = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    corrections = serializers.IntegerField()
    rejected = serializers.IntegerField()
    problems = IntakeProblemSerializer(many=True)


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
