"""`rulewatch up`: web, worker and beat as child processes, stopped together."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from types import FrameType

STOP_TIMEOUT_S = 20.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
PR_SET_PDEATHSIG = 1


def run_all(host: str, port: int, concurrency: int) -> int:
    """Start the three processes; on Ctrl-C, SIGTERM, SIGHUP or a child's death, stop all."""
    me = [sys.executable, "-m", "rulewatch"]
    commands = {
        "web": [*me, "web", "--host", host, "--port", str(port), "--workers", "2"],
        "worker": [*me, "worker", "-c", str(concurrency)],
        "beat": [*me, "beat"],
    }
    stopping = False

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    for signum in STOP_SIGNALS:  # before any child exists, so none can be left behind
        signal.signal(signum, _on_signal)
    children: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, command in commands.items():
            if not stopping:
                children[name] = _start(command)
        return _watch(children, lambda: stopping)
    finally:
        _stop(list(children.values()))


def _start(command: list[str]) -> subprocess.Popen[bytes]:
    # each child leads its own process group (its pool children go with it) and is told
    # to stop by the kernel if this supervisor dies without cleaning up (SIGKILL, OOM)
    return subprocess.Popen(command, start_new_session=True, preexec_fn=_die_with_parent)


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _watch(children: dict[str, subprocess.Popen[bytes]], stopping: Callable[[], bool]) -> int:
    while not stopping():
        for name, child in children.items():
            if child.poll() is not None:
                print(
                    f"rulewatch: {name} exited with {child.returncode}; stopping", file=sys.stderr
                )
                return 1
        time.sleep(0.2)
    return 0


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
