"""The framework ceiling: a bare WSGI app that answers every request with fixed bytes.

`benchmarks/poll.py` serves it with the same server, TLS and worker settings as the
VTN, returning the bytes of a real `GET /events` response, so the difference between
the two runs is the cost of Django, authentication, privacy and serialisation.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

with open(os.environ["BARE_APP_BODY"], "rb") as handle:
    BODY = handle.read()

HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]


def application(environ: dict, start_response: Callable) -> Iterable[bytes]:
    start_response("200 OK", HEADERS)
    return [BODY]
