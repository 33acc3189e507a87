"""Probing a batch: every target at once, on one event loop and one keep-alive HTTP session
per worker thread, with a thread pool for the batch's SQL queries.

A fresh loop and session per batch would open a new connection for every request; keeping
them lets consecutive batches reuse kept-alive connections to the same targets.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

import aiohttp

from rulewatch.domain.observation import Observation
from rulewatch.probes import KINDS, ProbeContext, run_probe

T = TypeVar("T")
_local = threading.local()
MAX_THREADS = 64
# how long a result may wait for its flush: short against any interval, long enough that a
# flush holds many results, so writes stay set-based
FLUSH_EVERY_S = 0.5
BLOCKING_KINDS = frozenset(name for name, kind in KINDS.items() if kind.blocking)


@dataclass(frozen=True)
class ProbeCall:
    """One target to probe; a ``fault`` known beforehand is observed instead of probing."""

    kind: str
    target: Mapping[str, Any]
    fault: str | None = None


@dataclass(frozen=True)
class Seen:
    """What one probe saw, and when."""

    started_at: datetime
    duration_ms: float
    observation: Observation


def probe_all(calls: Sequence[ProbeCall], ctx: ProbeContext) -> list[Seen]:
    """Probe every call concurrently on this thread's runner; results in the calls' order."""
    return probe_runner().run(lambda http: _probe_all(calls, ctx, http))


Flush = Callable[[list[tuple[int, Seen]]], None]


def probe_in_flushes(
    calls: Sequence[ProbeCall], ctx: ProbeContext, flush: Flush, every_s: float = FLUSH_EVERY_S
) -> None:
    """Probe every call concurrently and hand ``flush`` what was seen, as (index, seen) pairs,
    every ``every_s`` and at the end: a slow target holds back only its own result."""
    probe_runner().run(lambda http: _probe_in_flushes(calls, ctx, http, flush, every_s))


async def _probe_all(
    calls: Sequence[ProbeCall], ctx: ProbeContext, http: aiohttp.ClientSession
) -> list[Seen]:
    async with _shared(calls, ctx, http) as shared:
        return list(await asyncio.gather(*(_probe_one(call, shared) for call in calls)))


async def _probe_in_flushes(
    calls: Sequence[ProbeCall],
    ctx: ProbeContext,
    http: aiohttp.ClientSession,
    flush: Flush,
    every_s: float,
) -> None:
    seen: list[tuple[int, Seen]] = []

    async def probe(index: int, call: ProbeCall, shared: ProbeContext) -> None:
        seen.append((index, await _probe_one(call, shared)))

    async with _shared(calls, ctx, http) as shared:
        probes = asyncio.gather(*(probe(i, call, shared) for i, call in enumerate(calls)))
        try:
            while not probes.done() or seen:
                await asyncio.wait([probes], timeout=every_s)
                ready, seen[:] = seen[:], []
                if ready and probes.done():
                    flush(ready)
                elif ready:  # in a thread: the loop keeps probing while the database writes
                    await asyncio.to_thread(flush, ready)
        finally:
            probes.cancel()  # a flush that failed leaves nothing probing behind it
        probes.result()


@asynccontextmanager
async def _shared(
    calls: Sequence[ProbeCall], ctx: ProbeContext, http: aiohttp.ClientSession
) -> AsyncIterator[ProbeContext]:
    """The context the batch's probes share: the HTTP session and a pool for blocking kinds."""
    blocking = sum(1 for call in calls if call.kind in BLOCKING_KINDS)
    executor = ThreadPoolExecutor(min(MAX_THREADS, blocking)) if blocking else None
    try:
        yield replace(ctx, http_session=http, sql_executor=executor)
    finally:
        if executor is not None:  # queries are bounded by their own statement timeout
            executor.shutdown(wait=False, cancel_futures=True)


async def _probe_one(call: ProbeCall, ctx: ProbeContext) -> Seen:
    started_at = datetime.now(UTC)
    t0 = time.perf_counter()
    try:
        observation = (
            Observation(connected=False, fault=call.fault)
            if call.fault
            else await run_probe(call.kind, call.target, ctx)
        )
    except Exception as exc:  # a probe bug is rulewatch's fault, recorded as an error
        observation = Observation(connected=False, fault=f"probe crashed: {exc!r}")
    return Seen(started_at, (time.perf_counter() - t0) * 1000, observation)


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
