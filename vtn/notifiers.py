"""Which notification bindings this VTN delivers.

Subscriptions are stored and validated; a binding is advertised only once the VTN
delivers notifications over it, so clients never wait for callbacks that will not come.
"""

from __future__ import annotations


def offered_bindings() -> dict:
    """The `/notifiers` body: WEBHOOK is required by the document and false until delivered."""
    return {"WEBHOOK": False}
