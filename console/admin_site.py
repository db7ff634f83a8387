"""The Django admin site: the same second factor as the console (django-otp's
OTPAdminSite) and the same login throttle (``console.login_throttle``), for superusers
only. The admin shows every network operator's records unscoped, so it is the tool of the
VTN's cross-operator administrators; an operator's staff use the console, which is scoped
by their operator grants."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django_otp import devices_for_user
from django_otp.admin import OTPAdminAuthenticationForm, OTPAdminSite

from console import login_throttle
from vtn.auth.mtls import client_address


class AdminLoginForm(OTPAdminAuthenticationForm):
    """django-otp's admin login form, in one step as the console's: a user with one
    confirmed device (as ``manage.py console_user`` makes) need not choose it."""

    def _chosen_device(self, user):
        device = super()._chosen_device(user)
        if device is None:
            devices = list(devices_for_user(user, confirmed=True))
            if len(devices) == 1:
                device = devices[0]
        return device


class VtnAdminSite(OTPAdminSite):
    """Only superusers verified by a TOTP device reach the admin; logins are throttled."""

    site_header = "GB flexibility VTN administration"
    login_form = AdminLoginForm

    def __init__(self, name: str = "admin") -> None:
        super().__init__(name)

    def has_permission(self, request: HttpRequest) -> bool:
        """Superusers who passed both factors; staff flags and model permissions alone
        admit nobody (they would see every operator's records)."""
        return super().has_permission(request) and request.user.is_superuser

    def login(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        if request.method != "POST":
            return super().login(request, extra_context)
        username = request.POST.get("username", "")
        address = client_address(request)
        refusal = login_throttle.check(username=username, address=address, door="admin")
        if refusal is not None:
            response = TemplateResponse(request, "admin/login_throttled.html",
                                        {**self.each_context(request),
                                         "title": "Log in", "message": refusal.message},
                                        status=429)
            response["Retry-After"] = str(refusal.retry_after)
            return response
        response = super().login(request, extra_context)
        user = getattr(request, "user", None)
        # The form sets otp_device on the user once both factors are right.
        if response.status_code == 302 and user is not None and user.is_authenticated \
                and getattr(user, "otp_device", None) is not None:
            login_throttle.succeeded(username=username, address=address)
        else:
            login_throttle.failed(username=username, address=address, door="admin")
        return response

