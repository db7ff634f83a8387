"""Request hook of the dispatch profile: a VEN's authenticated request is a sign of life.

Runs after the response (and for polls answered by ``webserver/poll_replay.py``). DRF
puts the authenticated :class:`vtn.auth.caller.Caller` on the Django request as
``request.user``; anything else (no authentication, a failed one, a session user not yet
resolved) is left alone without evaluating it.
"""

from __future__ import annotations

import logging

from dispatch import comms
from vtn.auth.caller import Caller

logger = logging.getLogger(__name__)


def record_seen(caller: object) -> None:
    """Move a VEN caller's last-seen time (anyone else is left alone); never raises."""
    if type(caller) is Caller and caller.is_ven:
        try:
            comms.seen(caller.client_id)
        except Exception:  # never fail the VEN's request over bookkeeping
            logger.exception("could not record that %s was seen", caller.client_id)


class LastSeenMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.status_code < 500:
            record_seen(request.__dict__.get("user"))  # never evaluates Django's lazy user
        return response
