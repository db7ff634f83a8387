"""WSGI entry point used by `manage.py serve` (gunicorn).

The OpenADR API and the health probes run through a lean middleware stack, everything
else through the full one (webserver/routing.py).
"""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup(set_prefix=False)

from webserver.routing import PathRoutedApplication  # noqa: E402  (needs django.setup)

application = PathRoutedApplication()
