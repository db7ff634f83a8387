"""`manage.py serve`: run the VTN with the production server (granian or gunicorn, HTTPS).

TLS files come from the settings ``VTN_TLS_CERT`` and ``VTN_TLS_KEY`` (environment
variables of the same names); ``manage.py pki init`` creates a development pair where
the defaults point. ``--insecure-http`` serves plain HTTP and is refused unless the bind
address is loopback. The server logs to stdout and stops on SIGTERM (graceful) or SIGINT.
"""

from __future__ import annotations

import dataclasses

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from vtn import schemas
from webserver import server


class Command(BaseCommand):
    help = ("Serve the VTN over HTTPS with granian, or gunicorn (gthread workers) when it "
            "verifies client certificates itself.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--bind", default=server.DEFAULT_BIND, metavar="HOST:PORT",
                            help=f"address to listen on (default {server.DEFAULT_BIND})")
        parser.add_argument("--workers", type=int, default=server.DEFAULT_WORKERS,
                            help=f"worker processes (default {server.DEFAULT_WORKERS})")
        parser.add_argument("--threads", type=int, default=None,
                            help=f"threads per worker (default {server.DEFAULT_THREADS} "
                                 f"on gthread, {server.GRANIAN_DEFAULT_THREADS} on granian)")
        parser.add_argument("--server", choices=server.SERVERS, default=server.DEFAULT_SERVER,
                            help="gthread (gunicorn; passes TLS client certificates on), "
                                 "granian (much faster; no client certificates: refused "
                                 "with a client CA) or auto: gthread when VTN_TLS_CLIENT_CA "
                                 f"is set, else granian (default {server.DEFAULT_SERVER})")
        parser.add_argument("--insecure-http", action="store_true",
                            help="serve plain HTTP; only allowed on a loopback address")
        parser.add_argument("--log-level", default="info",
                            choices=["debug", "info", "warning", "error", "critical"])

    def handle(self, *args, **options) -> None:
        missing = schemas.missing_documents()
        if missing:
            raise CommandError(missing)
        opts = server.ServerOptions(
            bind=options["bind"], workers=options["workers"],
            insecure_http=options["insecure_http"], server=options["server"],
            tls_cert=settings.VTN_TLS_CERT, tls_key=settings.VTN_TLS_KEY,
            tls_client_ca=getattr(settings, "VTN_TLS_CLIENT_CA", ""),
        )
        threads = options["threads"]
        if threads is None and server.resolve_server(opts) == "granian":
            threads = server.GRANIAN_DEFAULT_THREADS
        if threads is not None:
            opts = dataclasses.replace(opts, threads=threads)
        try:
            server.check_options(opts)
            scheme = "http" if opts.insecure_http else "https"
            chosen = server.resolve_server(opts)
            why = "" if opts.server != "auto" else (
                " (auto: the VTN verifies client certificates itself)" if chosen == "gthread"
                else " (auto: no client CA)")
            self.stdout.write(f"Serving the VTN on {scheme}://{opts.bind} with {chosen}{why} "
                              f"({opts.workers} workers x {opts.threads} threads)")
            self.stdout.flush()
            server.run(opts)
        except server.ServerConfigError as exc:
            raise CommandError(str(exc)) from exc
