"""Read-mostly admin so operators can inspect every VTN object from day one."""

from django.contrib import admin

from vtn.models import (
    Client,
    ClientCertificate,
    Event,
    IdempotencyKey,
    IssuedCertificate,
    ObjectOwner,
    Program,
    Report,
    Resource,
    SecurityEvent,
    Subscription,
    TargetLabel,
    Ven,
)


class ReadMostlyAdmin(admin.ModelAdmin):
    """Objects change through the API and services, where the rules live; here we look."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Program)
class ProgramAdmin(ReadMostlyAdmin):
    list_display = ("program_name", "id", "created", "modified")
    search_fields = ("program_name", "id")


@admin.register(Event)
class EventAdmin(ReadMostlyAdmin):
    list_display = ("event_name", "id", "program", "priority", "starts_at", "ends_at")
    list_filter = ("program",)
    search_fields = ("event_name", "id")


@admin.register(Report)
class ReportAdmin(ReadMostlyAdmin):
    list_display = ("report_name", "id", "client_name", "client_id", "event", "created")
    search_fields = ("report_name", "client_name", "client_id", "id")


@admin.register(Subscription)
class SubscriptionAdmin(ReadMostlyAdmin):
    list_display = ("client_name", "id", "client_id", "program", "created")


@admin.register(Ven)
class VenAdmin(ReadMostlyAdmin):
    list_display = ("ven_name", "id", "client_id", "created")
    search_fields = ("ven_name", "client_id", "id")


@admin.register(Resource)
class ResourceAdmin(ReadMostlyAdmin):
    list_display = ("resource_name", "id", "ven", "created")
    search_fields = ("resource_name", "id")


@admin.register(TargetLabel)
class TargetLabelAdmin(ReadMostlyAdmin):
    list_display = ("kind", "object_id", "label")
    list_filter = ("kind",)


@admin.register(ObjectOwner)
class ObjectOwnerAdmin(ReadMostlyAdmin):
    """Which network operator owns each program, ven and subscription (vtn.ownership)."""

    list_display = ("kind", "object_id", "owner")
    list_filter = ("kind", "owner")
    search_fields = ("object_id",)


@admin.register(IdempotencyKey)
class IdempotencyKeyAdmin(ReadMostlyAdmin):
    """What each client's Idempotency-Key created; purged after the retention period."""

    list_display = ("client_id", "key", "object_type", "object_id", "status_code", "created")
    list_filter = ("object_type",)
    search_fields = ("client_id", "key", "object_id")
    date_hierarchy = "created"


@admin.register(Client)
class ClientAdmin(ReadMostlyAdmin):
    list_display = ("name", "role", "client_id", "require_mtls", "revoked", "created")
    list_filter = ("role", "revoked", "require_mtls")


@admin.register(ClientCertificate)
class ClientCertificateAdmin(ReadMostlyAdmin):
    list_display = ("subject", "client", "serial", "sha256", "not_after", "created")
    search_fields = ("subject", "serial", "sha256")


@admin.register(IssuedCertificate)
class IssuedCertificateAdmin(ReadMostlyAdmin):
    """Issue and revoke with `manage.py pki`, which also writes the files and the CRL."""

    list_display = ("subject", "kind", "serial", "not_after", "revoked_at", "issued_at")
    list_filter = ("kind", "fsp")
    search_fields = ("subject", "serial", "sha256", "fsp", "site")

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(SecurityEvent)
class SecurityEventAdmin(ReadMostlyAdmin):
    """The append-only security log: nothing here can be changed or deleted."""

    list_display = ("time", "kind", "client_id", "remote_addr", "cert_sha256", "detail")
    list_filter = ("kind",)
    search_fields = ("client_id", "remote_addr", "cert_sha256", "detail")
    date_hierarchy = "time"

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
