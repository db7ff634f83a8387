"""The one login throttle of the operator console and the Django admin.

Every failed login counts against three keys: the account (``account:<username>``), the
source address (``address:<ip>``) and the two together (``pair:<username>|<ip>``).

* **Progressive delay.** Once a key has ``LOGIN_THROTTLE_FREE_FAILURES`` failures, the next
  attempt on it must wait ``LOGIN_THROTTLE_BASE_DELAY_SECONDS`` seconds after the last
  failure, doubling with each further failure up to ``LOGIN_THROTTLE_MAX_DELAY_SECONDS``.
  An attempt made during a delay is refused without checking the password.
* **Lockout.** An address, or an account from one address, that reaches
  ``LOGIN_THROTTLE_LOCKOUT_FAILURES`` attempts (failures and attempts refused during a
  delay) is locked for ``LOGIN_THROTTLE_LOCKOUT_SECONDS``, or until an administrator clears
  it (``manage.py login_lockouts clear``).
* **No lockout of a named user by others.** The account key only ever delays (at most the
  maximum delay after the last real failure, which refused attempts do not move); it is
  never locked. An attacker can slow guesses at one account, not keep its owner out from
  the owner's own address.

Failures, lockouts and cleared lockouts are written to the security log
(``manage.py security_log``). Counts live in the database (:class:`console.models.
LoginThrottle`), so every web process sees them and they do not depend on the cache.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from console.models import LoginThrottle
from vtn.auth import security_log

LOGIN_FAILED = "login_failed"
LOGIN_LOCKED = "login_locked"
LOGIN_UNLOCKED = "login_unlocked"


@dataclass(frozen=True)
class Refusal:
    """Why an attempt is refused before its password is checked."""

    retry_after: int  # seconds
    locked: bool

    @property
    def message(self) -> str:
        if self.locked:
            return ("Too many failed logins from this address: logins are locked. Ask an "
                    "administrator to clear the lock, or try again later.")
        return (f"Too many failed logins: wait {self.retry_after} seconds before trying "
                "again.")


def _setting(name: str, default: float) -> float:
    return float(getattr(settings, name, default))


def _norm(username: str) -> str:
    return username.strip().lower()[:150]


def _keys(username: str, address: str) -> dict[str, str]:
    """The keys of an attempt (kind -> key); an empty username or address has none."""
    user = _norm(username)
    keys = {}
    if user:
        keys["account"] = f"account:{user}"
    if address:
        keys["address"] = f"address:{address}"
    if user and address:
        keys["pair"] = f"pair:{user}|{address}"
    return keys


def delay_seconds(failures: int) -> float:
    """How long after the last failure a key with ``failures`` failures must wait."""
    free = int(_setting("LOGIN_THROTTLE_FREE_FAILURES", 5))
    if failures < free:
        return 0.0
    base = _setting("LOGIN_THROTTLE_BASE_DELAY_SECONDS", 1)
    ceiling = _setting("LOGIN_THROTTLE_MAX_DELAY_SECONDS", 60)
    return min(base * 2 ** min(failures - free, 32), ceiling)


def _wait(row: LoginThrottle, now: datetime) -> float:
    """Seconds ``row`` still makes an attempt wait (0: none)."""
    if row.locked_until is not None and row.locked_until > now:
        return (row.locked_until - now).total_seconds()
    until = row.last_failure + timedelta(seconds=delay_seconds(row.failures))
    return max(0.0, (until - now).total_seconds())


def check(*, username: str, address: str, door: str) -> Refusal | None:
    """None if an attempt by ``username`` from ``address`` may have its password checked
    now; otherwise the refusal. A refused attempt still counts against the address and
    the pair, so hammering through a delay ends in a lockout."""
    keys = _keys(username, address)
    now = timezone.now()
    rows = {row.key: row for row in LoginThrottle.objects.filter(key__in=keys.values())}
    waits, locked = [], False
    for key in keys.values():
        row = rows.get(key)
        if row is None:
            continue
        wait = _wait(row, now)
        if wait > 0:
            waits.append(wait)
            locked = locked or (row.locked_until is not None and row.locked_until > now)
    if not waits:
        return None
    _count(username, address, door, kinds=("address", "pair"), now=now, failed=False)
    return Refusal(retry_after=max(1, math.ceil(max(waits))), locked=locked)


def failed(*, username: str, address: str, door: str) -> None:
    """Count a failed login (wrong password, code or role) against all three keys."""
    now = timezone.now()
    security_log.record(LOGIN_FAILED, client_id=f"{door}:{_norm(username)}",
                        remote_addr=address, detail=f"failed {door} login")
    _count(username, address, door, kinds=("account", "address", "pair"), now=now,
           failed=True)


def succeeded(*, username: str, address: str) -> None:
    """A successful login clears its account and pair counts (not the address's: one good
    account must not wipe an address's failures at guessing others)."""
    keys = _keys(username, address)
    LoginThrottle.objects.filter(
        key__in=[keys[k] for k in ("account", "pair") if k in keys],
        locked_until__isnull=True).delete()


def _count(username: str, address: str, door: str, *, kinds: tuple[str, ...],
           now: datetime, failed: bool) -> None:
    keys = _keys(username, address)
    limit = int(_setting("LOGIN_THROTTLE_LOCKOUT_FAILURES", 20))
    lock_for = timedelta(seconds=_setting("LOGIN_THROTTLE_LOCKOUT_SECONDS", 3600))
    newly_locked = []
    with transaction.atomic():
        for kind in kinds:
            if kind not in keys:
                continue
            row, _ = LoginThrottle.objects.select_for_update().get_or_create(
                key=keys[kind], defaults={"last_failure": now})
            if row.locked_until is not None and row.locked_until <= now:
                row.failures, row.locked_until = 0, None  # an expired lock starts afresh
            row.failures += 1
            if failed or kind != "account":
                row.last_failure = now
            if kind != "account" and row.failures >= limit and row.locked_until is None:
                row.locked_until = now + lock_for
                newly_locked.append(row.key)
            row.save()
    for key in newly_locked:
        security_log.record(LOGIN_LOCKED, client_id=f"{door}:{_norm(username)}",
                            remote_addr=address,
                            detail=f"{key} locked until {(now + lock_for).isoformat()} "
                                   f"after {limit} attempts")


def current(now: datetime | None = None) -> list[LoginThrottle]:
    """Keys that are locked or delaying attempts now."""
    now = now or timezone.now()
    return [row for row in LoginThrottle.objects.all() if _wait(row, now) > 0]


def clear(*, username: str = "", address: str = "", by: str) -> list[str]:
    """Clear every count and lock of ``username`` and/or ``address`` (both empty: all).
    Returns the keys cleared; each is written to the security log."""
    query = Q()
    user = _norm(username)
    if user:
        query &= Q(key=f"account:{user}") | Q(key__startswith=f"pair:{user}|")
    if address:
        query &= Q(key=f"address:{address}") | Q(key__endswith=f"|{address}")
    if user and address:
        query = (Q(key=f"account:{user}") | Q(key=f"address:{address}")
                 | Q(key=f"pair:{user}|{address}"))
    rows = LoginThrottle.objects.filter(query)
    keys = list(rows.values_list("key", flat=True))
    rows.delete()
    for key in keys:
        security_log.record(LOGIN_UNLOCKED, client_id=by[:128], remote_addr=address,
                            detail=f"{key} cleared by {by}")
    return keys
