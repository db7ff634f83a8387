"""Structured logs to stdout (JSON lines, or key=value), with secrets redacted.

Call :func:`log` with an event name and fields. Two defences keep secrets out: fields
whose names look secret (``secret``, ``token``, ``password``, ``authorization``,
``private``) are replaced by ``[REDACTED]``, and any value registered with
:func:`register_secret` (the client secret, each access token) is masked wherever it
appears in any string, including exception texts.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from dataclasses import dataclass
from typing import IO

REDACTED = "[REDACTED]"
_SECRET_NAME = re.compile(r"secret|token|password|passphrase|authorization|private|^d$",
                          re.IGNORECASE)
_lock = threading.Lock()
_secrets: set[str] = set()
LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


@dataclass
class _Settings:
    format: str = "json"
    stream: IO[str] | None = None  # None: stdout at each write
    level: int = 20


_settings = _Settings()


def configure(fmt: str = "json", stream: IO[str] | None = None, level: str = "info") -> None:
    """``fmt`` is ``json`` or ``kv``; ``stream`` defaults to stdout at each write."""
    if fmt not in ("json", "kv"):
        raise ValueError("log format must be json or kv")
    _settings.format, _settings.stream = fmt, stream
    _settings.level = LEVELS.get(level, 20)


def register_secret(value: str | None) -> None:
    """Mask ``value`` in every later log line (ignored when shorter than 6 characters)."""
    if value and len(value) >= 6:
        with _lock:
            _secrets.add(value)


def redact(value: object, name: str = "") -> object:
    """``value`` with secret-named members and registered secrets masked."""
    if name and _SECRET_NAME.search(name) and value not in (None, ""):
        return REDACTED
    if isinstance(value, str):
        for secret in _secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, int | float | bool) or value is None:
        return value
    return redact(str(value))


def render(level: str, event: str, fields: dict[str, object]) -> str:
    record: dict[str, object] = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) +
              f".{int(time.time() % 1 * 1000):03d}Z", "level": level, "event": event}
    record.update({name: redact(value, name) for name, value in fields.items()})
    if _settings.format == "json":
        return json.dumps(record, default=str, separators=(",", ":"))
    return " ".join(f"{k}={_kv(v)}" for k, v in record.items())


def _kv(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return json.dumps(text) if (not text or any(c in text for c in ' "=\n')) else text


def log(event: str, level: str = "info", **fields: object) -> None:
    """Write one log line: ``event`` names what happened; ``fields`` add detail."""
    if LEVELS.get(level, 20) < _settings.level:
        return
    line = render(level, event, fields)
    stream = _settings.stream or sys.stdout
    with _lock:
        stream.write(line + "\n")
        stream.flush()
