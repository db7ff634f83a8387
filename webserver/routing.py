"""Two middleware stacks in one WSGI application: the OpenADR API skips the console's.

Every VEN poll used to pass through the operator console's sessions, CSRF, user
authentication, OTP and messages middleware, none of which an API request uses (it
authenticates with a bearer token, carries no cookie and renders no page). The
:class:`PathRoutedApplication` holds two Django handlers built from the same
``MIDDLEWARE`` list: the full one, and a lean one without the entries named in
``VTN_CONSOLE_ONLY_MIDDLEWARE``. Requests whose path starts with one of
``VTN_LEAN_PATH_PREFIXES`` (the OpenADR API and the health probes) go to the lean one,
everything else (console, admin, conformance, the operator APIs) to the full one. Both
keep the security headers, body limit, NUL refusal, client certificate check, ETags,
problem media type and last-seen tracking, in the same order.

On the lean side, a warm poll of ``/events`` or ``/programs`` may be answered without
the framework at all (``webserver/poll_replay.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler

from webserver import poll_replay


def lean_middleware(full: Iterable[str], console_only: Iterable[str]) -> list[str]:
    """``full`` without ``console_only``, order kept."""
    skipped = set(console_only)
    return [path for path in full if path not in skipped]


class LeanWSGIHandler(WSGIHandler):
    """A Django WSGI handler whose chain is ``MIDDLEWARE`` less the console's entries."""

    def load_middleware(self, is_async: bool = False) -> None:
        # Django builds the chain from settings.MIDDLEWARE only: give it the lean list for
        # the duration of the build (once, at start-up, before any request thread runs).
        full = list(settings.MIDDLEWARE)
        settings.MIDDLEWARE = lean_middleware(full, settings.VTN_CONSOLE_ONLY_MIDDLEWARE)
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = full


class PathRoutedApplication:
    """The WSGI application: lean stack for ``VTN_LEAN_PATH_PREFIXES``, full for the rest."""

    def __init__(self) -> None:
        self.full = WSGIHandler()
        self.lean = LeanWSGIHandler()
        self.prefixes = tuple(settings.VTN_LEAN_PATH_PREFIXES)
        self.replay = poll_replay.enabled()

    def handler_for(self, path: str) -> WSGIHandler:
        return self.lean if path.startswith(self.prefixes) else self.full

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        handler = self.handler_for(environ.get("PATH_INFO", ""))
        if self.replay and handler is self.lean:
            # Warm polls are answered again from what the full stack last answered.
            return poll_replay.serve(environ, start_response, handler)
        return handler(environ, start_response)
