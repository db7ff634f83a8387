"""Fixed-window rate limits kept in Django's cache (shared by every process with Redis).

Three budgets protect authentication (docs/security.md, "Abuse resistance"):

* ``VTN_TOKEN_RATE``: tokens issued, counted per authenticated client;
* ``VTN_AUTH_FAILURE_RATE``: failed authentications that name something real (a known
  client_id, a token of a known client, a certificate), counted per (source address,
  that identity);
* ``VTN_AUTH_FAILURE_ADDRESS_RATE``: failed authentications whose credentials name nothing
  valid (unknown client ids, garbage bearer tokens), counted per source address.

Only failing requests meet the failure budgets (see :func:`register_failure`): a request
with valid credentials is never refused by them.

A rate is ``"N/unit"`` or ``"N/<k><unit>"`` with unit ``s``, ``min``, ``h`` or ``day``
(``"30/min"``, ``"5/10s"``). Settings are read on every check, so tests may override them.

The counters must never make authentication depend on the cache: when the shared cache
(Redis) does not answer, they fall back to a counter in this process, log a warning (at
most once a minute) and count the fallback in :func:`fallback_count`; the shared cache is
tried again after ``VTN_RATELIMIT_RETRY_SECONDS``.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.locmem import LocMemCache

logger = logging.getLogger("vtn.security")

_UNITS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600,
          "hour": 3600, "d": 86400, "day": 86400}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([a-z]+)\s*$")

TOKEN = "token"
FAILURE = "failure"
FAILURE_ADDRESS = "failure_addr"
_SETTINGS = {TOKEN: "VTN_TOKEN_RATE", FAILURE: "VTN_AUTH_FAILURE_RATE",
             FAILURE_ADDRESS: "VTN_AUTH_FAILURE_ADDRESS_RATE"}


@dataclass(frozen=True)
class Rate:
    limit: int
    period_seconds: int


def parse_rate(text: str) -> Rate:
    """``"30/min"`` as Rate(30, 60). Raises ValueError for anything else."""
    match = _RATE.match(text.lower())
    if not match or match.group(3) not in _UNITS:
        raise ValueError(f"rate {text!r} is not N/unit (units: s, min, h, day), e.g. '30/min'")
    multiplier = int(match.group(2) or 1)
    return Rate(int(match.group(1)), multiplier * _UNITS[match.group(3)])


def _rate(budget: str) -> Rate:
    return parse_rate(getattr(settings, _SETTINGS[budget]))


def _key(budget: str, dimension: str, value: str, window: int) -> str:
    digest = hashlib.sha256(value.encode()).hexdigest()[:32]  # client_ids may be arbitrary
    return f"vtn:rl:{budget}:{dimension}:{digest}:{window}"


def _window(rate: Rate, now: float) -> tuple[int, int]:
    """The current window index and the seconds until it ends (at least 1)."""
    index = int(now // rate.period_seconds)
    return index, max(1, math.ceil((index + 1) * rate.period_seconds - now))


# --- the store: the shared cache, or this process when the cache is down ----------------------


class _LocalCounters:
    """Counters of this process with expiry: the fallback while the shared cache is down."""

    def __init__(self, max_entries: int = 50_000) -> None:
        self.max_entries = max_entries
        self._data: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def _live(self, key: str, now: float) -> int | None:
        entry = self._data.get(key)
        if entry is None or entry[1] <= now:
            return None
        return entry[0]

    def get(self, key: str) -> int:
        with self._lock:
            return self._live(key, time.time()) or 0

    def add(self, key: str, value: int, timeout: float) -> bool:
        now = time.time()
        with self._lock:
            if self._live(key, now) is not None:
                return False
            self._make_room(now)
            self._data[key] = (value, now + timeout)
            return True

    def incr(self, key: str, timeout: float) -> int:
        now = time.time()
        with self._lock:
            current = self._live(key, now)
            if current is None:
                self._make_room(now)
                self._data[key] = (1, now + timeout)
                return 1
            self._data[key] = (current + 1, self._data[key][1])
            return current + 1

    def _make_room(self, now: float) -> None:
        if len(self._data) < self.max_entries:
            return
        for key in [k for k, (_, expires) in self._data.items() if expires <= now]:
            del self._data[key]
        if len(self._data) >= self.max_entries:
            self._data.clear()

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


_local = _LocalCounters()
_state_lock = threading.Lock()
_state = {"down_until": 0.0, "fallbacks": 0, "warned_at": 0.0}


def fallback_count() -> int:
    """How many counter operations of this process used the local fallback since start."""
    return int(_state["fallbacks"])


def shared_cache_down() -> bool:
    """True while this process counts locally because the shared cache did not answer."""
    return time.time() < _state["down_until"]


def _fallback(exc: BaseException | None) -> None:
    now = time.time()
    with _state_lock:
        _state["fallbacks"] += 1
        if exc is not None:
            _state["down_until"] = now + float(settings.VTN_RATELIMIT_RETRY_SECONDS)
        warn = exc is not None and now - _state["warned_at"] >= 60
        if warn:
            _state["warned_at"] = now
    if warn:
        logger.warning("rate-limit counters: the shared cache does not answer (%s: %s); "
                       "counting in this process until it does (%d local operations so far)",
                       type(exc).__name__, exc, _state["fallbacks"])


def _shared(operation):
    """Run ``operation(cache)`` against the shared cache; None means "use the fallback"."""
    if shared_cache_down():
        _fallback(None)
        return None
    try:
        return operation(cache)
    except Exception as exc:  # noqa: BLE001 - any cache failure (redis errors, OSError...)
        _fallback(exc)
        return None


def counters_state() -> str:
    """Where this process counts now, for the readiness probe: ``shared`` (the shared cache
    answers), ``local`` (a shared cache is configured but does not answer: the limits hold
    per process) or ``in-process`` (no shared cache is configured)."""
    if isinstance(caches["default"], LocMemCache):
        return "in-process"
    answered = _shared(lambda c: (c.get("vtn:ratelimit:probe"),))
    return "local" if answered is None else "shared"


def _get(key: str) -> int:
    found = _shared(lambda c: (True, c.get(key)))
    return _local.get(key) if found is None else (found[1] or 0)


def _add(key: str, value: int, timeout: float) -> bool:
    added = _shared(lambda c: (c.add(key, value, timeout=timeout),))
    return _local.add(key, value, timeout) if added is None else added[0]


def _incr(key: str, timeout: float) -> int:
    def operation(c) -> tuple[int]:
        c.add(key, 0, timeout=timeout)
        try:
            return (c.incr(key),)
        except ValueError:  # expired between add and incr
            c.set(key, 1, timeout=timeout)
            return (1,)

    counted = _shared(operation)
    return _local.incr(key, timeout) if counted is None else counted[0]


# --- budgets ----------------------------------------------------------------------------------


def hit(budget: str, dimension: str, value: str) -> int:
    """Count one event against ``budget`` for ``dimension=value`` (e.g. addr=127.0.0.1);
    the count in the current window afterwards (0 when ``value`` is empty)."""
    if not value:
        return 0
    rate = _rate(budget)
    index, remaining = _window(rate, time.time())
    return _incr(_key(budget, dimension, value, index), remaining + 1)


def retry_after(budget: str, dimension: str, value: str) -> int | None:
    """Seconds until ``dimension=value`` may try again, or None if it is within budget."""
    if not value:
        return None
    rate = _rate(budget)
    index, remaining = _window(rate, time.time())
    if _get(_key(budget, dimension, value, index)) >= rate.limit:
        return remaining
    return None


def first_exceeded(budget: str, **dimensions: str) -> tuple[str, int] | None:
    """The first of ``dimensions`` (name=value) over ``budget``, with its Retry-After."""
    for dimension, value in dimensions.items():
        wait = retry_after(budget, dimension, value)
        if wait is not None:
            return dimension, wait
    return None


def first_time_in_window(budget: str, dimension: str, value: str) -> bool:
    """True once per window per key: used to log a rate-limit event without flooding."""
    rate = _rate(budget)
    index, remaining = _window(rate, time.time())
    return _add(f"{_key(budget, dimension, value, index)}:logged", 1, remaining + 1)


@dataclass(frozen=True)
class FailureVerdict:
    """What to do with one failed authentication: ``wait`` is None to answer it as usual
    (401) and log it, or the Retry-After seconds of a 429 when its key is over budget;
    ``first`` is True for the first refusal of that key in the window (log it once)."""

    wait: int | None
    first: bool = False
    dimension: str = ""


def register_failure(address: str, identity: str | None) -> FailureVerdict:
    """Judge and count one failed authentication from ``address``.

    ``identity`` is what the failed credentials name that exists (``client:<client_id>``
    of a known client, ``cert:<thumbprint>``); None when they name nothing valid (an
    unknown client_id, a garbage token). Failures naming an identity count per (address,
    identity) against ``VTN_AUTH_FAILURE_RATE``, the others per address against
    ``VTN_AUTH_FAILURE_ADDRESS_RATE``. Call this only for requests that failed: good
    credentials never meet these budgets, whatever the failures around them.
    """
    if identity:
        budget, dimension, value = FAILURE, "addr_id", f"{address}|{identity}"
    else:
        budget, dimension, value = FAILURE_ADDRESS, "addr", address
    if not value:
        return FailureVerdict(None)
    wait = retry_after(budget, dimension, value)
    if wait is None:
        hit(budget, dimension, value)
        return FailureVerdict(None, dimension=dimension)
    return FailureVerdict(wait, first_time_in_window(budget, dimension, value), dimension)


def clear_local() -> None:
    """Forget this process's fallback counters and cache state (for tests)."""
    _local.clear()
    with _state_lock:
        _state.update(down_until=0.0, warned_at=0.0)
