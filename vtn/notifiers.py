"""Which notification bindings this VTN delivers.

A binding is advertised only while the VTN delivers notifications over it, so clients
never wait for callbacks that will not come: ``WEBHOOK`` is true unless an operator
turned webhook delivery off (``VTN_WEBHOOKS_ENABLED``).
"""

from __future__ import annotations

from django.conf import settings


def offered_bindings() -> dict:
    """The `/notifiers` body."""
    return {"WEBHOOK": bool(settings.VTN_WEBHOOKS_ENABLED)}
