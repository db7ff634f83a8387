"""Serve `benchmarks.bare_app` with exactly the VTN's server settings (see poll.py).

Usage: python benchmarks/serve_bare.py HOST:PORT WORKERS [THREADS]
(TLS files from VTN_TLS_CERT/KEY)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()  # the server module imports models (its per-worker hooks use them)

from webserver import server  # noqa: E402

if __name__ == "__main__":
    server.run(server.ServerOptions(
        bind=sys.argv[1], workers=int(sys.argv[2]),
        threads=int(sys.argv[3]) if len(sys.argv) > 3 else server.DEFAULT_THREADS,
        tls_cert=os.environ["VTN_TLS_CERT"], tls_key=os.environ["VTN_TLS_KEY"],
        wsgi_app="benchmarks.bare_app:application", server="gthread"))
