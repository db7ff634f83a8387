"""Read-only admin views of conformance runs and injected faults."""

from django.contrib import admin

from conformance.models import ConformanceRun, InjectedFault, SandboxFsp


class ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ConformanceRun)
class ConformanceRunAdmin(ReadOnly):
    list_display = ("id", "site", "status", "scenarios", "created", "finished")
    list_filter = ("status",)


@admin.register(InjectedFault)
class InjectedFaultAdmin(ReadOnly):
    list_display = ("client_id", "scope", "starts_at", "ends_at", "retry_after_s", "run")


@admin.register(SandboxFsp)
class SandboxFspAdmin(ReadOnly):
    list_display = ("fsp", "remote_addr", "created")
