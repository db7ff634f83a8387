"""Which HTTP statuses each OpenADR operation may answer: documented, or a listed deviation.

Every operation of the two official documents lists the statuses it answers. The VTN
answers only those, plus the deliberate deviations in :data:`DEVIATIONS` (each with the
reason). ``docs/openadr-api.md`` carries the same table (rendered by
:func:`deviations_markdown`; a test keeps the two equal), and
:func:`vtn.api.problems.problem_exception_handler` turns any other error status of an
OpenADR operation into a 400 whose detail says what clashed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from vtn.schemas import VERSION_31, document

ANY = "*"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


@dataclass(frozen=True)
class Deviation:
    """A status answered where the document does not list it.

    ``version``, ``method`` and ``path`` (a document path template) say where; ``ANY``
    matches everything, ``path`` may also be ``"undocumented"`` (a method or path the
    document has no operation for). ``requires`` names a request header without which
    the deviation cannot occur (and does not apply).
    """

    status: int
    version: str
    method: str
    path: str
    when: str
    why: str
    requires: str = ""


UNDOCUMENTED = "undocumented"

DEVIATIONS: tuple[Deviation, ...] = (
    Deviation(304, ANY, "GET", ANY,
              "a GET whose `If-None-Match` matches the current ETag",
              "RFC 9110 conditional GET: an unchanged poll costs no body. Only a client "
              "that sends `If-None-Match` can receive it.", requires="If-None-Match"),
    Deviation(401, ANY, ANY, ANY,
              "no token, an unknown, expired or revoked token, a token bound to another "
              "certificate; at the token endpoint, `invalid_client`",
              "RFC 6750 section 3.1 and RFC 6749 section 5.2 require 401 with "
              "`WWW-Authenticate`, and clients renew their token on it. The 3.0.1 document "
              "lists no 401 at all; 3.1 omits it on `PUT /programs/{programID}` and "
              "`GET /notifiers`."),
    Deviation(403, VERSION_31, "GET", "/notifiers",
              "a token with no read scope",
              "The same scope rule as every other read; the document lists only 200."),
    Deviation(409, ANY, "POST", ANY,
              "a creating POST retried with an `Idempotency-Key` whose object was deleted "
              "since",
              "`Idempotency-Key` is an extension the documents do not cover; only a client "
              "that sends the header can receive it (see Idempotent retries).",
              requires="Idempotency-Key"),
    Deviation(422, ANY, "POST", ANY,
              "an `Idempotency-Key` reused for a different request",
              "As for 409 above: the status the Idempotency-Key draft "
              "(draft-ietf-httpapi-idempotency-key-header) prescribes.",
              requires="Idempotency-Key"),
    Deviation(413, ANY, ANY, ANY,
              "a request body over `VTN_MAX_BODY_BYTES` (1 MiB by default)",
              "RFC 9110 section 15.5.14. The body is refused before it is read, so no "
              "validation runs; a 400 would blame the content when the size is at fault."),
    Deviation(429, ANY, ANY, ANY,
              "over a rate limit (token requests, failed authentications); carries "
              "`Retry-After`",
              "RFC 6585. No document lists it, yet a client must be told to slow down and "
              "when to retry; a 400 would invite an immediate retry."),
    Deviation(500, VERSION_31, "GET", "/notifiers",
              "a server fault",
              "A fault can happen anywhere; every other operation lists 500."),
    Deviation(503, ANY, ANY, ANY,
              "the database is down or locked (carries `Retry-After`); in the conformance "
              "sandbox, also an outage injected by a test scenario",
              "RFC 9110 section 15.6.4: the request may succeed when retried, which a 500 "
              "does not say. Fault injection exists to show how a VEN copes with an "
              "unavailable VTN; it is disabled on a production VTN "
              "(`CONFORMANCE_FAULTS_ENABLED`)."),
    Deviation(200, VERSION_31, ANY, "/vens, /resources and their items",
              "the body of a ven or resource: `objectType` is `VEN` or `RESOURCE`",
              "Not a status but a schema defect: the 3.1.1 `ven` and `resource` schemas "
              "combine `objectMetadata` (objectType one of the object type names) with "
              "`BlVenRequest`/`BlResourceRequest` (objectType `BL_VEN_REQUEST`/"
              "`BL_RESOURCE_REQUEST`); no value satisfies both. See the section on this "
              "defect below."),
    Deviation(404, ANY, ANY, UNDOCUMENTED,
              "a path no operation of the document has",
              "There is no operation whose list could apply."),
    Deviation(405, ANY, ANY, UNDOCUMENTED,
              "a method the document defines no operation for at that path; carries "
              "`Allow`",
              "There is no operation whose list could apply (RFC 9110 section 15.5.6)."),
)


@cache
def _operations(version: str) -> tuple[tuple[re.Pattern, str, frozenset[str]], ...]:
    """(compiled template, template, methods) for each path of the version's document."""
    compiled = []
    for template, item in document(version)["paths"].items():
        pattern = re.escape(template)
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", pattern)
        methods = frozenset(m.upper() for m in item if m in METHODS)
        compiled.append((re.compile(f"^{pattern}$"), template, methods))
    # Literal paths first: /notifiers/mqtt/topics/programs before a template that
    # could also match it.
    compiled.sort(key=lambda entry: entry[1].count("{"))
    return tuple(compiled)


def operation(version: str, method: str, path: str) -> str | None:
    """The document path template of ``method path`` (path below the version's base),
    or None when the document has no such operation."""
    for pattern, template, methods in _operations(version):
        if pattern.match(path):
            return template if method.upper() in methods else None
    return None


def documented(version: str, method: str, template: str) -> frozenset[int]:
    """The statuses the document lists for one operation."""
    responses = document(version)["paths"][template][method.lower()]["responses"]
    return frozenset(int(code) for code in responses if str(code).isdigit())


def _matches(deviation: Deviation, version: str, method: str, template: str,
             headers: frozenset[str]) -> bool:
    return (deviation.version in (ANY, version)
            and deviation.method in (ANY, method.upper())
            and deviation.path in (ANY, template)
            and (not deviation.requires or deviation.requires.lower() in headers))


def allowed(version: str, method: str, template: str | None,
            headers: frozenset[str] = frozenset()) -> frozenset[int]:
    """Documented statuses of the operation plus the deviations that apply to it.

    ``template`` None means the document has no such operation (see :func:`operation`);
    ``headers`` are the (lower-case) names of the request's headers.
    """
    base = documented(version, method, template) if template else frozenset()
    where = template or UNDOCUMENTED
    headers = frozenset(name.lower() for name in headers)
    return base | {d.status for d in DEVIATIONS
                   if _matches(d, version, method, where, headers)}


def deviations_markdown() -> str:
    """The deviation table as ``docs/openadr-api.md`` shows it."""
    lines = ["| Status | Version | Operation | When | Why |", "|---|---|---|---|---|"]
    for d in DEVIATIONS:
        version = "both" if d.version == ANY else d.version
        method = "any method" if d.method == ANY else d.method
        path = {ANY: "any path", UNDOCUMENTED: "not in the document"}.get(d.path,
                                                                          f"`{d.path}`")
        when = f"{d.when} (only with `{d.requires}`)" if d.requires else d.when
        lines.append(f"| {d.status} | {version} | {method} {path} | {when} | {d.why} |")
    return "\n".join(lines)

