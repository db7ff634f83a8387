"""Request bodies of the sandbox API, for its OpenAPI description (drf-spectacular) and
the property-based test that fuzzes it. The views parse the bodies themselves."""

from __future__ import annotations

from rest_framework import serializers


class UnitSerializer(serializers.Serializer):
    reference = serializers.CharField(help_text="unit reference, 1-63 letters, digits, . _ -")
    capacityKw = serializers.DecimalField(max_digits=12, decimal_places=3)
    direction = serializers.ChoiceField(choices=["import", "export"], required=False)


class OnboardSerializer(serializers.Serializer):
    fsp = serializers.CharField(help_text="the FSP name to register in the sandbox")
    units = UnitSerializer(many=True)


class RunRequestSerializer(serializers.Serializer):
    scenario = serializers.CharField(required=False, help_text="a scenario name, or all")
    pollIntervalSeconds = serializers.FloatField(required=False)
    marginSeconds = serializers.FloatField(required=False)
    deadlineSeconds = serializers.FloatField(required=False)
    heartbeatIntervalSeconds = serializers.FloatField(required=False)
    faultSeconds = serializers.FloatField(required=False)
    retryAfterSeconds = serializers.FloatField(required=False)
    meteringDeadlineSeconds = serializers.FloatField(required=False)
    pushWithinSeconds = serializers.FloatField(required=False)
