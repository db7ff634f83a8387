"""Settlement: per-contract terms, monthly statements with their versions and the FSP's
answer, and per-dispatch results. Writes go through :mod:`settlement.services`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from django.db import models


class WrittenDocument(dict):
    """A statement document whose canonical JSON is already written (``text``, as its
    digest was taken from): stored as that text rather than encoded a second time."""

    def __init__(self, document: Mapping, text: str) -> None:
        super().__init__(document)
        self.text = text


class DocumentEncoder(json.JSONEncoder):
    """JSON of a stored document: a :class:`WrittenDocument`'s own text, else as usual."""

    def encode(self, o: Any) -> str:
        if type(o) is WrittenDocument:
            return o.text
        return super().encode(o)


class SettlementTerms(models.Model):
    """How a contract is settled beyond its prices (a contract without terms uses the
    defaults shown here)."""

    class PenaltyBasis(models.TextChoices):
        PER_MW_PER_HOUR = "per_mw_per_hour"
        PER_MW_PER_PERIOD = "per_mw_per_period"
        FLAT_PER_PERIOD = "flat_per_period"

    class DeficiencyRule(models.TextChoices):
        SHORTFALL = "shortfall"
        ADJUSTED_BASELINE = "adjusted_baseline"

    contract = models.OneToOneField("dispatch.Contract", on_delete=models.CASCADE,
                                    related_name="settlement_terms")
    period_minutes = models.PositiveSmallIntegerField(default=30)
    penalty_rate_gbp = models.DecimalField(max_digits=12, decimal_places=4, default=0)
    penalty_basis = models.CharField(max_length=24, choices=PenaltyBasis.choices,
                                     default=PenaltyBasis.PER_MW_PER_HOUR)
    scale_below = models.DecimalField(max_digits=5, decimal_places=4, null=True, blank=True,
                                      help_text="pay performance x payment below this")
    nothing_below = models.DecimalField(max_digits=5, decimal_places=4, null=True, blank=True,
                                        help_text="pay nothing below this performance")
    pay_over_delivery = models.BooleanField(default=False)
    deficiency_rule = models.CharField(max_length=24, choices=DeficiencyRule.choices,
                                       default=DeficiencyRule.SHORTFALL)
    meter_window_hours = models.PositiveIntegerField(
        default=48, help_text="hours after a dispatch ends before it is settled")

    def __str__(self) -> str:
        return f"terms of {self.contract}"


class Statement(models.Model):
    """One version of a contract's monthly statement. ``document`` is the statement as
    computed (settlement.statement); it never changes once issued: corrected inputs give
    a new version, and the issued one is marked superseded when the new one is issued."""

    class Status(models.TextChoices):
        DRAFT = "draft"
        ISSUED = "issued"
        ACCEPTED = "accepted"
        DISPUTED = "disputed"
        FINAL = "final"
        SUPERSEDED = "superseded"

    contract = models.ForeignKey("dispatch.Contract", on_delete=models.PROTECT,
                                 related_name="statements")
    month = models.DateField(help_text="first day of the (Europe/London) month")
    version = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT,
                              db_index=True)
    document = models.JSONField(encoder=DocumentEncoder)
    sha256 = models.CharField(max_length=64, help_text="of the canonical document")
    net_gbp = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal("0.00"))
    held_lines = models.PositiveIntegerField(default=0)
    computed_at = models.DateTimeField()
    issued_at = models.DateTimeField(null=True, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    answered_by = models.CharField(max_length=128, blank=True)
    finalised_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-month", "contract", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["contract", "month", "version"],
                                    name="unique_statement_version"),
            models.UniqueConstraint(fields=["contract", "month"],
                                    condition=models.Q(status="draft"),
                                    name="one_draft_statement"),
        ]

    def __str__(self) -> str:
        return f"{self.contract} {self.month:%Y-%m} v{self.version} {self.status}"


class Dispute(models.Model):
    """The FSP's dispute of an issued statement, whole or line by line."""

    statement = models.ForeignKey(Statement, on_delete=models.CASCADE, related_name="disputes")
    reason = models.TextField()
    lines = models.JSONField(default=list, blank=True,
                             help_text='[{"line": n, "reason": "..."}]')
    raised_by = models.CharField(max_length=128)
    raised_at = models.DateTimeField()
    resolution = models.TextField(blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["raised_at", "id"]

    def __str__(self) -> str:
        return f"dispute of {self.statement}"


class DispatchSettlement(models.Model):
    """The latest settlement of one dispatch (recomputed when its inputs change)."""

    class Status(models.TextChoices):
        SETTLED = "settled"
        HELD = "held"

    dispatch = models.OneToOneField("dispatch.DispatchInstruction", on_delete=models.CASCADE,
                                    related_name="settlement")
    status = models.CharField(max_length=8, choices=Status.choices)
    lines = models.JSONField()
    net_gbp = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal("0.00"))
    sha256 = models.CharField(max_length=64)
    computed_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"settlement of {self.dispatch}"
