"""The production server, embedded in-process, serving ``config.wsgi``.

``manage.py serve`` builds a :class:`ServerOptions` and calls :func:`run`. The
server speaks HTTPS (TLS 1.2 minimum, ECDHE with AES-GCM or ChaCha20 for TLS 1.2)
unless plain HTTP is asked for, which :func:`check_options` only allows on loopback.
Both servers keep idle HTTP/1.1 connections open, so polling VENs reuse their
connections. SIGTERM stops gracefully (requests in flight are finished, up to
``GRACEFUL_TIMEOUT``); SIGINT stops at once. All logs go to stdout.

Two servers, one application:

* ``gthread``: gunicorn's threaded workers, TLS by Python's ``ssl``. The only one that
  hands the TLS client certificate to the application (the socket, as
  ``gunicorn.socket``), which certificate-bound tokens need when the VTN terminates TLS
  itself with a client CA (``VTN_TLS_CLIENT_CA``).
* ``granian``: HTTP and TLS (rustls) in Rust, the application in Python threads; many
  times the throughput of ``gthread`` for the same application, and a 99th percentile
  latency gunicorn does not reach even with a bare application (docs/benchmarks.md).
  It does not pass client certificates on, so :func:`check_options` refuses it together
  with a client CA; behind nginx (docs/nginx-vtn.conf), which verifies the certificate
  and passes it in a header, it serves plain HTTP on loopback.

``auto`` (the default, :func:`resolve_server`) is granian unless a client CA is set, in
which case the VTN verifies client certificates itself and only gthread can do that.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import ssl
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import connections
from gunicorn.app.base import BaseApplication
from gunicorn.util import import_app

from vtn import generations, serving

WSGI_APP = "config.wsgi:application"
DEFAULT_BIND = "127.0.0.1:8443"
SERVERS = ("auto", "gthread", "granian")
DEFAULT_SERVER = "auto"
# The module each granian worker imports; it loads the application named here.
GRANIAN_WORKER = "webserver.granian_worker:application"
GRANIAN_APP_ENV = "VTN_GRANIAN_WSGI_APP"
DEFAULT_WORKERS = 2
DEFAULT_THREADS = 8
# granian's blocking threads per worker when --threads is not given: the configuration
# measured in docs/benchmarks.md (its Rust runtime does the I/O; more Python threads only
# take turns on the GIL).
GRANIAN_DEFAULT_THREADS = 4
KEEPALIVE_SECONDS = 30
TIMEOUT_SECONDS = 60
GRACEFUL_TIMEOUT = 20
# TLS 1.2 suites: forward secrecy and AEAD only. TLS 1.3 suites are all acceptable as is.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL:!MD5:!DSS"


class ServerConfigError(Exception):
    """The server cannot start with these options; the message says what to change."""


@dataclass(frozen=True)
class ServerOptions:
    """What ``manage.py serve`` was asked to do."""

    bind: str = DEFAULT_BIND
    workers: int = DEFAULT_WORKERS
    threads: int = DEFAULT_THREADS
    insecure_http: bool = False
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""
    wsgi_app: str = WSGI_APP  # "module:callable"; benchmarks swap in a bare app
    server: str = DEFAULT_SERVER


def split_bind(bind: str) -> tuple[str, int]:
    """``"HOST:PORT"`` or ``"[V6]:PORT"`` as (host, port). Raises :class:`ServerConfigError`."""
    host, sep, port = bind.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ServerConfigError(f"--bind must be HOST:PORT (or [IPv6]:PORT), not {bind!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def is_loopback(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ::1."""
    if host.lower() in {"localhost", "localhost."}:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_server(options: ServerOptions) -> str:
    """The server ``options`` run on: ``auto`` is gthread when the VTN verifies TLS client
    certificates itself (a client CA is set), else granian."""
    if options.server != "auto":
        return options.server
    return "gthread" if options.tls_client_ca else "granian"


def check_options(options: ServerOptions) -> None:
    """Refuse options the server must not start with: plain HTTP off loopback, missing
    or unreadable TLS files, non-positive worker or thread counts."""
    host, _ = split_bind(options.bind)
    if options.workers < 1 or options.threads < 1:
        raise ServerConfigError("--workers and --threads must be at least 1")
    if options.server not in SERVERS:
        raise ServerConfigError(f"--server must be one of {', '.join(SERVERS)}, "
                                f"not {options.server!r}")
    if options.server == "granian" and options.tls_client_ca and not options.insecure_http:
        raise ServerConfigError(
            "--server granian does not pass TLS client certificates to the application, so "
            "certificate-bound tokens would be refused: with VTN_TLS_CLIENT_CA set, use "
            "--server gthread, or put nginx in front (docs/nginx-vtn.conf) and serve the "
            "nodes with --insecure-http on loopback.")
    if options.insecure_http:
        if not is_loopback(host):
            raise ServerConfigError(
                f"--insecure-http is only allowed on a loopback address (127.0.0.0/8, ::1, "
                f"localhost), not {host!r}: OpenADR 3 requires TLS for anything reachable "
                "from the network. Drop --insecure-http to serve HTTPS.")
        return
    missing = [f"{name}={value or '(unset)'}"
               for name, value in (("VTN_TLS_CERT", options.tls_cert),
                                   ("VTN_TLS_KEY", options.tls_key))
               if not value or not Path(value).is_file()]
    if missing:
        raise ServerConfigError(
            f"TLS certificate or key not found ({', '.join(missing)}). Run "
            "`python manage.py pki init` to create a development CA and server certificate "
            "(under $VTN_VAR_DIR/pki, where the defaults point), or set VTN_TLS_CERT and "
            "VTN_TLS_KEY to your own PEM files. For local plain HTTP use --insecure-http "
            "with a loopback --bind.")
    if options.tls_client_ca and not Path(options.tls_client_ca).is_file():
        raise ServerConfigError(f"VTN_TLS_CLIENT_CA={options.tls_client_ca} not found")


def harden_ssl_context(context: ssl.SSLContext) -> ssl.SSLContext:
    """Restrict a server context to TLS 1.2+ with forward-secret AEAD suites for TLS 1.2."""
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    context.options |= ssl.OP_NO_RENEGOTIATION
    return context


def build_ssl_context(cert: str, key: str, client_ca: str = "") -> ssl.SSLContext:
    """A hardened server context loaded with ``cert`` (leaf plus chain, PEM) and ``key``.

    With ``client_ca`` the server also asks for (but does not require) client certificates
    issued by that CA. Useful for tests and for checking a certificate pair before start.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=client_ca or None)
    context.load_cert_chain(certfile=cert, keyfile=key)
    if client_ca:
        context.verify_mode = ssl.CERT_OPTIONAL
    return harden_ssl_context(context)


def _ssl_context_hook(config, default_factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    return harden_ssl_context(default_factory())


def _logconfig(level: str) -> dict:
    handler = {"class": "logging.StreamHandler", "formatter": "generic",
               "stream": "ext://sys.stdout"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "root": {"level": level, "handlers": ["console"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": [], "propagate": True},
            "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": True},
        },
        "handlers": {"console": handler, "error_console": handler},
        "formatters": {"generic": {"format": "%(asctime)s [%(process)d] %(levelname)s "
                                             "%(name)s %(message)s"}},
    }


def _route_logs_to_stdout() -> None:
    """Point the root logger's stderr handlers (Django's LOGGING) at stdout."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stderr:
            handler.setStream(sys.stdout)


def _post_worker_init(worker) -> None:
    serving.start_beating()
    # Cache counters from PostgreSQL notifications instead of a query per request.
    generations.listen()


def _configure_databases() -> None:
    connections.close_all()  # workers are forked: never share the master's connections
    for database in connections.settings.values():
        if database["ENGINE"] == "django.db.backends.sqlite3":
            # A web request does not wait long for a write lock: 503 and Retry-After.
            database.setdefault("OPTIONS", {})["timeout"] = settings.SQLITE_LOCK_TIMEOUT_SECONDS


def start_granian_worker() -> Callable:
    """In a granian worker process: what ``manage.py serve`` prepares in a gunicorn
    worker (databases, heartbeat, change listener, logs), then the WSGI application."""
    _configure_databases()
    _post_worker_init(None)
    application = import_app(os.environ.get(GRANIAN_APP_ENV, WSGI_APP))
    _route_logs_to_stdout()
    return application


def granian_settings(options: ServerOptions, log_level: str = "info") -> dict:
    """Keyword arguments of granian's server for ``options`` (exposed for inspection)."""
    from granian.constants import HTTPModes, Interfaces, SSLProtocols
    from granian.log import LogLevels

    host, port = split_bind(options.bind)
    chosen: dict = {
        "target": GRANIAN_WORKER, "address": host, "port": port,
        "interface": Interfaces.WSGI, "http": HTTPModes.http1, "websockets": False,
        "workers": options.workers, "blocking_threads": options.threads,
        "workers_kill_timeout": GRACEFUL_TIMEOUT,
        "log_level": LogLevels(log_level), "log_access": True,
    }
    if not options.insecure_http:
        chosen |= {"ssl_cert": Path(options.tls_cert), "ssl_key": Path(options.tls_key),
                   "ssl_protocol_min": SSLProtocols.tls12}
    return chosen


def _run_granian(options: ServerOptions) -> None:
    from granian.server import Server

    os.environ[GRANIAN_APP_ENV] = options.wsgi_app
    Server(**granian_settings(options)).serve()


class VtnServer(BaseApplication):
    """Gunicorn configured from :class:`ServerOptions`, loading the Django WSGI app."""

    def __init__(self, options: ServerOptions, log_level: str = "info") -> None:
        self.options = options
        self.log_level = log_level
        super().__init__(usage=None, prog="manage.py serve")

    def gunicorn_settings(self) -> dict:
        """The gunicorn settings this server runs with (exposed for inspection)."""
        o = self.options
        chosen = {
            "bind": [o.bind],
            "workers": o.workers,
            "threads": o.threads,
            # gthread, answering requests it cannot parse with problem documents.
            "worker_class": "webserver.workers.ProblemThreadWorker",
            "keepalive": KEEPALIVE_SECONDS,
            "timeout": TIMEOUT_SECONDS,
            "graceful_timeout": GRACEFUL_TIMEOUT,
            "proc_name": "vtn",
            # Nothing sits in front of us: never take the scheme or client address from
            # forwarding headers, so request.is_secure() means this socket is TLS.
            "forwarded_allow_ips": "",
            "accesslog": "-",
            "errorlog": "-",
            "loglevel": self.log_level,
            "logconfig_dict": _logconfig(self.log_level.upper()),
            # Several servers may run side by side (tests): no shared control socket.
            "control_socket_disable": True,
            # Each worker records that the VTN is serving (vtn/serving.py) and listens for
            # changes of the cache counters (vtn/generations.py).
            "post_worker_init": _post_worker_init,
        }
        if not o.insecure_http:
            chosen |= {"certfile": o.tls_cert, "keyfile": o.tls_key,
                         "ssl_context": _ssl_context_hook, "ciphers": TLS12_CIPHERS}
            if o.tls_client_ca:
                chosen |= {"ca_certs": o.tls_client_ca, "cert_reqs": ssl.CERT_OPTIONAL}
        return chosen

    def load_config(self) -> None:
        for key, value in self.gunicorn_settings().items():
            self.cfg.set(key, value)

    def load(self) -> Callable:
        application = import_app(self.options.wsgi_app)
        _route_logs_to_stdout()
        return application


def run(options: ServerOptions) -> None:
    """Check ``options`` and serve until signalled. Does not return normally: gunicorn's
    arbiter exits the process. Raises :class:`ServerConfigError` before binding anything
    if the options are refused."""
    check_options(options)
    if not options.insecure_http:
        # Fail here, with a readable message, rather than in every worker.
        try:
            build_ssl_context(options.tls_cert, options.tls_key, options.tls_client_ca)
        except (ssl.SSLError, OSError) as exc:
            raise ServerConfigError(
                f"cannot load the TLS certificate {options.tls_cert} with key "
                f"{options.tls_key}: {exc}") from exc
    _configure_databases()
    if resolve_server(options) == "granian":
        _run_granian(options)
    else:
        VtnServer(options).run()
