"""Settlement terms are edited here; statements and disputes change through the API."""

from django.contrib import admin

from settlement.models import DispatchSettlement, Dispute, SettlementTerms, Statement
from vtn.admin import ReadMostlyAdmin


@admin.register(SettlementTerms)
class SettlementTermsAdmin(admin.ModelAdmin):
    list_display = ("contract", "period_minutes", "penalty_rate_gbp", "penalty_basis",
                    "pay_over_delivery", "meter_window_hours")


@admin.register(Statement)
class StatementAdmin(ReadMostlyAdmin):
    list_display = ("contract", "month", "version", "status", "net_gbp", "held_lines",
                    "computed_at", "issued_at")
    list_filter = ("status",)


@admin.register(Dispute)
class DisputeAdmin(ReadMostlyAdmin):
    list_display = ("statement", "raised_by", "raised_at", "resolved_at")


@admin.register(DispatchSettlement)
class DispatchSettlementAdmin(ReadMostlyAdmin):
    list_display = ("dispatch", "status", "net_gbp", "computed_at")
