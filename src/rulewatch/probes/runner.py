"""One event loop and one keep-alive HTTP session per worker thread, reused by every batch.

A fresh loop and session per batch would open a new connection for every request; keeping
them lets consecutive batches reuse kept-alive connections to the same targets.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiohttp

T = TypeVar("T")
_local = threading.local()


class ProbeRunner:
    """Runs probe coroutines on this thread's loop with its shared ``ClientSession``."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._http: aiohttp.ClientSession | None = None
        atexit.register(self.close)

    def run(self, work: Callable[[aiohttp.ClientSession], Awaitable[T]]) -> T:
        """Run ``work(session)`` to completion on this runner's loop."""
        return self._loop.run_until_complete(self._call(work))

    async def _call(self, work: Callable[[aiohttp.ClientSession], Awaitable[T]]) -> T:
        if self._http is None or self._http.closed:
            connector = aiohttp.TCPConnector(limit=500, limit_per_host=200, ttl_dns_cache=300)
            self._http = aiohttp.ClientSession(connector=connector)
        return await work(self._http)

    def close(self) -> None:
        """Close the session and the loop (at exit)."""
        if self._loop.is_closed():
            return
        if self._http is not None and not self._http.closed:
            self._loop.run_until_complete(self._http.close())
        self._loop.close()


def probe_runner() -> ProbeRunner:
    """This thread's runner; a forked process (a Celery pool child) gets a new one."""
    runner: ProbeRunner | None = getattr(_local, "runner", None)
    if runner is None or getattr(_local, "pid", None) != os.getpid():
        runner = ProbeRunner()
        _local.runner, _local.pid = runner, os.getpid()
    return runner
