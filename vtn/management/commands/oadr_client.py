"""`manage.py oadr_client create|list|rotate|revoke|bind-cert`: manage the VTN's OAuth2 clients.

The JSON printed by `create` (and `rotate`) is a stable interface that other tools rely on.
``--require-mtls`` (default for VEN clients: VTN_REQUIRE_MTLS_DEFAULT) makes a client use a
bound TLS client certificate; ``--cert FILE.pem`` or ``bind-cert`` binds one.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from vtn.auth.certificates import CertificateError, load_certificate_file
from vtn.auth.scopes import ALL_SCOPES
from vtn.auth.services import (
    ClientError,
    bind_certificate,
    create_client,
    find_client,
    revoke_client,
    rotate_secret,
    set_require_mtls,
)
from vtn.models import Client, Ven


class Command(BaseCommand):
    help = "Create, list, rotate and revoke OAuth2 clients of the VTN."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="create a client and print its credentials")
        create.add_argument("--role", choices=["bl", "ven"], required=True)
        create.add_argument("--name", required=True)
        create.add_argument("--ven", dest="ven_name", help="bind a VEN client to this VEN name")
        create.add_argument("--scopes", nargs="+", choices=ALL_SCOPES,
                            help="scopes to grant (default: the role's scopes)")
        mtls = create.add_mutually_exclusive_group()
        mtls.add_argument("--require-mtls", dest="require_mtls", action="store_true",
                          default=None, help="the client must use a bound TLS client "
                                             "certificate (default for VEN clients: "
                                             "VTN_REQUIRE_MTLS_DEFAULT)")
        mtls.add_argument("--no-require-mtls", dest="require_mtls", action="store_false")
        create.add_argument("--cert", type=Path, metavar="FILE.pem",
                            help="bind this TLS client certificate to the client")
        bind = sub.add_parser("bind-cert", help="bind a TLS client certificate to a client")
        bind.add_argument("client", help="client_id or name")
        bind.add_argument("--cert", type=Path, required=True, metavar="FILE.pem")
        bind.add_argument("--require-mtls", action="store_true",
                          help="also require mTLS from now on (unbound tokens stop working)")
        sub.add_parser("list", help="list clients as JSON")
        rotate = sub.add_parser("rotate", help="issue a new secret and print the credentials")
        rotate.add_argument("client", help="client_id or name")
        revoke = sub.add_parser("revoke", help="revoke a client by client_id or name")
        revoke.add_argument("client", help="client_id or name")

    def handle(self, *args, action: str, **options) -> None:
        try:
            if action == "create":
                certificate = load_certificate_file(options["cert"]) if options.get(
                    "cert") else None
                issued = create_client(name=options["name"], role=options["role"],
                                       scopes=options.get("scopes"),
                                       ven_name=options.get("ven_name"),
                                       require_mtls=options.get("require_mtls"),
                                       certificate=certificate)
                result = issued.as_dict()
                if options.get("ven_name"):
                    result["ven_name"] = options["ven_name"]
                    result["ven_id"] = Ven.objects.get(ven_name=options["ven_name"]).id
                self.stdout.write(json.dumps(result, indent=2))
            elif action == "list":
                self.stdout.write(json.dumps([_describe(c) for c in
                                              Client.objects.select_related("application")
                                              .order_by("name")], indent=2))
            elif action == "rotate":
                issued = rotate_secret(client_id=options["client"])
                self.stdout.write(json.dumps(issued.as_dict(), indent=2))
            elif action == "revoke":
                client = revoke_client(client_id=options["client"])
                self.stdout.write(json.dumps(_describe(client), indent=2))
            elif action == "bind-cert":
                client = find_client(options["client"])
                bind_certificate(client=client,
                                 certificate=load_certificate_file(options["cert"]))
                if options["require_mtls"]:
                    client = set_require_mtls(client_id=client.client_id, required=True)
                self.stdout.write(json.dumps(_describe(client), indent=2))
        except (ClientError, CertificateError) as exc:
            raise CommandError(str(exc)) from exc


def _describe(client: Client) -> dict:
    vens = list(Ven.objects.filter(client_id=client.client_id).values_list("ven_name", flat=True))
    return {"name": client.name, "client_id": client.client_id, "role": client.role,
            "scopes": sorted(client.scope_set), "revoked": client.revoked, "vens": vens,
            "created": client.created.isoformat(), "require_mtls": client.require_mtls,
            "certificate_sha256": sorted(client.certificates.values_list("sha256", flat=True))}
