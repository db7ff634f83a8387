"""The gunicorn worker the VTN serves with: ``gthread``, answering malformed requests with
problem documents.

Gunicorn refuses a request it cannot parse (a request line over its 4094-byte limit, a
header field that is too large, a malformed request line or header, an unsupported
transfer coding, ...) before Django sees it, and by default answers with an HTML page and
statuses such as 414, 417 or 431 that no operation of the OpenADR documents lists. This
worker answers those refusals as every other error of the VTN: a 400 problem document
served as ``application/json`` (the request's ``Accept`` cannot be trusted when the request
itself could not be read), whose ``detail`` starts with the natural status's title, for
example ``"URI Too Long: ..."``. The connection is closed afterwards, as gunicorn does.
Failures on the server's side (500) and TLS errors keep gunicorn's own handling.
"""

from __future__ import annotations

import json

from gunicorn import util
from gunicorn.http import errors
from gunicorn.workers.gthread import ThreadWorker

from vtn.api.problems import JSON_CONTENT_TYPE, problem_body

# The natural status of each parse failure (named in the detail); the answer is 400.
_NATURAL = (
    (errors.LimitRequestLine, "URI Too Long"),
    (errors.LimitRequestHeaders, "Request Header Fields Too Large"),
    (errors.ExpectationFailed, "Expectation Failed"),
    (errors.UnsupportedTransferCoding, "Not Implemented"),
    (errors.ForbiddenProxyRequest, "Forbidden"),
)


def refusal_detail(exc: BaseException) -> str | None:
    """The 400 problem's detail for a request gunicorn could not parse, or None when
    ``exc`` is not the client's fault (gunicorn's own handling applies)."""
    if not isinstance(exc, errors.ParseException) or isinstance(
            exc, (errors.ConfigurationProblem, errors.InvalidResponseHeader,
                  errors.InvalidResponseHeaderName)):
        return None
    for kind, title in _NATURAL:
        if isinstance(exc, kind):
            return f"{title}: {exc}"
    return f"The request could not be parsed: {exc}"


def problem_bytes(detail: str) -> bytes:
    """A complete HTTP/1.1 400 response carrying the problem document."""
    body = json.dumps(problem_body(400, detail)).encode()
    head = (f"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n"
            f"Content-Type: {JSON_CONTENT_TYPE}\r\nContent-Length: {len(body)}\r\n"
            f"Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n\r\n")
    return head.encode("latin-1") + body


class ProblemThreadWorker(ThreadWorker):
    """``gthread`` whose refusals of unparseable requests are 400 problem documents."""

    def handle_error(self, req, client, addr, exc) -> None:
        detail = refusal_detail(exc)
        if detail is None:
            super().handle_error(req, client, addr, exc)
            return
        self.log.warning("Invalid request from ip=%s: %s", (addr or ("", -1))[0], exc)
        try:
            util.write_nonblock(client, problem_bytes(detail))
        except Exception:  # noqa: BLE001 - the peer may be gone; nothing left to tell it
            self.log.debug("Failed to send error message.")
