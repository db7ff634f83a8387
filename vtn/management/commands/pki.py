"""`manage.py pki <action>`: the FSP CA, site and server certificates, revocation.

Actions: ``init`` (CA and the VTN's TLS certificate, no database needed), ``issue-client``,
``issue-server``, ``onboard`` (client + VEN + site certificate in one step), ``revoke``,
``crl`` and ``list``. The logic lives in ``vtn.pki`` (cryptography) and
``vtn.auth.certificates`` (registry); see docs/security.md.

Each action is a subparser plus a ``_<action>`` method that returns a JSON-ready
value; the command prints that value as JSON on stdout (``list`` prints a table unless
``--json``). To add an action, register its parser in ``add_arguments`` and write the
matching method.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from vtn import pki
from vtn.auth import certificates
from vtn.auth.services import ClientError


def default_pki_dir() -> Path:
    """Where the PKI lives unless ``--dir`` says otherwise: ``$VTN_PKI_DIR`` (default
    ``$VTN_VAR_DIR/pki``)."""
    return Path(getattr(settings, "VTN_PKI_DIR", Path(settings.VAR_DIR) / "pki"))


class Command(BaseCommand):
    help = "Manage the development PKI: the FSP CA and the VTN's TLS server certificate."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, parser_class=type(parser))

        init = sub.add_parser(
            "init", help="create the CA (reused if present) and the server certificate",
            description="Create a development CA and a server certificate for localhost, "
                        "127.0.0.1 and ::1. An existing CA is reused unless --force. "
                        "Prints what was written as JSON.")
        self._add_dir(init)
        init.add_argument("--force", action="store_true",
                          help="replace an existing CA and server certificate")
        init.add_argument("--key-type", choices=["ec", "rsa"], default="ec",
                          help="EC P-256 (default) or RSA 3072, for new keys")
        init.add_argument("--ca-name", default=pki.DEFAULT_CA_NAME,
                          help="common name of a new CA")
        init.add_argument("--dns", action="append", default=[], metavar="NAME",
                          help="extra DNS name for the server certificate (repeatable)")
        init.add_argument("--ip", action="append", default=[], metavar="ADDRESS",
                          help="extra IP address for the server certificate (repeatable)")

        client = sub.add_parser(
            "issue-client", help="issue a client certificate for an FSP site",
            description="Issue a clientAuth certificate with subject O=FSP, CN=SITE and the "
                        "SAN URI urn:gbflex:fsp:<fsp>:site:<site>; write SITE.pem and "
                        "SITE.key; print serial and SHA-256 thumbprint as JSON.")
        self._add_dir(client)
        self._add_site(client)
        client.add_argument("--days", type=int, default=pki.CLIENT_DAYS,
                            help=f"validity in days (default {pki.CLIENT_DAYS})")

        server = sub.add_parser(
            "issue-server", help="issue a TLS server certificate (e.g. for a proxy)",
            description="Issue a serverAuth certificate for the given names; write NAME.pem "
                        "(certificate and CA chain) and NAME.key.")
        self._add_dir(server)
        server.add_argument("--name", required=True, help="common name and file name")
        server.add_argument("--dns", action="append", default=[], metavar="NAME",
                            help="DNS name (repeatable)")
        server.add_argument("--ip", action="append", default=[], metavar="ADDRESS",
                            help="IP address (repeatable)")
        server.add_argument("--out", type=Path, default=None,
                            help="directory for the files (default: the PKI directory)")
        server.add_argument("--key-type", choices=["ec", "rsa"], default="ec")
        server.add_argument("--days", type=int, default=pki.SERVER_DAYS)

        onboard = sub.add_parser(
            "onboard", help="one step for a new FSP site: client, VEN and certificate",
            description="Create a VEN client that must use mTLS, bind it to the site's VEN "
                        "(created if needed) and issue the site certificate bundle "
                        "(SITE.pem, SITE.key, ca.pem). Prints one JSON object with the "
                        "credentials (the secret is shown once).")
        self._add_dir(onboard)
        self._add_site(onboard)
        onboard.add_argument("--ven", default=None, help="VEN name (default FSP-SITE)")
        onboard.add_argument("--name", default=None, help="client name (default FSP-SITE)")

        revoke = sub.add_parser(
            "revoke", help="revoke a certificate by serial and rewrite crl.pem",
            description="Mark the certificate revoked (refused by the VTN on the next "
                        "request, no restart), delete tokens bound to it, write DIR/crl.pem.")
        self._add_dir(revoke)
        revoke.add_argument("--serial", required=True, help="serial number in hex")
        revoke.add_argument("--reason", default="", help="free text kept in the registry")

        crl = sub.add_parser("crl", help="re-issue DIR/crl.pem (do this before it expires)")
        self._add_dir(crl)

        listing = sub.add_parser(
            "list", help="every issued certificate with expiry and revocation",
            description="List the registry; certificates expiring within "
                        "VTN_CERT_EXPIRY_WARNING_DAYS are marked WARN.")
        self._add_dir(listing)
        listing.add_argument("--json", action="store_true", help="print JSON instead")

    @staticmethod
    def _add_site(parser: CommandParser) -> None:
        parser.add_argument("--fsp", required=True, help="FSP name (subject O)")
        parser.add_argument("--site", required=True, help="site name (subject CN, file name)")
        parser.add_argument("--out", type=Path, default=None,
                            help="directory for SITE.pem/SITE.key (default: the PKI directory)")
        parser.add_argument("--key-type", choices=["ec", "rsa"], default="ec")

    @staticmethod
    def _add_dir(parser: CommandParser) -> None:
        parser.add_argument("--dir", type=Path, default=None,
                            help="PKI directory (default: $VTN_VAR_DIR/pki)")

    def handle(self, *args, action: str, **options) -> None:
        handler = getattr(self, f"_{action.replace('-', '_')}")
        try:
            result = handler(options["dir"] or default_pki_dir(), **options)
        except (pki.PkiError, ClientError, ValueError, OSError) as exc:
            raise CommandError(str(exc)) from exc
        if result is not None:
            self.stdout.write(json.dumps(result, indent=2))

    def _init(self, directory: Path, **options) -> dict:
        return pki.init_pki(
            directory, force=options["force"], key_type=options["key_type"],
            ca_name=options["ca_name"],
            dns_names=[*pki.DEFAULT_DNS_NAMES, *options["dns"]],
            ip_addresses=[*pki.DEFAULT_IP_ADDRESSES, *options["ip"]])

    def _issue_client(self, directory: Path, **options) -> dict:
        _, summary = certificates.issue_client_certificate(
            fsp=options["fsp"], site=options["site"], pki_dir=directory,
            out_dir=options["out"], key_type=options["key_type"], days=options["days"])
        return summary

    def _issue_server(self, directory: Path, **options) -> dict:
        if not (options["dns"] or options["ip"]):
            raise pki.PkiError("give at least one --dns or --ip")
        return certificates.issue_server_certificate(
            pki_dir=directory, name=options["name"], dns_names=options["dns"],
            ip_addresses=options["ip"], out_dir=options["out"], key_type=options["key_type"],
            days=options["days"])

    def _onboard(self, directory: Path, **options) -> dict:
        return certificates.onboard_site(
            fsp=options["fsp"], site=options["site"], pki_dir=directory,
            out_dir=options["out"], ven_name=options["ven"], client_name=options["name"],
            key_type=options["key_type"])

    def _revoke(self, directory: Path, **options) -> dict:
        return certificates.revoke_certificate(serial=options["serial"], pki_dir=directory,
                                               reason=options["reason"])

    def _crl(self, directory: Path, **options) -> dict:
        return {"crl_path": str(certificates.write_crl(directory))}

    def _list(self, directory: Path, **options) -> list | None:
        rows = certificates.list_certificates()
        if options["json"]:
            return rows
        header = f"{'STATUS':<8}{'SERIAL':<42}{'NOT AFTER':<27}{'DAYS':>6}  SUBJECT / SHA-256"
        self.stdout.write(header)
        for row in rows:
            status = ("REVOKED" if row["revoked"] else "EXPIRED" if row["expired"]
                      else "WARN" if row["expiring"] else "ok")
            line = (f"{status:<8}{row['serial']:<42}{row['not_after']:<27}"
                    f"{row['days_left']:>6}  {row['subject']}\n{'':<83}{row['thumbprint']}")
            style = (self.style.WARNING if status == "WARN" else
                     self.style.ERROR if status in {"REVOKED", "EXPIRED"} else str)
            self.stdout.write(style(line))
        expiring = sum(1 for row in rows if row["expiring"])
        if expiring:
            self.stderr.write(self.style.WARNING(
                f"WARN: {expiring} certificate(s) expire within "
                f"{settings.VTN_CERT_EXPIRY_WARNING_DAYS} days"))
        return None
