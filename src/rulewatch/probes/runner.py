"""Probing a batch: every target at once on this process's probe loop (`probes.loop`), with a
thread pool for the batch's SQL queries, and the results handed over in short flushes as the
targets answer.

A scheduled batch need not wait for its slowest target: once only slow probes are left, it
can leave them to the probe loop, which records them as they end, and return (`Leave`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import aiohttp

from rulewatch.domain.observation import Observation
from rulewatch.probes import KINDS, ProbeContext, run_probe
from rulewatch.probes.loop import MAX_LEFT_RUNNING, ProbeLoop, probe_loop

log = logging.getLogger(__name__)
MAX_THREADS = 64
# how long a result may wait for its flush: short against any interval, long enough that a
# flush holds many results, so writes stay set-based
FLUSH_EVERY_S = 0.5
# a batch still probing after this may leave the rest to the probe loop and return: targets
# answering as usual are recorded by their batch, and one that never answers holds a worker
# process about a second, not its timeout
LEAVE_AFTER_S = 1.0
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


Flush = Callable[[list[tuple[int, Seen]]], object]


@dataclass(frozen=True)
class Leave:
    """How a batch may leave its slow probes behind: those still running ``after_s`` after it
    started go on without it, handed to ``record`` by the probe loop as they end, until
    ``limit_s`` after the start; then, or if the process ends first, ``give_up`` gets the
    indexes of the calls that will not be recorded. (``record`` is the caller's flush minus
    what only the caller reads, so a left batch keeps no more than it needs.)"""

    limit_s: float
    record: Flush
    give_up: Callable[[list[int]], None]
    after_s: float = LEAVE_AFTER_S


def probe_all(calls: Sequence[ProbeCall], ctx: ProbeContext) -> list[Seen]:
    """Probe every call concurrently on the probe loop; results in the calls' order."""
    return probe_loop().run(lambda http: _probe_all(calls, ctx, http))


def probe_in_flushes(
    calls: Sequence[ProbeCall],
    ctx: ProbeContext,
    flush: Flush,
    every_s: float = FLUSH_EVERY_S,
    leave: Leave | None = None,
) -> list[int]:
    """Probe every call concurrently and hand ``flush`` what was seen, as (index, seen) pairs,
    every ``every_s`` and at the end: a slow target holds back only its own result.

    With ``leave``, the probes still running after ``leave.after_s`` are left to the probe
    loop if it has room for them; their indexes are returned (none without ``leave``).
    """
    loop = probe_loop()
    batch = _Batch(len(calls))
    probing = loop.submit(lambda http: _probe_batch(calls, ctx, http, batch))
    try:
        while True:  # the flushes are written on this thread while the loop keeps probing
            finished = not concurrent.futures.wait([probing], every_s).not_done
            batch.flush_with(flush)
            if finished:
                break
            if leave and _left_running(loop, batch, probing, leave, every_s):
                return batch.unrecorded()
    except BaseException:
        probing.cancel()  # a flush that failed (or a time limit) leaves nothing probing
        raise
    probing.result()
    return []


class _Batch:
    """What a batch's probes saw, as they end: added on the loop, flushed by whoever records
    the batch (its caller, then the probe loop once the caller left)."""

    def __init__(self, size: int) -> None:
        self._lock = threading.Lock()
        self._seen: list[tuple[int, Seen]] = []
        self._unrecorded = set(range(size))
        self._running = size
        self._started = time.monotonic()
        self.leave: Leave | None = None

    @property
    def running(self) -> int:
        """How many probes have not ended."""
        return self._running

    @property
    def age_s(self) -> float:
        """Seconds since the batch started probing."""
        return time.monotonic() - self._started

    def add(self, index: int, seen: Seen) -> None:
        """One probe ended (on the loop)."""
        with self._lock:
            self._seen.append((index, seen))
            self._running -= 1

    def flush_with(self, flush: Flush) -> None:
        """Hand ``flush`` what was seen since the last flush, if anything."""
        with self._lock:
            ready, self._seen = self._seen, []
        if ready:
            flush(ready)
            with self._lock:
                self._unrecorded.difference_update(index for index, _ in ready)

    def unrecorded(self) -> list[int]:
        """The indexes of the calls not recorded yet."""
        with self._lock:
            return sorted(self._unrecorded)

    def give_up(self) -> None:
        """Hand the calls that will not be recorded to ``leave.give_up``, once."""
        with self._lock:
            left, self._unrecorded = sorted(self._unrecorded), set()
        if left and self.leave is not None:
            try:
                self.leave.give_up(left)
            except Exception:  # the claims then expire by themselves
                log.exception("could not give up %d probes left running", len(left))


def _left_running(
    loop: ProbeLoop,
    batch: _Batch,
    probing: concurrent.futures.Future[None],
    leave: Leave,
    every_s: float,
) -> bool:
    """Leave the batch's running probes to the loop, once it is old enough and if the loop
    has room for them; whether it did."""
    if batch.age_s < leave.after_s:
        return False
    batch.leave = leave
    keep_on = _record_left(loop, batch, probing, leave.record, every_s)
    return loop.leave(batch, MAX_LEFT_RUNNING, keep_on)


async def _record_left(
    loop: ProbeLoop,
    batch: _Batch,
    probing: concurrent.futures.Future[None],
    flush: Flush,
    every_s: float,
) -> None:
    """On the loop: flush a left batch as its probes end, within its limit (Celery's time
    limits no longer apply once its task returned); then give up what was not recorded."""
    assert batch.leave is not None
    ended = asyncio.wrap_future(probing)
    try:
        async with asyncio.timeout(batch.leave.limit_s - batch.age_s):
            while True:
                await asyncio.wait([ended], timeout=every_s)
                finished = ended.done()
                await asyncio.to_thread(batch.flush_with, flush)  # the loop keeps probing
                if finished:
                    break
    except TimeoutError:
        log.warning("probes left running passed their time limit; giving them up")
    except Exception:  # a failed flush: the rest is given up, as a task that gives up does
        log.exception("could not record probes left running; giving them up")
    finally:
        ended.cancel()
        loop.done_with(batch)
        if not loop.closing:  # otherwise `close` gives them up, on the exiting thread
            await asyncio.to_thread(batch.give_up)


async def _probe_all(
    calls: Sequence[ProbeCall], ctx: ProbeContext, http: aiohttp.ClientSession
) -> list[Seen]:
    async with _shared(calls, ctx, http) as shared:
        return list(await asyncio.gather(*(_probe_one(call, shared) for call in calls)))


async def _probe_batch(
    calls: Sequence[ProbeCall], ctx: ProbeContext, http: aiohttp.ClientSession, batch: _Batch
) -> None:
    async def probe(index: int, call: ProbeCall, shared: ProbeContext) -> None:
        batch.add(index, await _probe_one(call, shared))

    async with _shared(calls, ctx, http) as shared:
        await asyncio.gather(*(probe(i, call, shared) for i, call in enumerate(calls)))


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
