"""Read-mostly admin: the registry and dispatches change through services and commands."""

from django.contrib import admin

from dispatch.models import (
    Acknowledgement,
    AuditEntry,
    AvailabilityDeclaration,
    Contract,
    DispatchInstruction,
    DispatchRevision,
    DispatchUnit,
    Fsp,
    FspSite,
    MeterReading,
    NetworkOperator,
    OperatorAlert,
    OperatorGrant,
    OperatorProgram,
    Product,
    ProductParameterChange,
    ReportIntake,
    SigningKey,
    SiteSigningKey,
)
from vtn.admin import ReadMostlyAdmin


@admin.register(NetworkOperator)
class NetworkOperatorAdmin(ReadMostlyAdmin):
    list_display = ("code", "name", "created")


@admin.register(OperatorGrant)
class OperatorGrantAdmin(ReadMostlyAdmin):
    list_display = ("operator", "client", "user", "created")
    list_filter = ("operator",)


@admin.register(OperatorAlert)
class OperatorAlertAdmin(ReadMostlyAdmin):
    list_display = ("raised_at", "operator", "kind", "site", "delivery", "attempts")
    list_filter = ("operator", "kind", "delivery")


@admin.register(Product)
class ProductAdmin(ReadMostlyAdmin):
    """The products' defaults. An operator sets its own values with `fsp products --set`
    or the dispatch API, which validates, audits and publishes them in its program."""

    list_display = ("code", "name", "notice_period", "ramp_time", "quantity",
                    "setpoint_types", "heartbeat_interval", "availability_paid")

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(OperatorProgram)
class OperatorProgramAdmin(ReadMostlyAdmin):
    list_display = ("operator", "product", "program", "parameters")


@admin.register(ProductParameterChange)
class ProductParameterChangeAdmin(ReadMostlyAdmin):
    list_display = ("time", "operator", "product", "changed_by", "after", "reason")
    list_filter = ("operator", "product")

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Fsp)
class FspAdmin(ReadMostlyAdmin):
    list_display = ("identifier", "operator", "name", "created")
    list_filter = ("operator",)


@admin.register(FspSite)
class FspSiteAdmin(ReadMostlyAdmin):
    list_display = ("name", "fsp", "ven", "created")


@admin.register(DispatchUnit)
class DispatchUnitAdmin(ReadMostlyAdmin):
    list_display = ("reference", "fsp", "site", "capacity_kw", "capacity_kvar", "direction",
                    "zone")
    list_filter = ("direction", "fsp__operator")


@admin.register(Contract)
class ContractAdmin(ReadMostlyAdmin):
    list_display = ("identifier", "operator", "fsp", "product", "availability_price",
                    "utilisation_price", "baseline_method", "reactive_baseline_method")
    list_filter = ("operator", "product")


@admin.register(SigningKey)
class SigningKeyAdmin(ReadMostlyAdmin):
    list_display = ("kid", "operator", "created", "retired_at", "verify_until")
    exclude = ("private_key_pem",)


class RevisionInline(admin.TabularInline):
    model = DispatchRevision
    fields = ("number", "status", "urgency", "instruction_time", "signing_key", "issued_by")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(DispatchInstruction)
class DispatchInstructionAdmin(ReadMostlyAdmin):
    list_display = ("reference", "operator", "unit", "status", "urgency", "revision",
                    "service_start", "service_end")
    list_filter = ("status", "operator")
    inlines = [RevisionInline]


@admin.register(DispatchRevision)
class DispatchRevisionAdmin(ReadMostlyAdmin):
    list_display = ("instruction", "number", "status", "instruction_time", "signing_key")

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(SiteSigningKey)
class SiteSigningKeyAdmin(ReadMostlyAdmin):
    list_display = ("site", "kid", "created", "revoked_at")


@admin.register(Acknowledgement)
class AcknowledgementAdmin(ReadMostlyAdmin):
    list_display = ("revision", "stage", "outcome", "result", "received_at", "kid")
    list_filter = ("outcome", "stage")

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadMostlyAdmin):
    list_display = ("sequence", "time", "kind", "operator_code", "dispatch_ref", "hash")

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ReportIntake)
class ReportIntakeAdmin(ReadMostlyAdmin):
    list_display = ("site", "kind", "report_id", "received_at", "stored", "duplicates",
                    "corrections", "rejected")
    list_filter = ("kind",)


@admin.register(MeterReading)
class MeterReadingAdmin(ReadMostlyAdmin):
    list_display = ("unit", "reading_type", "start", "end", "value", "quality", "version",
                    "superseded_at")
    list_filter = ("reading_type", "quality")


@admin.register(AvailabilityDeclaration)
class AvailabilityDeclarationAdmin(ReadMostlyAdmin):
    list_display = ("unit", "start", "end", "available_kw", "declared_at", "superseded_at")

