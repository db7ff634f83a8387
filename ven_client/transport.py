"""HTTPS to the VTN: OAuth2 client credentials, mTLS, backoff and clock skew.

Requests go through one ``urllib3.PoolManager`` (a ``ProxyManager`` with ``proxy``), so
the TLS connection is reused between polls. Its TLS context is built on the first request
and kept: the CA bundle (``ca_bundle``, else the system trust store) and the site
certificate (when configured) are read then, not per connection, and again only when one
of those files changes on disk (a renewed certificate). The certificate is presented on
every request, token requests included, because the VTN binds tokens to it (RFC 8705).
No proxy is taken from the environment, and with ``ca_bundle`` set no CA either; urllib3
does not retry on its own (the agent's backoff decides when to try again) and redirects
are not followed (no VTN answer to an API call is a redirect).
"""

from __future__ import annotations

import email.utils
import json as json_module
import os
import random
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

import urllib3
from urllib3.exceptions import HTTPError, SSLError

from ven_client import __version__, logs
from ven_client.config import Config, ConfigError

# Sent with every request (urllib3 adds Host, and Content-Length for a body).
HEADERS = {"User-Agent": f"ven-client/{__version__}", "Accept": "*/*",
           "Accept-Encoding": "gzip, deflate"}
RETRYABLE_STATUSES = {408, 425, 429, 500, 502, 503, 504}
MAX_RETRY_AFTER_S = 3600.0


class Unavailable(Exception):
    """The VTN could not be reached or asked us to come back later (retry with backoff)."""

    def __init__(self, message: str, *, status: int | None = None,
                 retry_after: float | None = None, answered: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.answered = answered  # an HTTP answer arrived: the request was not applied


class AuthError(Exception):
    """The VTN refused our credentials (token endpoint 4xx, or 401 with a fresh token)."""


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    now = time.time() if now is None else now
    return max(0.0, min(when.timestamp() - now, MAX_RETRY_AFTER_S))


def clock_skew(date_header: str | None, local_time: float) -> float | None:
    """VTN time minus local time in seconds, from an HTTP ``Date`` header (1 s
    resolution), or None without a usable header."""
    if not date_header:
        return None
    try:
        when = email.utils.parsedate_to_datetime(date_header)
    except (TypeError, ValueError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return when.timestamp() - local_time


def poll_delay(interval: float, jitter: float, rng: Callable[[], float] = random.random) -> float:
    """The next poll delay: ``interval`` +- ``jitter`` (a fraction), uniformly."""
    return interval * (1 + jitter * (2 * rng() - 1))


# A token is renewed at a random point between these fractions of its lifetime, so a fleet
# that got its tokens together (after a VTN restart) does not renew them together.
RENEW_WINDOW = (0.70, 0.90)
RENEW_MARGIN_S = 30.0  # renew at least this long before expiry (10% of very short lives)
RENEW_RETRY_S = 60.0  # while renewal fails, retry this often with the old token in use
EXPIRY_SAFETY_S = 5.0  # stop sending a token this long before the VTN says it expires


def renewal_delay(lifetime: float, rng: Callable[[], float] = random.random) -> float:
    """Seconds after issue at which to renew a token valid for ``lifetime`` seconds:
    uniformly within ``RENEW_WINDOW`` of its life, and at least ``RENEW_MARGIN_S`` (or 10%
    of the lifetime, if less) before it expires."""
    low, high = RENEW_WINDOW
    margin = min(RENEW_MARGIN_S, lifetime * 0.1)
    return min(lifetime * (low + (high - low) * rng()), lifetime - margin)


class Backoff:
    """Exponential backoff with a cap and "equal jitter": after the n-th consecutive
    failure wait between half and all of ``min(maximum, initial * 2**(n-1))``, and never
    less than a ``Retry-After`` the VTN gave (itself capped at one hour)."""

    def __init__(self, initial: float, maximum: float,
                 rng: Callable[[], float] = random.random) -> None:
        self.initial, self.maximum, self.rng = initial, maximum, rng
        self.failures = 0

    def failure(self, retry_after: float | None = None) -> float:
        self.failures += 1
        ceiling = min(self.maximum, self.initial * 2.0 ** min(self.failures - 1, 60))
        delay = ceiling / 2 + self.rng() * ceiling / 2
        if retry_after is not None:
            delay = max(delay, min(retry_after, MAX_RETRY_AFTER_S))
        return delay

    def success(self) -> None:
        self.failures = 0


class Response:
    """One answer of the VTN: ``status_code``, ``headers`` (case-insensitive) and the body
    (``content``, ``text``, ``json()``)."""

    __slots__ = ("status_code", "headers", "content")

    def __init__(self, status_code: int, headers: Mapping[str, str], content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body as JSON; ValueError when it is not JSON."""
        return json_module.loads(self.content)


def tls_context(config: Config) -> ssl.SSLContext:
    """The TLS context of every connection to the VTN: ``ca_bundle`` (else the system
    trust store) verifies the VTN unless ``tls_verify`` is off, and the site certificate
    is presented when one is configured. Raises :class:`ConfigError` when a file cannot
    be read or the key does not match the certificate."""
    try:
        context = ssl.create_default_context(cafile=config.ca_bundle or None)
        if config.client_cert:
            context.load_cert_chain(config.client_cert, config.client_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the TLS files (ca_bundle, client_cert, "
                          f"client_key): {exc}") from exc
    if not config.tls_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _tls_files_stamp(config: Config) -> tuple:
    """What identifies the TLS files' current contents (path, size, mtime): a renewed
    certificate changes it, and the next request uses the new one."""
    stamp = []
    for path in (config.ca_bundle, config.client_cert, config.client_key):
        try:
            status = os.stat(path) if path else None
        except OSError:
            status = None
        stamp.append((path, status and (status.st_size, status.st_mtime_ns)))
    return (config.tls_verify, config.proxy, *stamp)


class Transport:
    """Authenticated calls to the VTN, for one OpenADR version.

    With several ``vtn_urls`` the transport fails over: after
    ``failover_after_failures`` consecutive connection failures (no HTTP answer at all)
    it moves ``config.vtn_url`` to the next URL, and while not on the first it checks
    the first's ``/readyz`` every ``failback_check_s`` and returns to it when ready.
    """

    def __init__(self, config: Config, clock: Callable[[], float] = time.time,
                 rng: Callable[[], float] = random.random) -> None:
        self.config = config
        self.clock = clock
        self.rng = rng
        self._pool: urllib3.PoolManager | None = None  # made on the first request
        self._pool_stamp: tuple = ()
        self._token: str | None = None
        self._token_renew_at = 0.0  # when to ask for the next token (jittered)
        self._token_expires = 0.0  # when this token stops being usable
        self.skew_s: float | None = None
        self._skew_warned = False
        self._secret = ""
        self.urls = config.urls
        self._connection_failures = 0
        self._next_failback_check = 0.0

    def close(self) -> None:
        """Close pooled connections (the next request opens a new one)."""
        if self._pool is not None:
            self._pool.clear()

    def _connections(self) -> urllib3.PoolManager:
        """The connection pool, made again (with a new TLS context) when the TLS files
        or the proxy changed."""
        stamp = _tls_files_stamp(self.config)
        if self._pool is None or stamp != self._pool_stamp:
            self.close()
            options: dict[str, Any] = {"ssl_context": tls_context(self.config),
                                       "retries": False, "maxsize": 1}
            if not self.config.tls_verify:
                options["assert_hostname"] = False
            self._pool = (urllib3.ProxyManager(self.config.proxy, **options)
                          if self.config.proxy else urllib3.PoolManager(**options))
            self._pool_stamp = stamp
        return self._pool

    # -- token --

    def token(self) -> str:
        """A valid access token. A new one is requested when there is none, or at a random
        point late in the current one's life (:func:`renewal_delay`). If that early
        renewal fails because the VTN is unavailable (unreachable, 5xx, 429), the current
        token is used while it lasts and renewal is retried every ``RENEW_RETRY_S``."""
        now = self.clock()
        if self._token and now < self._token_renew_at:
            return self._token
        try:
            return self._new_token()
        except Unavailable as exc:
            if not self._token or now >= self._token_expires:
                raise
            self._token_renew_at = now + min(RENEW_RETRY_S, (self._token_expires - now) / 2)
            logs.log("token_renewal_deferred", level="warning", reason=str(exc),
                     expires_in_s=round(self._token_expires - now))
            return self._token

    def _new_token(self) -> str:
        if not self._secret:
            self._secret = self.config.secret()
            logs.register_secret(self._secret)
        url = f"{self.config.base_path}/auth/token"
        form = urlencode({"grant_type": "client_credentials",
                          "client_id": self.config.client_id, "client_secret": self._secret})
        response = self._send("POST", url, body=form.encode(), headers={
            "Content-Type": "application/x-www-form-urlencoded"})
        if response.status_code != 200:
            detail = _problem(response)
            raise AuthError(f"token request refused: HTTP {response.status_code} {detail}")
        body = response.json()
        token = str(body["access_token"])
        logs.register_secret(token)
        lifetime = float(body.get("expires_in") or 3600)
        issued = self.clock()
        renew_after = renewal_delay(lifetime, self.rng)
        self._token = token
        self._token_renew_at = issued + renew_after
        self._token_expires = issued + max(renew_after, lifetime - EXPIRY_SAFETY_S)
        logs.log("token_issued", expires_in_s=lifetime, scope=body.get("scope"),
                 bound=bool(body.get("cnf")), renew_in_s=round(renew_after))
        return token

    def drop_token(self) -> None:
        self._token = None

    # -- fail-over --

    def _switch_to(self, url: str, event: str, **fields: object) -> None:
        previous = self.config.vtn_url
        self.config.vtn_url = url
        self._connection_failures = 0
        self._next_failback_check = self.clock() + self.config.failback_check_s
        self.drop_token()  # a token is asked of the VTN it is used with
        self.close()  # no pooled connection to the previous VTN
        logs.log(event, level="warning" if event == "vtn_failover" else "info",
                 **{"from": previous, "to": url}, **fields)

    def _connection_failed(self) -> None:
        self._connection_failures += 1
        if len(self.urls) > 1 and \
                self._connection_failures >= self.config.failover_after_failures:
            current = self.urls.index(self.config.vtn_url) if \
                self.config.vtn_url in self.urls else -1
            self._switch_to(self.urls[(current + 1) % len(self.urls)], "vtn_failover",
                            failures=self._connection_failures)

    def _maybe_fail_back(self) -> None:
        primary = self.urls[0]
        if self.config.vtn_url == primary or self.clock() < self._next_failback_check:
            return
        self._next_failback_check = self.clock() + self.config.failback_check_s
        wait = min(5.0, self.config.request_timeout_s)
        try:
            ready = self._connections().request(
                "GET", f"{primary.rstrip('/')}/readyz", headers=HEADERS, redirect=False,
                timeout=urllib3.Timeout(connect=wait, read=wait))
        except (HTTPError, ConfigError):
            return
        if ready.status == 200:
            self._switch_to(primary, "vtn_failback")

    # -- requests --

    def _send(self, method: str, url: str, *, body: bytes | None = None,
              headers: Mapping[str, str] | None = None,
              params: Mapping[str, object] | None = None) -> Response:
        if len(self.urls) > 1:
            before = self.config.vtn_url.rstrip("/")
            self._maybe_fail_back()
            if url.startswith(before) and before != self.config.vtn_url.rstrip("/"):
                url = self.config.vtn_url.rstrip("/") + url[len(before):]
        query = {k: v for k, v in (params or {}).items() if v is not None}
        if query:
            url += ("&" if "?" in url else "?") + urlencode(query, doseq=True)
        wait = self.config.request_timeout_s
        try:
            raw = self._connections().request(
                method, url, body=body, headers={**HEADERS, **(headers or {})}, redirect=False,
                timeout=urllib3.Timeout(connect=wait, read=wait))
        except SSLError as exc:
            raise Unavailable(f"TLS error talking to the VTN: {exc}") from exc
        except HTTPError as exc:
            self._connection_failed()
            raise Unavailable(f"VTN unreachable: {type(exc).__name__}: {exc}") from exc
        response = Response(raw.status, raw.headers, raw.data)
        self._connection_failures = 0
        self._check_skew(response)
        if response.status_code in RETRYABLE_STATUSES:
            raise Unavailable(
                f"VTN answered HTTP {response.status_code}", status=response.status_code,
                retry_after=parse_retry_after(response.headers.get("Retry-After"),
                                              self.clock()), answered=True)
        return response

    def _check_skew(self, response: Response) -> None:
        skew = clock_skew(response.headers.get("Date"), self.clock())
        if skew is None:
            return
        self.skew_s = skew
        # The Date header has a resolution of one second; allow for it.
        beyond = abs(skew) > self.config.clock_skew_warn_s + 1
        if beyond and not self._skew_warned:
            logs.log("clock_skew", level="warning", skew_s=round(skew, 1),
                     threshold_s=self.config.clock_skew_warn_s,
                     hint="fix NTP on this box: instructions are scheduled by UTC time")
        elif not beyond and self._skew_warned:
            logs.log("clock_skew_resolved", skew_s=round(skew, 1))
        self._skew_warned = beyond

    def request(self, method: str, path: str, *, json: object = None,
                headers: Mapping[str, str] | None = None,
                params: Mapping[str, object] | None = None,
                absolute: bool = False) -> Response:
        """An authenticated request to ``<base_path>/<path>`` (or the URL ``path`` when
        ``absolute``), with ``json`` as the body and ``params`` as the query (None values
        left out). Retries once with a new token on 401. Raises :class:`Unavailable` for
        network errors, 5xx and 429; returns every other answer."""
        url = path if absolute else f"{self.config.base_path}/{path.lstrip('/')}"
        body = None
        extra: dict[str, str] = {}
        if json is not None:
            body = json_module.dumps(json, allow_nan=False).encode()
            extra["Content-Type"] = "application/json"
        for attempt in (1, 2):
            sent_headers = {"Authorization": f"Bearer {self.token()}", **extra,
                            **(headers or {})}
            response = self._send(method, url, body=body, headers=sent_headers, params=params)
            if response.status_code == 401 and attempt == 1:
                self.drop_token()
                continue
            if response.status_code == 401:
                raise AuthError(f"the VTN refused our token: {_problem(response)}")
            return response
        raise AssertionError("unreachable")

    def get_public(self, url: str) -> Response:
        """An unauthenticated GET (the JWKS)."""
        return self._send("GET", url)


def _problem(response: Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        return str(body.get("error_description") or body.get("detail") or body.get("title")
                   or body)[:300]
    return str(body)[:300]
