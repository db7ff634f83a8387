"""Settlement API request and response bodies. The response serializer documents a
statement (drf-spectacular) and renders it, for the API and the ``settle`` command."""

from __future__ import annotations

from rest_framework import serializers

from settlement.calc.periods import utc_text
from settlement.models import Statement


class UtcDateTimeField(serializers.DateTimeField):
    """An aware datetime rendered as ISO 8601 UTC to the second (``utc_text``)."""

    def to_representation(self, value):
        return utc_text(value)


class ComputeSerializer(serializers.Serializer):
    operator = serializers.CharField()
    contract = serializers.CharField()
    month = serializers.RegexField(r"^\d{4}-\d{2}$")


class DisputeLineSerializer(serializers.Serializer):
    line = serializers.IntegerField(min_value=1)
    reason = serializers.CharField(allow_blank=True, default="", max_length=1000)


class DisputeSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=1000)
    lines = DisputeLineSerializer(many=True, required=False, default=list)


class ResolveSerializer(serializers.Serializer):
    resolution = serializers.CharField()


class MonthField(serializers.CharField):
    """A statement's month (stored as its first day) rendered ``YYYY-MM``."""

    def to_representation(self, value):
        return f"{value:%Y-%m}"


class DisputeOutSerializer(serializers.Serializer):
    reason = serializers.CharField()
    lines = serializers.JSONField()
    raisedAt = UtcDateTimeField(source="raised_at")
    resolution = serializers.SerializerMethodField()
    resolvedAt = UtcDateTimeField(source="resolved_at", allow_null=True)

    def get_resolution(self, dispute) -> str | None:
        return dispute.resolution or None


class StatementSerializer(serializers.Serializer):
    """A statement (:class:`StatementDocumentSerializer`: with its document, see
    docs/settlement.md)."""

    id = serializers.IntegerField(source="pk")
    operator = serializers.CharField(source="contract.operator.code")
    contract = serializers.CharField(source="contract.identifier")
    fsp = serializers.CharField(source="contract.fsp.identifier")
    product = serializers.CharField(source="contract.product.code")
    month = MonthField(help_text="YYYY-MM (Europe/London)")
    version = serializers.IntegerField()
    status = serializers.ChoiceField(choices=Statement.Status.values)
    netGbp = serializers.CharField(source="net_gbp")
    heldLines = serializers.IntegerField(source="held_lines")
    totals = serializers.DictField(
        source="document.totals", help_text="the document's totals: money (GBP), delivered "
        "flexibility and power deficiency (MWh), reactive power (MVArh), held lines")
    sha256 = serializers.CharField()
    computedAt = UtcDateTimeField(source="computed_at")
    issuedAt = UtcDateTimeField(source="issued_at", allow_null=True)
    answeredAt = UtcDateTimeField(source="answered_at", allow_null=True)
    finalisedAt = UtcDateTimeField(source="finalised_at", allow_null=True)
    disputes = DisputeOutSerializer(many=True, source="disputes.all")
    document = serializers.DictField(help_text="see docs/settlement.md")

    with_document = False  # StatementDocumentSerializer: True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not self.with_document:
            self.fields.pop("document")


class StatementDocumentSerializer(StatementSerializer):
    """A statement with its document."""

    with_document = True


