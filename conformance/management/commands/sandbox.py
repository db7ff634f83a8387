"""`manage.py sandbox`: a ready-to-use VTN on one machine, with demo data and clients.

Steps: migrate the database, create the development PKI under ``$VTN_VAR_DIR/pki`` if
it is missing, load the demo data from ``demo_data/`` (idempotent), issue credentials for
a business-logic client ``sandbox-bl`` and a VEN client ``sandbox-ven`` (bound to the
demo VEN ``demo-fsp-north``) and a console administrator ``sandbox-admin`` (password and
TOTP enrolment), onboard the demo FSP fleet (``conformance/fleet.py``) and load its history
(``conformance/history.py``; neither with ``--no-fleet``), print everything a client
needs as JSON on stdout, then serve HTTPS
with the conformance sandbox enabled and the fleet's agents running. Progress messages
go to stderr so stdout stays machine-readable.

Secrets are stored hashed, so every run rotates the sandbox clients' secrets (their
client_ids stay the same) and the console user's password, and prints the new ones; the
console user's TOTP device is kept. A missing official OpenADR document stops the command
before anything is written.
"""

from __future__ import annotations

import contextlib
import json
import os
from io import StringIO
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from conformance import fleet as demo_fleet
from conformance import history as demo_history
from console.services import issue_sandbox_staff
from vtn import demo, schemas
from vtn.auth.services import ClientError
from vtn.models import Ven

DEFAULT_BIND = "127.0.0.1:8443"
BL_CLIENT = "sandbox-bl"
VEN_CLIENT = "sandbox-ven"
CONSOLE_USER = "sandbox-admin"
DEMO_VEN = "demo-fsp-north"
VERSIONS = ("3.1.0", "3.0.1")
PKI_FILES = ("ca.pem", "server.pem", "server.key")


class Command(BaseCommand):
    help = "Set up a sandbox VTN (database, PKI, demo data, clients) and serve it over HTTPS."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--bind", default=DEFAULT_BIND, metavar="HOST:PORT",
                            help=f"address to serve on (default {DEFAULT_BIND})")
        parser.add_argument("--no-serve", action="store_true",
                            help="set everything up and print the credentials, but do not serve")
        parser.add_argument("--no-fleet", action="store_true",
                            help="do not onboard the demo FSP fleet nor start its agents")

    def handle(self, *args, bind: str, no_serve: bool, no_fleet: bool = False,
               **options) -> None:
        missing = schemas.missing_documents()
        if missing:
            raise CommandError(missing)
        self._progress("Migrating the database")
        call_command("migrate", interactive=False, verbosity=0)

        pki_dir = Path(settings.VAR_DIR) / "pki"
        if not all((pki_dir / name).exists() for name in PKI_FILES):
            self._progress(f"Creating the development PKI in {pki_dir}")
            call_command("pki", "init", "--dir", str(pki_dir), stdout=StringIO())

        self._progress("Loading the demo data from demo_data/")
        try:
            summary = demo.load_demo_data()
        except demo.DemoDataError as exc:
            raise CommandError(str(exc)) from exc
        self._progress(f"  created {len(summary.created)}, refreshed {len(summary.refreshed)}, "
                       f"already present {len(summary.existing)}")

        try:
            bl = demo.issue_sandbox_client(name=BL_CLIENT, role="bl")
            ven = demo.issue_sandbox_client(name=VEN_CLIENT, role="ven", ven_name=DEMO_VEN)
        except (ClientError, ValueError) as exc:
            raise CommandError(f"{exc} (run `make clean` to start the sandbox afresh)") from exc

        console_user = issue_sandbox_staff(username=CONSOLE_USER, role="administrator")
        base = f"https://{_public_host(bind)}"
        fleet = history = None
        if not no_fleet:
            self._progress("Onboarding the demo FSP fleet (conformance/fleet.py)")
            fleet = demo_fleet.prepare(base_url=base, pki_dir=pki_dir)
            self._progress("Loading the fleet's history: meter readings, past dispatches, "
                           "a settled statement (conformance/history.py)")
            history = demo_history.load(fleet)
        # The sandbox's operator client is a client of the whole VTN (nothing narrowed on
        # the OpenADR API, the MQTT business-logic topics open to it); its administrator
        # reaches every demo operator.
        call_command("operator_scope", "set", "--client", BL_CLIENT, "--every",
                     stdout=StringIO())
        call_command("operator_scope", "set", "--user", CONSOLE_USER, "--present",
                     stdout=StringIO())
        ven_object = Ven.objects.get(client_id=ven.client.client_id)
        report = {
            "vtn": {version: f"{base}/openadr3/{version}" for version in VERSIONS},
            "token_url": {version: f"{base}/openadr3/{version}/auth/token"
                          for version in VERSIONS},
            "docs": {version: f"{base}/openadr3/{version}/docs" for version in VERSIONS},
            "ca_certificate": str(pki_dir / "ca.pem"),
            "clients": {
                "bl": bl.as_dict(),
                "ven": ven.as_dict() | {"ven_name": ven_object.ven_name,
                                        "ven_id": ven_object.pk},
            },
            "console": console_user | {"url": f"{base}{console_user['url']}"},
            "conformance": f"{base}/conformance/",
            "home": f"{base}/",
            "fleet": fleet.summary() if fleet else None,
            "history": history.as_dict() if history else None,
        }
        self.stdout.write(json.dumps(report, indent=2))

        if no_serve:
            return
        # The sandbox always serves with its own development certificate.
        tls = {"VTN_TLS_CERT": str(pki_dir / "server.pem"),
               "VTN_TLS_KEY": str(pki_dir / "server.key")}
        os.environ.update(tls)
        for name, value in tls.items():
            setattr(settings, name, value)
        demo_fleet.enable_sandbox(pki_dir)  # self-service onboarding, fault injection
        self._progress(f"Serving the sandbox on {base} (Ctrl-C to stop)")
        with fleet.running() if fleet else contextlib.nullcontext():
            call_command("serve", "--bind", bind)

    def _progress(self, message: str) -> None:
        self.stderr.write(message)


def _public_host(bind: str) -> str:
    """The host:port clients use for a bind address (a wildcard address means loopback)."""
    host, _, port = bind.rpartition(":")
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "[::]":
        host = "[::1]"
    return f"{host}:{port}"
