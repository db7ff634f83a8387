"""Operator API request and response bodies (camelCase like the OpenADR API)."""

from __future__ import annotations

from decimal import Decimal

from rest_framework import serializers

from dispatch.rules import STATUSES, URGENCIES, Timing

UNIT_SERVICE_TYPES = {"KW": "real", "MW": "real", "KVAR": "reactive"}


class ServiceTimingSerializer(serializers.Serializer):
    setpointTime = serializers.DateTimeField(help_text="UTC; the setpoint is reached by then")
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
    serviceStart = serializers.DateTimeField()
    serviceEnd = serializers.DateTimeField()
    status = serializers.ChoiceField(choices=["pre-notify", "run"], default="run")
    urgency = serializers.ChoiceField(choices=list(URGENCIES), required=False)
    serviceTimings = ServiceTimingSerializer(many=True, allow_empty=False)
    reason = serializers.CharField(required=False, default="", allow_blank=True)


class ReviseSerializer(serializers.Serializer):
    serviceStart = serializers.DateTimeField(required=False)
    serviceEnd = serializers.DateTimeField(required=False)
    status = serializers.ChoiceField(choices=["pre-notify", "run"], required=False)
    urgency = serializers.ChoiceField(choices=list(URGENCIES), required=False)
    serviceTimings = ServiceTimingSerializer(many=True, required=False, allow_empty=False)
    expectedRevision = serializers.IntegerField(required=False, min_value=1,
                                                help_text="refuse (409) if not current")
    reason = serializers.CharField(required=False, default="", allow_blank=True)


class StopSerializer(serializers.Serializer):
    expectedRevision = serializers.IntegerField(required=False, min_value=1)
    reason = serializers.CharField(required=False, default="", allow_blank=True)


# --- responses (documentation) ------------------------------------------------------------------

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
    current = RevisionSerializer(allow_null=True)
    revisions = RevisionSerializer(many=True, required=False)
