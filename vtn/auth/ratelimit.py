"""Fixed-window rate limits kept in Django's cache (shared by every process with Redis).

Two budgets protect authentication (docs/security.md, "Abuse resistance"):

* ``VTN_TOKEN_RATE``: token requests, counted per client_id and per source address;
* ``VTN_AUTH_FAILURE_RATE``: failed authentications (token endpoint and bearer tokens),
  counted per client_id and per source address.

A rate is ``"N/unit"`` or ``"N/<k><unit>"`` with unit ``s``, ``min``, ``h`` or ``day``
(``"30/min"``, ``"5/10s"``). Settings are read on every check, so tests may override them.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

_UNITS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600,
          "hour": 3600, "d": 86400, "day": 86400}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([a-z]+)\s*$")

TOKEN = "token"
FAILURE = "failure"


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
    return parse_rate(settings.VTN_TOKEN_RATE if budget == TOKEN
                      else settings.VTN_AUTH_FAILURE_RATE)


def _key(budget: str, dimension: str, value: str, window: int) -> str:
    digest = hashlib.sha256(value.encode()).hexdigest()[:32]  # client_ids may be arbitrary
    return f"vtn:rl:{budget}:{dimension}:{digest}:{window}"


def _window(rate: Rate, now: float) -> tuple[int, int]:
    """The current window index and the seconds until it ends (at least 1)."""
    index = int(now // rate.period_seconds)
    return index, max(1, math.ceil((index + 1) * rate.period_seconds - now))


def hit(budget: str, dimension: str, value: str) -> None:
    """Count one event against ``budget`` for ``dimension=value`` (e.g. addr=127.0.0.1)."""
    if not value:
        return
    rate = _rate(budget)
    index, remaining = _window(rate, time.time())
    key = _key(budget, dimension, value, index)
    cache.add(key, 0, timeout=remaining + 1)
    try:
        cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=remaining + 1)


def retry_after(budget: str, dimension: str, value: str) -> int | None:
    """Seconds until ``dimension=value`` may try again, or None if it is within budget."""
    if not value:
        return None
    rate = _rate(budget)
    index, remaining = _window(rate, time.time())
    if (cache.get(_key(budget, dimension, value, index)) or 0) >= rate.limit:
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
    return cache.add(f"{_key(budget, dimension, value, index)}:logged", 1, timeout=remaining + 1)
