"""This process's background pool: work that must not run in the request that caused it
(webhook delivery, MQTT publishing and broker provisioning in the embedded default,
where no Celery broker is configured). Each job gets its own database connection."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import close_old_connections, connections

logger = logging.getLogger("vtn.webhooks")

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _run(function: Callable[..., object], *args: object) -> None:
    """Run a background job with its own database connection, closed afterwards."""
    try:
        close_old_connections()
        function(*args)
    except Exception:
        logger.exception("webhook job %s%r failed", function.__name__, args)
    finally:
        connections.close_all()


def submit(function: Callable[..., object], *args: object) -> None:
    """Run ``function(*args)`` soon on this process's pool
    (``VTN_WEBHOOK_CONCURRENCY`` threads)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=settings.VTN_WEBHOOK_CONCURRENCY,
                                       thread_name_prefix="webhook")
    _pool.submit(_run, function, *args)
