"""`rulewatch up`: web, worker, scheduler and beat as child processes; one that dies starts again.

Everything stops together on Ctrl-C, SIGTERM or SIGHUP, or when a child cannot start at all.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import FrameType

from rulewatch.config import QUEUES

STOP_TIMEOUT_S = 20.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
PR_SET_PDEATHSIG = 1
POLL_S = 0.2


@dataclass(frozen=True)
class RestartPolicy:
    """How soon a dead child starts again, and when it counts as unable to start."""

    first_delay_s: float = 1.0
    max_delay_s: float = 30.0
    # a child that ran this long before dying starts again after first_delay_s
    steady_after_s: float = 60.0
    # dying this soon after starting is a failed start; max_failed_starts in a row: give up
    failed_start_s: float = 10.0
    max_failed_starts: int = 5


@dataclass
class Child:
    """One supervised process and its recent deaths."""

    name: str
    command: list[str]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    start_at: float = 0.0  # when to start it next, while it is not running
    deaths: int = 0  # since it last ran steadily
    failed_starts: int = 0  # in a row

    def start(self) -> subprocess.Popen[bytes]:
        """Start the process now."""
        self.process = _start(self.command)
        self.started_at = time.monotonic()
        return self.process

    def delay_after_death(self, ran_s: float, policy: RestartPolicy) -> float | None:
        """Seconds to wait before starting it again; None when it cannot start at all."""
        if ran_s >= policy.steady_after_s:
            self.deaths = 0
        self.failed_starts = self.failed_starts + 1 if ran_s < policy.failed_start_s else 0
        if self.failed_starts >= policy.max_failed_starts:
            return None
        delay = min(policy.first_delay_s * 2.0**self.deaths, policy.max_delay_s)
        self.deaths += 1
        return delay


def run_all(host: str, port: int, concurrency: int) -> int:
    """Run web, worker, scheduler and beat until Ctrl-C, SIGTERM or SIGHUP, restarting any
    that dies."""
    me = [sys.executable, "-m", "rulewatch"]
    # the scheduler queue has a process of its own: checks that fill the worker's pool (a
    # target that never answers) must not hold beat's ticks back
    worker_queues = ",".join(q for q in QUEUES if q != "scheduler")
    return supervise({
        "web": [*me, "web", "--host", host, "--port", str(port), "--workers", "2"],
        "worker": [*me, "worker", "-Q", worker_queues, "-c", str(concurrency)],
        "scheduler": [*me, "scheduler"],
        "beat": [*me, "beat"],
    })  # fmt: skip


def supervise(commands: Mapping[str, list[str]], policy: RestartPolicy | None = None) -> int:
    """Run each command as a child, restarted with backoff when it dies; 1 if one cannot start."""
    stopping = False

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    # before any child exists, so none can be left behind
    previous = {signum: signal.signal(signum, _on_signal) for signum in STOP_SIGNALS}
    children = [Child(name, command) for name, command in commands.items()]
    try:
        for child in children:
            if not stopping:
                child.start()
        return _watch(children, lambda: stopping, policy or RestartPolicy())
    finally:
        _stop([child.process for child in children if child.process is not None])
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _watch(children: list[Child], stopping: Callable[[], bool], policy: RestartPolicy) -> int:
    while not stopping():
        for child in children:
            if not _tend(child, policy):
                return 1
        time.sleep(POLL_S)
    return 0


def _tend(child: Child, policy: RestartPolicy) -> bool:
    """Start a child whose time has come, note one that died; False if it cannot start."""
    now = time.monotonic()
    if child.process is None:
        if now >= child.start_at:
            _say(f"{child.name} started again (pid {child.start().pid})")
        return True
    code = child.process.poll()
    if code is None:
        return True
    ran_s = now - child.started_at
    _signal_group(child.process, signal.SIGKILL)  # what it leaves behind, its pool included
    child.process = None
    delay = child.delay_after_death(ran_s, policy)
    if delay is None:
        _say(
            f"{child.name} died {child.failed_starts} times within {policy.failed_start_s:g} s"
            f" of starting (last: {_exit_reason(code)}); it cannot start: stopping everything"
        )
        return False
    _say(f"{child.name} {_exit_reason(code)} after {ran_s:.1f} s; starting it again in {delay:g} s")
    child.start_at = now + delay
    return True


def _exit_reason(code: int) -> str:
    if code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


def _say(line: str) -> None:
    print(f"rulewatch: {line}", file=sys.stderr, flush=True)


def _start(command: list[str]) -> subprocess.Popen[bytes]:
    # each child leads its own process group (its pool children go with it) and is told
    # to stop by the kernel if this supervisor dies without cleaning up (SIGKILL, OOM)
    return subprocess.Popen(command, start_new_session=True, preexec_fn=_die_with_parent)


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _stop(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:  # the leader shuts its own pool down (celery's warm shutdown)
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for child in children:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(max(0.1, deadline - time.monotonic()))
    for child in children:
        _signal_group(child, signal.SIGKILL)  # whatever is left, pool children included
        child.wait()


def _signal_group(child: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signum)
