"""`manage.py operator_scope <action>`: which network operators an operator-side identity
(a business-logic API client or a console user) may see and act for.

``set`` replaces an identity's operators (``--operator`` repeated; ``--present`` for every
operator the registry holds now; ``--every`` for every GB network operator, a client for
the whole VTN that the OpenADR API does not narrow; none of these: no operator, so the
identity sees nothing); ``show``
prints one identity's operators; ``list`` prints every business-logic client and console
user with theirs. Output is JSON.
"""

from __future__ import annotations

import json

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from dispatch import scope
from dispatch.models import NetworkOperator
from dispatch.registry import NETWORK_OPERATORS, RegistryError
from vtn.auth.services import ClientError, find_client
from vtn.models import Client


class Command(BaseCommand):
    help = "Set or show the network operators an API client or console user may reach."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, parser_class=type(parser))
        for name, text in (("set", "replace an identity's operators"),
                           ("show", "an identity's operators")):
            action = sub.add_parser(name, help=text)
            who = action.add_mutually_exclusive_group(required=True)
            who.add_argument("--client", help="business-logic client: client_id or name")
            who.add_argument("--user", help="console username")
            if name == "set":
                action.add_argument("--operator", action="append", default=[],
                                    help="network operator code (repeat for several)")
                action.add_argument("--present", action="store_true",
                                    help="every network operator the registry holds now")
                action.add_argument("--every", action="store_true",
                                    help="every GB network operator (the whole VTN)")
        sub.add_parser("list", help="every business-logic client and console user")

    def handle(self, *args, action: str, **options) -> None:
        result: dict | list
        if action == "list":
            result = self._list()
        else:
            client, user = self._identity(options)
            if action == "set":
                codes = list(options["operator"])
                if options["present"]:
                    codes += NetworkOperator.objects.values_list("code", flat=True)
                if options["every"]:
                    codes += list(NETWORK_OPERATORS)
                try:
                    scope.set_operators(client=client, user=user, operators=codes,
                                        changed_by="cli")
                except RegistryError as exc:
                    raise CommandError(str(exc)) from exc
            result = self._describe(client, user)
        self.stdout.write(json.dumps(result, indent=2))

    @staticmethod
    def _identity(options: dict):
        if options.get("client"):
            try:
                client = find_client(options["client"])
            except ClientError as exc:
                raise CommandError(str(exc)) from exc
            if client.role != Client.Role.BL:
                raise CommandError("only business-logic clients have network operators; a "
                                   "VEN client is scoped by its site")
            return client, None
        user = get_user_model().objects.filter(username=options["user"]).first()
        if user is None:
            raise CommandError(f"no user {options['user']!r}")
        return None, user

    @staticmethod
    def _describe(client, user) -> dict:
        if client is not None:
            return {"client": client.name, "client_id": client.client_id,
                    "operators": sorted(scope.operators_of_client(client.client_id))}
        return {"user": user.get_username(), "operators": sorted(scope.operators_of_user(user))}

    def _list(self) -> list[dict]:
        clients = Client.objects.select_related("application").filter(
            role=Client.Role.BL).order_by("name")
        users = get_user_model().objects.filter(groups__isnull=False).distinct().order_by(
            "username")
        return [self._describe(c, None) for c in clients] + \
            [self._describe(None, u) for u in users]
