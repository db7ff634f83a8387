"""`manage.py console_user <action>`: operator console staff accounts.

``create`` makes a user with a role and a TOTP device and prints, once, the generated
password and the ``otpauth://`` URI to load into an authenticator app; ``list``,
``set-role`` and ``disable`` manage them; ``totp`` gives an existing user (a superuser made
by ``createsuperuser``, who needs a second factor for the admin) a TOTP device and prints
its URI once. Output is JSON.
"""

from __future__ import annotations

import json
import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice

from console.permissions import ROLES, role_of
from dispatch import fsp_office, scope
from dispatch.registry import RegistryError
from vtn.errors import Problem


class Command(BaseCommand):
    help = "Operator console staff: create (with a TOTP device), list, set-role, totp, disable."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, parser_class=type(parser))
        create = sub.add_parser(
            "create", help="create a staff user with a role and a TOTP device",
            description="Prints the generated password and the otpauth:// provisioning URI "
                        "once; neither can be shown again.")
        create.add_argument("--username", required=True)
        create.add_argument("--role", required=True, choices=ROLES)
        create.add_argument("--email", default="")
        create.add_argument("--operator", action="append", default=[], dest="operators",
                            help="network operator code the user works for (repeat for a "
                                 "shared service company); none: the user sees nothing until "
                                 "`manage.py operator_scope set --user ...`")
        fsp = sub.add_parser(
            "create-fsp", help="create a user of an FSP's staff (its own pages, with TOTP)",
            description="The user sees the FSP's sites, dispatches, acknowledgements, "
                        "availability and statements (with every registration sharing its "
                        "FSP reference) at /console/fsp; the commercial role also accepts "
                        "or disputes statements. Prints the password and otpauth:// URI once.")
        fsp.add_argument("--username", required=True)
        fsp.add_argument("--operator", required=True)
        fsp.add_argument("--fsp", required=True)
        fsp.add_argument("--role", required=True, choices=["read_only", "commercial"],
                         dest="fsp_role")
        fsp.add_argument("--email", default="")
        sub.add_parser("list", help="every console user with role, state and last login")
        set_role = sub.add_parser("set-role", help="change a user's role")
        set_role.add_argument("--username", required=True)
        set_role.add_argument("--role", required=True, choices=ROLES)
        totp = sub.add_parser(
            "totp", help="give an existing user (e.g. a superuser) a new TOTP device",
            description="Replaces the user's TOTP devices with a new one and prints its "
                        "otpauth:// provisioning URI once.")
        totp.add_argument("--username", required=True)
        disable = sub.add_parser("disable", help="disable a user (their sessions stop working)")
        disable.add_argument("--username", required=True)

    def handle(self, *args, action: str, **options) -> None:
        result = getattr(self, f"_{action.replace('-', '_')}")(**options)
        self.stdout.write(json.dumps(result, indent=2))

    @staticmethod
    def _user(username: str):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user {username!r}")
        return user

    @staticmethod
    def _assign_role(user, role: str) -> None:
        user.groups.remove(*Group.objects.filter(name__in=ROLES))
        user.groups.add(Group.objects.get(name=role))

    @staticmethod
    def _describe(user) -> dict:
        return {"username": user.username, "email": user.email, "role": role_of(user)
                if user.is_active else None, "active": user.is_active,
                "roles": sorted(user.groups.filter(name__in=ROLES).values_list("name",
                                                                              flat=True)),
                "operators": sorted(scope.operators_of_user(user)),
                "totp_devices": TOTPDevice.objects.filter(user=user, confirmed=True).count(),
                "last_login": user.last_login.isoformat() if user.last_login else None}

    @transaction.atomic
    def _create(self, *, username: str, role: str, email: str, operators: list[str],
                **_) -> dict:
        users = get_user_model().objects
        if users.filter(username=username).exists():
            raise CommandError(f"a user {username!r} already exists")
        password = secrets.token_urlsafe(18)
        user = users.create_user(username=username, email=email, password=password)
        self._assign_role(user, role)
        try:
            codes = scope.set_operators(user=user, operators=operators, changed_by="cli")
        except RegistryError as exc:
            raise CommandError(str(exc)) from exc
        device = TOTPDevice.objects.create(user=user, name="console", confirmed=True)
        return {"username": username, "role": role, "email": email, "password": password,
                "operators": codes, "otpauth_uri": device.config_url}

    @transaction.atomic
    def _create_fsp(self, *, username: str, operator: str, fsp: str, fsp_role: str,
                    email: str, **_) -> dict:
        users = get_user_model().objects
        if users.filter(username=username).exists():
            raise CommandError(f"a user {username!r} already exists")
        password = secrets.token_urlsafe(18)
        user = users.create_user(username=username, email=email, password=password)
        try:
            fsp_office.grant_user(user=user, operator=operator, fsp=fsp, role=fsp_role)
        except Problem as exc:
            raise CommandError(str(exc.detail)) from exc
        device = TOTPDevice.objects.create(user=user, name="console", confirmed=True)
        return {"username": username, "operator": operator.upper(), "fsp": fsp,
                "fsp_role": fsp_role, "password": password, "otpauth_uri": device.config_url}

    def _list(self, **_) -> list[dict]:
        users = get_user_model().objects.filter(groups__name__in=ROLES).distinct()
        return [self._describe(user) for user in users.order_by("username")]

    @transaction.atomic
    def _set_role(self, *, username: str, role: str, **_) -> dict:
        user = self._user(username)
        self._assign_role(user, role)
        return self._describe(user)

    @transaction.atomic
    def _totp(self, *, username: str, **_) -> dict:
        user = self._user(username)
        TOTPDevice.objects.filter(user=user).delete()
        device = TOTPDevice.objects.create(user=user, name="console", confirmed=True)
        return {"username": username, "otpauth_uri": device.config_url}

    def _disable(self, *, username: str, **_) -> dict:
        user = self._user(username)
        user.is_active = False
        user.save(update_fields=["is_active"])
        return self._describe(user)
