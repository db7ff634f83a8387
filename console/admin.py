"""Admin for what the console owns, and a TOTP device admin that never shows a secret."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django_otp.plugins.otp_totp.admin import TOTPDeviceAdmin
from django_otp.plugins.otp_totp.models import TOTPDevice

from console import login_throttle
from console.models import LoginThrottle


class SecretFreeTOTPDeviceAdmin(TOTPDeviceAdmin):
    """django-otp's TOTP device admin without the key: not on the add or change form, not
    as a QR code (its config and QR views answer 403). Devices are provisioned with
    ``manage.py console_user create``, which shows the provisioning URI once."""

    readonly_fields = ["created_at", "last_used_at"]

    def get_list_display(self, request):
        return [f for f in super().get_list_display(request) if f != "qrcode_link"]

    def get_fieldsets(self, request, obj=None):
        fieldsets = []
        for name, options in super().get_fieldsets(request, obj):
            fields = [f for f in options["fields"] if f not in ("key", "qrcode_link")]
            if fields:
                fieldsets.append((name, {**options, "fields": fields}))
        return fieldsets

    def config_view(self, request, pk):
        raise PermissionDenied

    qrcode_view = config_view


if admin.site.is_registered(TOTPDevice):
    admin.site.unregister(TOTPDevice)
admin.site.register(TOTPDevice, SecretFreeTOTPDeviceAdmin)


@admin.register(LoginThrottle)
class LoginThrottleAdmin(admin.ModelAdmin):
    """Failed-login counts and lockouts; the "clear" action unlocks (logged)."""

    list_display = ("key", "failures", "last_failure", "locked_until")
    search_fields = ("key",)
    actions = ["clear_selected"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Clear the selected counts and lockouts")
    def clear_selected(self, request, queryset) -> None:
        cleared = []
        for key in queryset.values_list("key", flat=True):
            kind, _, value = key.partition(":")
            username, _, address = value.partition("|") if kind == "pair" else (
                (value, "", "") if kind == "account" else ("", "", value))
            cleared += login_throttle.clear(username=username, address=address,
                                            by=f"admin:{request.user.get_username()}")
        self.message_user(request, f"cleared {len(set(cleared))} keys", messages.SUCCESS)
