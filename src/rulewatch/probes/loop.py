"""This process's probe loop: an event loop on a daemon thread with one keep-alive HTTP session.

Every batch of the process probes on it, so consecutive batches reuse kept-alive connections
to the same targets. It outlives the batches: a scheduled batch whose last probes are slow
leaves them to it and returns (`runner.probe_in_flushes`), and the loop records them as they
end, so a target that never answers holds no worker process. The thread is started on first
use in the process that uses it: a Celery pool child, forked from a parent with no thread,
starts its own.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol, TypeVar

import aiohttp

T = TypeVar("T")
log = logging.getLogger(__name__)
# probes a process keeps running for batches that returned (each holds a connection and a
# claim); past it, a batch waits for its slow probes as before
MAX_LEFT_RUNNING = 200
# connections of the session: a full batch beside the most probes left running
CONNECTIONS = 500 + MAX_LEFT_RUNNING


class LeftWork(Protocol):
    """Work a caller left running on the loop: how much is still running, how to give it up."""

    @property
    def running(self) -> int:
        """How many probes of it are still running."""
        ...

    def give_up(self) -> None:
        """Say what will not be recorded (the process is ending): its claims go back."""
        ...


class ProbeLoop:
    """Runs probe coroutines on this process's loop thread, with its shared ``ClientSession``;
    keeps the work that batches left running, and gives it up when the process ends."""

    def __init__(self) -> None:
        self._pid = os.getpid()
        self._loop = asyncio.new_event_loop()
        self._http: aiohttp.ClientSession | None = None
        self._lock = threading.Lock()
        self._left: set[LeftWork] = set()
        self._closed = False
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="rulewatch-probes", daemon=True
        )
        self._thread.start()

    def submit(
        self, work: Callable[[aiohttp.ClientSession], Awaitable[T]]
    ) -> concurrent.futures.Future[T]:
        """Start ``work(session)`` on the loop; its future."""
        return asyncio.run_coroutine_threadsafe(self._call(work), self._loop)

    def run(self, work: Callable[[aiohttp.ClientSession], Awaitable[T]]) -> T:
        """Run ``work(session)`` on the loop and wait for it (it is cancelled if the wait is)."""
        return wait_for(self.submit(work))

    async def _call(self, work: Callable[[aiohttp.ClientSession], Awaitable[T]]) -> T:
        if self._http is None or self._http.closed:
            connector = aiohttp.TCPConnector(
                limit=CONNECTIONS, limit_per_host=200, ttl_dns_cache=300
            )
            self._http = aiohttp.ClientSession(connector=connector)
        return await work(self._http)

    def leave(self, work: LeftWork, most: int, keep_on: Coroutine[Any, Any, None]) -> bool:
        """Run ``keep_on`` for ``work`` after its caller returns, if the probes left running in
        this process stay within ``most`` with it; False (nothing started) when they would not.
        If the process ends first, `close` gives the work up."""
        with self._lock:
            if self._closed or sum(w.running for w in [*self._left, work]) > most:
                keep_on.close()
                return False
            self._left.add(work)
        asyncio.run_coroutine_threadsafe(keep_on, self._loop)
        return True

    def done_with(self, work: LeftWork) -> None:
        """The left ``work`` has ended: recorded, or given up."""
        with self._lock:
            self._left.discard(work)

    @property
    def closing(self) -> bool:
        """True once the process is ending: left work is given up by `close`, not by itself."""
        return self._closed

    def close(self) -> None:
        """Give up the left work (its claims go back), close the session, stop the loop."""
        if os.getpid() != self._pid:  # a forked child's copy: the parent's work is not ours
            return
        with self._lock:
            if self._closed:
                return
            self._closed = True
            left = list(self._left)
        for work in left:
            work.give_up()
        closing = asyncio.run_coroutine_threadsafe(self._shut_down(), self._loop)
        try:
            closing.result(timeout=5)
        except Exception as exc:  # exiting anyway: say why the loop did not close cleanly
            log.warning("probe loop did not close cleanly: %r", exc)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _shut_down(self) -> None:
        others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        if self._http is not None and not self._http.closed:
            await self._http.close()


def wait_for(done: concurrent.futures.Future[T], timeout: float | None = None) -> T:
    """The result of work on the loop; the work is cancelled if the wait is interrupted (a
    Celery time limit, a shutdown)."""
    try:
        return done.result(timeout)
    except BaseException:
        done.cancel()
        raise


class _Current:
    loop: ProbeLoop | None = None
    lock = threading.Lock()


def probe_loop() -> ProbeLoop:
    """This process's probe loop, started on first use."""
    with _Current.lock:
        if _Current.loop is None:
            _Current.loop = ProbeLoop()
            atexit.register(_Current.loop.close)
        return _Current.loop


def close_probe_loop() -> None:
    """End this process's probe loop, if it has one: a Celery pool child does so as it exits
    (the hook Celery gives it), since a forked process does not run ``atexit``."""
    with _Current.lock:
        loop = _Current.loop
    if loop is not None:
        loop.close()


def _forget_after_fork() -> None:
    """A forked child has no loop thread: it starts its own on first use."""
    _Current.loop, _Current.lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)
