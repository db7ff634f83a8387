"""`manage.py oadr_client create|list|revoke`: manage the VTN's OAuth2 clients.

The JSON printed by `create` is a stable interface that other tools rely on.
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from vtn.auth.scopes import ALL_SCOPES
from vtn.auth.services import ClientError, create_client, revoke_client
from vtn.models import Client, Ven


class Command(BaseCommand):
    help = "Create, list and revoke OAuth2 clients of the VTN."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="create a client and print its credentials")
        create.add_argument("--role", choices=["bl", "ven"], required=True)
        create.add_argument("--name", required=True)
        create.add_argument("--ven", dest="ven_name", help="bind a VEN client to this VEN name")
        create.add_argument("--scopes", nargs="+", choices=ALL_SCOPES,
                            help="scopes to grant (default: the role's scopes)")
        sub.add_parser("list", help="list clients as JSON")
        revoke = sub.add_parser("revoke", help="revoke a client by client_id or name")
        revoke.add_argument("client", help="client_id or name")

    def handle(self, *args, action: str, **options) -> None:
        try:
            if action == "create":
                issued = create_client(name=options["name"], role=options["role"],
                                       scopes=options.get("scopes"),
                                       ven_name=options.get("ven_name"))
                result = issued.as_dict()
                if options.get("ven_name"):
                    result["ven_name"] = options["ven_name"]
                    result["ven_id"] = Ven.objects.get(ven_name=options["ven_name"]).id
                self.stdout.write(json.dumps(result, indent=2))
            elif action == "list":
                self.stdout.write(json.dumps([_describe(c) for c in
                                              Client.objects.select_related("application")
                                              .order_by("name")], indent=2))
            elif action == "revoke":
                client = revoke_client(client_id=options["client"])
                self.stdout.write(json.dumps(_describe(client), indent=2))
        except ClientError as exc:
            raise CommandError(str(exc)) from exc


def _describe(client: Client) -> dict:
    vens = list(Ven.objects.filter(client_id=client.client_id).values_list("ven_name", flat=True))
    return {"name": client.name, "client_id": client.client_id, "role": client.role,
            "scopes": sorted(client.scope_set), "revoked": client.revoked, "vens": vens,
            "created": client.created.isoformat()}
