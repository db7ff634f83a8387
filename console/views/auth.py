"""Login with password and TOTP (django-otp), and logout."""

from __future__ import annotations

from django.contrib.auth import authenticate
from django.contrib.auth import login as auth_login
from django.contrib.auth import logout as auth_logout
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_http_methods, require_POST
from django_otp import login as otp_login
from django_otp import match_token

from console import login_throttle, permissions
from console.forms import LoginForm
from console.views.common import page
from dispatch import fsp_office
from vtn.auth.mtls import client_address

REFUSED = "The username, password or authenticator code is not right."


def _next(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target.startswith("/console/") and url_has_allowed_host_and_scheme(
            target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return "/console/"


@never_cache
@csrf_protect
@require_http_methods(["GET", "POST"])
def login(request: HttpRequest) -> HttpResponse:
    """Both factors in one form: the code is checked only once the password is right,
    and the session is marked verified (django-otp) only when both are. Attempts go
    through ``console.login_throttle`` (delays, then lockouts), as the admin's do."""
    form = LoginForm(request.POST or None)
    error, status, retry_after = "", 200, None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        address = client_address(request)
        refusal = login_throttle.check(username=data["username"], address=address,
                                       door="console")
        if refusal is not None:
            error, status, retry_after = refusal.message, 429, refusal.retry_after
        else:
            user = authenticate(request, username=data["username"],
                                password=data["password"])
            device = match_token(user, data["otp_token"].strip()) \
                if user is not None else None
            fsp_staff = user is not None and fsp_office.office_of_user(user) is not None
            if user is not None and device is not None and (permissions.role_of(user)
                                                             or fsp_staff):
                login_throttle.succeeded(username=data["username"], address=address)
                auth_login(request, user)
                otp_login(request, device)
                if fsp_staff and not permissions.role_of(user):
                    return redirect("/console/fsp")  # an FSP's staff: its own pages
                return redirect(_next(request))
            login_throttle.failed(username=data["username"], address=address,
                                  door="console")
            error, status = REFUSED, 401
    response = page(request, "console/login.html", {"form": form, "error": error,
                                                    "next": _next(request)}, status=status)
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response


@require_POST
def logout(request: HttpRequest) -> HttpResponse:
    auth_logout(request)
    return redirect("console:login")
