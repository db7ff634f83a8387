"""Python's cyclic garbage collector around work that builds many objects at once (a
large request, a statement run)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collection_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a large body is read and taken in.

    Tens of thousands of new objects (a parsed body of hundreds of intervals or thousands
    of rows, and what is made from it) otherwise set off full collections that walk them,
    and the whole heap, again and again; reference counting still frees everything, and
    whatever cycles are left are collected once the collector runs again."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()
