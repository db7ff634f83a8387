"""The WSGI application as each granian worker process imports it (``manage.py serve
--server granian``): prepared as a gunicorn worker is, see ``webserver.server``."""

from __future__ import annotations

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup(set_prefix=False)

from webserver.server import start_granian_worker  # noqa: E402  (needs django.setup)

application = start_granian_worker()
