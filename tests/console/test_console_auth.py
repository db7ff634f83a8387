"""Operator console: login needs the password and a valid TOTP code; no page is
reachable without both; staff accounts are managed with `console_user`."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests.fixtures.console import log_in, totp_code

PAGES = ["/console/", "/console/fragments/dashboard", "/console/registry",
         "/console/dispatches", "/console/statements", "/console/audit"]


def test_console_user_create_prints_a_password_and_a_provisioning_uri(console_staff):
    made = console_staff("dispatcher", "dora")
    assert len(made.password) >= 20
    assert made.otpauth_uri.startswith("otpauth://totp/")
    assert "secret=" in made.otpauth_uri
    out = StringIO()
    call_command("console_user", "list", stdout=out)
    listed = json.loads(out.getvalue())
    assert [(u["username"], u["role"], u["totp_devices"]) for u in listed] == [
        ("dora", "dispatcher", 1)]
    assert "password" not in listed[0]


def test_console_user_refuses_an_existing_username_and_an_unknown_role(console_staff):
    console_staff("viewer", "vic")
    with pytest.raises(CommandError):
        call_command("console_user", "create", "--username", "vic", "--role", "viewer",
                     stdout=StringIO())
    with pytest.raises(CommandError):
        call_command("console_user", "create", "--username", "x", "--role", "king",
                     stdout=StringIO(), stderr=StringIO())


def test_login_with_password_and_current_code_reaches_the_dashboard(client, console_staff):
    user = console_staff("viewer")
    response = client.post("/console/login", {
        "username": user.username, "password": user.password,
        "otp_token": totp_code(user.otpauth_uri)})
    assert response.status_code == 302 and response["Location"] == "/console/"
    page = client.get("/console/")
    assert page.status_code == 200
    assert b"<h1>Dashboard</h1>" in page.content


def test_a_wrong_code_is_refused_and_the_session_stays_anonymous(client, console_staff):
    user = console_staff("administrator")
    good = totp_code(user.device)
    wrong = f"{(int(good) + 1) % 1_000_000:06d}"
    response = client.post("/console/login", {"username": user.username,
                                               "password": user.password, "otp_token": wrong})
    assert response.status_code == 401
    assert b"not right" in response.content
    assert client.get("/console/").status_code == 302


def test_a_wrong_password_with_the_right_code_is_refused(client, console_staff):
    user = console_staff("administrator")
    response = client.post("/console/login", {"username": user.username,
                                               "password": "not-it",
                                               "otp_token": totp_code(user.device)})
    assert response.status_code == 401
    assert client.get("/console/").status_code == 302


def test_password_alone_does_not_open_any_page(client, console_staff):
    user = console_staff("administrator")
    client.login(username=user.username, password=user.password)  # first factor only
    for url in PAGES:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/console/login?next="), url


@pytest.mark.parametrize("url", PAGES)
def test_anonymous_requests_are_sent_to_the_login_page(client, db, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/console/login")


def test_a_code_is_used_once(client, console_staff):
    user = console_staff("viewer")
    code = totp_code(user.device)
    log_in_ok = client.post("/console/login", {"username": user.username,
                                                "password": user.password, "otp_token": code})
    assert log_in_ok.status_code == 302
    client.post("/console/logout")
    again = client.post("/console/login", {"username": user.username,
                                            "password": user.password, "otp_token": code})
    assert again.status_code == 401


def test_logout_ends_the_session_and_needs_post(client, console_staff):
    log_in(client, console_staff("viewer"))
    assert client.get("/console/logout").status_code == 405
    assert client.post("/console/logout").status_code == 302
    assert client.get("/console/").status_code == 302


def test_forms_carry_a_csrf_token_and_posts_without_it_are_refused(console_staff):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    login_page = client.get("/console/login")
    assert b'name="csrfmiddlewaretoken"' in login_page.content
    user = console_staff("viewer")
    response = client.post("/console/login", {"username": user.username,
                                               "password": user.password,
                                               "otp_token": totp_code(user.device)})
    assert response.status_code == 403


def test_a_disabled_user_is_logged_out_and_cannot_log_in(client, console_staff):
    user = console_staff("dispatcher")
    log_in(client, user)
    call_command("console_user", "disable", "--username", user.username, stdout=StringIO())
    assert client.get("/console/").status_code == 302
    response = client.post("/console/login", {"username": user.username,
                                               "password": user.password,
                                               "otp_token": totp_code(user.device, drift=1)})
    assert response.status_code == 401


def test_set_role_changes_what_the_user_may_do(client, console_staff):
    user = console_staff("viewer")
    log_in(client, user)
    assert client.get("/console/dispatches/new").status_code == 403
    call_command("console_user", "set-role", "--username", user.username, "--role",
                 "dispatcher", stdout=StringIO())
    assert client.get("/console/dispatches/new").status_code == 200


def test_sessions_expire(settings):
    assert settings.SESSION_COOKIE_AGE <= 12 * 3600
    assert settings.SESSION_EXPIRE_AT_BROWSER_CLOSE is True
