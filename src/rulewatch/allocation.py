"""Bulk steps that allocate many objects and free few: Python's cyclic collector held off.

The collector runs each time allocations outnumber frees by 700, and its oldest generation
walks every object still alive. Reading a file of 40,000 rules keeps every object it makes,
so the collector walked a growing heap again and again for nothing: an import spent a
third of its time there. Reference counting still frees everything while it is paused.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Hold off the cyclic garbage collector inside; it resumes (if it ran before) after.

    Safe to nest and to use from several threads at once: whoever paused it resumes it.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
