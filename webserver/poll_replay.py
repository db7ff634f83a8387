"""Polls answered again without the framework when nothing they depend on has changed.

A warm ``GET /events`` (or ``/programs``) poll ends in bytes this process already holds:
the rendered list for the caller's audience (``vtn.api.views.poll_key``). Django, the
middleware and DRF then cost several times what the server itself does. So the WSGI
application (``webserver/routing.py``) remembers, per poll key and URL scheme, the exact
status, headers and body the full stack produced (200, and 304 for a matching
``If-None-Match``), and answers a later poll from them when, for that request:

* the client certificate, if any, is not revoked (``vtn.auth.mtls``, as the middleware);
* the bearer token is one this process resolved under the current auth generation, not
  expired, its certificate binding met (``vtn.auth.authentication.cached_caller``), and it
  holds a scope the list requires;
* the poll key (version, kind, targeting generation, granted labels, query) is the one of
  a rendered answer still fresh, with the same ETag;
* nothing else could change the outcome: GET, no body, no NUL in the query, no
  precondition header other than an exact ``If-None-Match``, no fault injection.

Anything else (a first poll, a changed generation, a failed check, any error) goes
through Django as before, which also makes every refusal, security-log entry and problem
document. A replayed poll still moves the VEN's last seen time (``dispatch.middleware``).
The counters come from ``vtn.generations.current``, so a replay is exactly as fresh as a
full answer.

A fleet polls the same question again and again: the same token, path, query, scheme,
``If-None-Match`` and client certificate. The outcome of the checks above depends on
nothing else but the two counters, the clock and the rendered answer, so once a poll has
been replayed, its decision is kept (``_decisions``) with the counters it was made under,
the token's expiry and the rendered answer it chose. The same question is answered again
from it while both counters are unchanged, the token unexpired and that very rendered
answer (the same object in ``vtn.api.views``' cache) still fresh; otherwise the checks run
in full. The certificate's revocation check runs before, on every poll, as always.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.db import DatabaseError

from dispatch.middleware import record_seen
from vtn.api.views import POLL_KEY_ENVIRON, fresh_poll_answer, poll_key
from vtn.auth import mtls
from vtn.auth.authentication import InvalidToken, cached_caller
from vtn.auth.caller import Caller
from vtn.auth.scopes import READ_TARGETED
from vtn.generations import ProcessCache

logger = logging.getLogger(__name__)

POLLED_PATHS = {f"/openadr3/{version}/{kind}": (version, kind)
                for version in ("3.1.0", "3.0.1") for kind in ("events", "programs")}
# Headers the server sets itself on every answer.
SERVER_HEADERS = {"date", "server", "connection"}

Answer = tuple[str, list[tuple[str, str]], bytes]
# (poll key, status code, scheme) -> (status line, headers, body)
_answers: ProcessCache[tuple, Answer] = ProcessCache()
# (token, path, query, scheme, If-None-Match, certificate thumbprint) ->
# (targeting, auth, token expiry, poll key, rendered answer, caller, answer): see above.
Decision = tuple[int, int, float, tuple, tuple, Caller, Answer]
_decisions: ProcessCache[tuple, Decision] = ProcessCache(max_entries=50_000)


class _Request:
    """What the certificate and token checks read of a request: its environ as META."""

    def __init__(self, environ: dict) -> None:
        self.META = environ
        self.method = "GET"
        self.path = environ.get("PATH_INFO", "")


def enabled() -> bool:
    return not getattr(settings, "CONFORMANCE_FAULTS_ENABLED", False)


def replay(environ: dict) -> Answer | None:
    """The remembered answer to this poll, or None to let Django answer it."""
    path = environ.get("PATH_INFO", "")
    target = POLLED_PATHS.get(path)
    if target is None or environ.get("REQUEST_METHOD") != "GET":
        return None
    query = environ.get("QUERY_STRING", "")
    if (environ.get("CONTENT_LENGTH") not in (None, "", "0") or "%00" in query
            or "\x00" in query or "HTTP_IF_MATCH" in environ
            or "HTTP_IF_MODIFIED_SINCE" in environ or "HTTP_IF_UNMODIFIED_SINCE" in environ):
        return None
    header = environ.get("HTTP_AUTHORIZATION", "").split()
    if len(header) != 2 or header[0].lower() != "bearer" or not header[1].isascii():
        return None
    request = _Request(environ)
    peer = mtls.attach_peer(request)  # type: ignore[arg-type]  # reads META only
    if peer is not None:
        if mtls.is_revoked(request, peer):  # type: ignore[arg-type]
            return None
        mtls.warn_if_expiring(peer)
    targeting, auth = mtls.current_generations(request)  # type: ignore[arg-type]
    condition = environ.get("HTTP_IF_NONE_MATCH")
    question = (header[1], path, query, environ.get("wsgi.url_scheme", "http"), condition,
                peer.sha256 if peer is not None else None)
    decided = _decisions.get(question)
    if decided is not None and decided[0] == targeting and decided[1] == auth:
        now = time.time()
        fresh = fresh_poll_answer(decided[3])
        if decided[2] > now and fresh is decided[4]:
            record_seen(decided[5])
            return decided[6]
    return _decide(request, question, target, header[1], targeting, auth)


def _decide(request: _Request, question: tuple, target: tuple[str, str], token: str,
            targeting: int, auth: int) -> Answer | None:
    """The full checks of :func:`replay` once its question is not answered from a kept
    decision; a replayable answer is kept as the decision for the same question."""
    try:
        known = cached_caller(request, token)
    except InvalidToken:
        return None
    if known is None:
        return None
    caller = known[0]
    if not caller.scopes & READ_TARGETED:
        return None
    key = poll_key(target[0], target[1], caller, question[2])
    fresh = fresh_poll_answer(key)
    if fresh is None:
        return None
    condition = question[4]
    if condition is not None and condition != fresh[2]:
        return None
    answer = _answers.get((key, 304 if condition is not None else 200, question[3]))
    if answer is None or ("ETag", fresh[2]) not in answer[1]:
        return None
    expires = known[1].expires.timestamp()
    _decisions.put(question, (targeting, auth, expires, key, fresh, caller, answer))
    record_seen(caller)
    return answer


def remember(environ: dict, status: str, headers: list[tuple[str, str]], body: bytes) -> None:
    """Keep the full stack's answer to a polled list for :func:`replay`."""
    key = environ.get(POLL_KEY_ENVIRON)
    code = int(status.split(" ", 1)[0])
    if key is None or code not in (200, 304):
        return
    kept = [(name, value) for name, value in headers if name.lower() not in SERVER_HEADERS]
    _answers.put((key, code, environ.get("wsgi.url_scheme", "http")), (status, kept, body))


def serve(environ: dict, start_response: Callable,
          application: Callable[[dict, Callable], Iterable[bytes]]) -> Iterable[bytes]:
    """Answer from :func:`replay` when possible, else from ``application`` (remembering a
    polled list's answer on the way out)."""
    try:
        answer = replay(environ)
    except DatabaseError:  # down or locked: the full stack answers 503 with Retry-After
        answer = None
    except Exception:  # a replay is an optimisation: never fail a poll over it
        logger.exception("poll replay failed; answering through the full stack")
        answer = None
    if answer is not None:
        start_response(answer[0], list(answer[1]))
        return [answer[2]]
    captured: dict[str, Any] = {}

    def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured["status"], captured["headers"] = status, headers
        return start_response(status, headers, exc_info) if exc_info else \
            start_response(status, headers)

    result = application(environ, capture)
    if POLL_KEY_ENVIRON not in environ:
        return result
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    remember(environ, captured["status"], captured["headers"], body)
    return [body]
