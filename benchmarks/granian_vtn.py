"""The VTN's WSGI application as granian loads it (``benchmarks/poll.py --servers``).

Granian imports its target in each worker process, so the per-worker start-up that
``manage.py serve`` runs after forking (the serving heartbeat, the change-counter
listener) runs here, at import.

Granian can check a client certificate against a CA, but it does not hand the
certificate to the application, so certificate-bound tokens cannot work on it: it is
measured by the benchmark, not used by ``manage.py serve``.
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from config.wsgi import application  # noqa: E402
from webserver.server import _post_worker_init  # noqa: E402

_post_worker_init(None)

__all__ = ["application"]
