"""Staff logins against a real VTN over HTTPS: the admin needs the same second factor as
the console and shows no TOTP key; console and admin logins share one throttle
(progressive delay, then a lockout an administrator clears, all in the security log),
which slows guesses at a named account without locking its owner out.

Requests come from several loopback addresses (127.0.0.1, 127.0.0.2, ...) so that the
per-address and per-account halves of the throttle can be told apart.
"""

from __future__ import annotations

import base64
import getpass
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import requests
from requests.adapters import HTTPAdapter

from tests.fixtures.console import totp_code
from tests.fixtures.requirements import starts_processes
from tests.fixtures.server import ROOT, E2EDatabase, PinnedSession, VtnServer

FREE, MAX_DELAY, LOCKOUT = 3, 4, 10


class SourceAddressAdapter(HTTPAdapter):
    """Connect from a given loopback address."""

    def __init__(self, source: str) -> None:
        self.source = source
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.source, 0)
        return super().init_poolmanager(*args, **kwargs)


@pytest.fixture(scope="module")
@starts_processes
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VtnServer]:
    workdir = tmp_path_factory.mktemp("login_throttle_vtn")
    database = E2EDatabase(os.environ.get("DATABASE_URL", ""), workdir)
    vtn = VtnServer(workdir, database)
    vtn.env.update({
        "LOGIN_THROTTLE_FREE_FAILURES": str(FREE), "LOGIN_THROTTLE_BASE_DELAY_SECONDS": "2",
        "LOGIN_THROTTLE_MAX_DELAY_SECONDS": str(MAX_DELAY),
        "LOGIN_THROTTLE_LOCKOUT_FAILURES": str(LOCKOUT),
    })
    try:
        vtn.prepare()
        vtn.start()
        yield vtn
    finally:
        vtn.stop(graceful=False)
        database.drop()


def browser(server: VtnServer, source: str = "127.0.0.1") -> requests.Session:
    session = PinnedSession()
    session.verify = server.ca_bundle
    session.mount("https://", SourceAddressAdapter(source))
    return session


def csrf_of(page: requests.Response) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert match, page.text[:2000]
    return match.group(1)


def staff(server: VtnServer, username: str, role: str = "administrator") -> dict:
    return json.loads(server.manage("console_user", "create", "--username", username,
                                    "--role", role).stdout)


def code(user: dict) -> str:
    return totp_code(user["otpauth_uri"])


def console_login(session: requests.Session, server: VtnServer, username: str,
                  password: str, otp: str) -> requests.Response:
    url = f"{server.base_url}/console/login"
    form = session.get(url, timeout=30)
    return session.post(url, data={"csrfmiddlewaretoken": csrf_of(form), "username": username,
                                   "password": password, "otp_token": otp},
                        headers={"Referer": url}, allow_redirects=False, timeout=30)


def admin_login(session: requests.Session, server: VtnServer, username: str,
                password: str, otp: str | None = None) -> requests.Response:
    url = f"{server.base_url}/admin/login/"
    form = session.get(url, timeout=30)
    data = {"csrfmiddlewaretoken": csrf_of(form), "username": username, "password": password,
            "next": "/admin/"}
    if otp is not None:
        data["otp_token"] = otp
    return session.post(url, data=data, headers={"Referer": url}, allow_redirects=False,
                        timeout=30)


def superuser(server: VtnServer, username: str) -> dict:
    password = f"{username}-Pa55-word-long"
    env = {**server.env, "DJANGO_SUPERUSER_PASSWORD": password}
    subprocess.run([sys.executable, "manage.py", "createsuperuser", "--no-input",
                    "--username", username, "--email", f"{username}@example.org"],
                   cwd=ROOT, env=env, check=True, capture_output=True, timeout=60)
    made = json.loads(server.manage("console_user", "totp", "--username", username).stdout)
    return {"username": username, "password": password, "otpauth_uri": made["otpauth_uri"]}


def security_events(server: VtnServer, client: str) -> list[dict]:
    out = server.manage("security_log", "--client", client).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def next_code(user: dict) -> str:
    """The code of the next 30-second step: django-otp accepts each step once, and one
    step ahead is within its tolerance, so a second login need not wait for a new step."""
    return totp_code(user["otpauth_uri"], drift=1)


# --- the admin ---------------------------------------------------------------------------------


def test_the_admin_refuses_a_password_only_login(server: VtnServer) -> None:
    root = superuser(server, "root1")
    session = browser(server, "127.0.0.5")
    refused = admin_login(session, server, root["username"], root["password"])
    assert refused.status_code == 200 and "errornote" in refused.text
    assert session.get(f"{server.base_url}/admin/", allow_redirects=False,
                       timeout=30).status_code == 302  # back to the login page
    wrong_code = admin_login(session, server, root["username"], root["password"], "000000")
    assert wrong_code.status_code == 200 and "errornote" in wrong_code.text
    time.sleep(2)  # django-otp throttles a device for a second after a wrong code
    ok = admin_login(session, server, root["username"], root["password"], code(root))
    assert ok.status_code == 302, re.findall(r'class="errornote"[^<]*<?[^<]*', ok.text)
    index = session.get(f"{server.base_url}/admin/", allow_redirects=False, timeout=30)
    assert index.status_code == 200 and "Site administration" in index.text


def test_the_admin_never_shows_a_totp_key(server: VtnServer) -> None:
    root = superuser(server, "root2")
    victim = staff(server, "victim-key")
    secret = re.search(r"secret=([A-Z2-7]+)", victim["otpauth_uri"]).group(1)
    hex_key = base64.b32decode(secret + "=" * (-len(secret) % 8)).hex()
    session = browser(server, "127.0.0.6")
    assert admin_login(session, server, root["username"], root["password"],
                       code(root)).status_code == 302
    listing = session.get(f"{server.base_url}/admin/otp_totp/totpdevice/", timeout=30)
    assert listing.status_code == 200
    ids = re.findall(r"/admin/otp_totp/totpdevice/(\d+)/change/", listing.text)
    assert ids
    pages = [listing.text, session.get(f"{server.base_url}/admin/otp_totp/totpdevice/add/",
                                       timeout=30).text]
    for device_id in ids:
        change = session.get(f"{server.base_url}/admin/otp_totp/totpdevice/{device_id}"
                             "/change/", timeout=30)
        assert change.status_code == 200
        pages.append(change.text)
        for view in ("config", "qrcode"):
            assert session.get(f"{server.base_url}/admin/otp_totp/totpdevice/{device_id}/"
                               f"{view}/", timeout=30).status_code == 403
    for text in pages:
        assert hex_key not in text and secret not in text
        assert 'name="key"' not in text


def test_the_admin_can_be_switched_off() -> None:
    probe = ("import django; django.setup(); from django.urls import resolve, Resolver404\n"
             "try:\n    resolve('/admin/'); print('served')\n"
             "except Resolver404:\n    print('absent')\n")
    answers = {}
    for value in ("true", "false"):
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings",
               "VTN_ADMIN_ENABLED": value}
        answers[value] = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env,
                                        capture_output=True, text=True, timeout=60,
                                        check=True).stdout.strip()
    assert answers == {"true": "served", "false": "absent"}


# --- the throttle ------------------------------------------------------------------------------


def test_thirty_wrong_passwords_are_delayed_then_locked_and_an_administrator_clears_it(
        server: VtnServer) -> None:
    victim = staff(server, "victim")
    other = staff(server, "other", role="viewer")
    attacker = browser(server, "127.0.0.2")
    statuses, messages = [], []
    for _ in range(30):
        response = console_login(attacker, server, "victim", "wrong-password", "123456")
        statuses.append(response.status_code)
        messages.append(response.text)
    assert statuses[:FREE] == [401] * FREE
    assert set(statuses[FREE:]) == {429}
    assert "Too many failed logins: wait" in messages[FREE]
    assert "locked" in messages[-1]
    # The right password from the attacker's address does not get in either.
    locked = console_login(attacker, server, "victim", victim["password"], code(victim))
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > MAX_DELAY

    # Another account from another address is not affected at all.
    bystander = browser(server, "127.0.0.3")
    assert console_login(bystander, server, "other", other["password"],
                         code(other)).status_code == 302

    # The named user, from their own address, is only delayed: never locked out.
    time.sleep(MAX_DELAY + 0.5)
    owner = browser(server, "127.0.0.4")
    assert console_login(owner, server, "victim", victim["password"],
                         code(victim)).status_code == 302

    listed = json.loads(server.manage("login_lockouts", "list").stdout)
    assert any(row["key"] == "address:127.0.0.2" and row["locked_until"] for row in listed)
    cleared = json.loads(server.manage("login_lockouts", "clear", "--username", "victim",
                                       "--address", "127.0.0.2").stdout)["cleared"]
    assert "address:127.0.0.2" in cleared and "pair:victim|127.0.0.2" in cleared
    assert not any(row["key"].endswith("127.0.0.2")
                   for row in json.loads(server.manage("login_lockouts", "list").stdout))

    assert console_login(attacker, server, "victim", victim["password"],
                         next_code(victim)).status_code == 302

    kinds = [event["kind"] for event in security_events(server, "console:victim")]
    assert kinds.count("login_failed") == FREE and "login_locked" in kinds
    unlocked = {event["detail"].split()[0]
                for event in security_events(server, f"manage.py:{getpass.getuser()}")
                if event["kind"] == "login_unlocked"}
    assert {"address:127.0.0.2", "pair:victim|127.0.0.2"} <= unlocked


def test_the_admin_login_shares_the_throttle(server: VtnServer) -> None:
    root = superuser(server, "root3")
    attacker = browser(server, "127.0.0.7")
    statuses = [admin_login(attacker, server, root["username"], "wrong-password").status_code
                for _ in range(LOCKOUT + 2)]
    assert statuses[:FREE] == [200] * FREE  # the admin's form, with its error
    assert set(statuses[FREE:]) == {429}
    throttled = admin_login(attacker, server, root["username"], root["password"], code(root))
    assert throttled.status_code == 429 and "locked" in throttled.text
    assert "login_locked" in [event["kind"] for event in security_events(server, "admin:root3")]
