"""Domain errors: what a service, selector or command refuses, with the HTTP status it
means. Plain exceptions, free of any web framework, so every layer can raise them and a
management command or a task sees the same refusal as an HTTP client.

The API renders them as RFC 7807 problem documents (``vtn/api/problems.py``); the
console shows their detail on its pages; commands print it.
"""

from __future__ import annotations

from collections.abc import Callable


class Problem(Exception):
    """A refusal with its HTTP status, a short title and a specific ``detail``;
    ``errors`` lists the individual faults when there are several. ``after_rollback`` is
    a record the refusal must leave behind although its transaction rolls back (a
    security log line): whoever renders the problem runs it once the transaction is gone."""

    status_code: int = 400
    title: str = "Bad Request"

    def __init__(self, detail: str, *, errors: list[str] | None = None,
                 after_rollback: Callable[[], object] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors: list[str] = list(errors or [])
        self.after_rollback = after_rollback


class BadRequest(Problem):
    pass


class NotFound(Problem):
    status_code = 404
    title = "Not Found"


class Conflict(Problem):
    status_code = 409
    title = "Conflict"


class Forbidden(Problem):
    status_code = 403
    title = "Forbidden"
