"""`rulewatch up`: web, worker and beat as child processes, stopped together."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from types import FrameType

STOP_TIMEOUT_S = 20.0


def run_all(host: str, port: int, concurrency: int) -> int:
    """Start the three processes; on Ctrl-C, SIGTERM or a child's death, stop them all."""
    me = [sys.executable, "-m", "rulewatch"]
    commands = {
        "web": [*me, "web", "--host", host, "--port", str(port), "--workers", "2"],
        "worker": [*me, "worker", "-c", str(concurrency)],
        "beat": [*me, "beat"],
    }
    # each child leads its own process group, so stopping it also stops its pool children
    children = {
        name: subprocess.Popen(cmd, start_new_session=True) for name, cmd in commands.items()
    }
    stopping = False

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    exit_code = 0
    while not stopping:
        for name, child in children.items():
            if child.poll() is not None:
                print(
                    f"rulewatch: {name} exited with {child.returncode}; stopping", file=sys.stderr
                )
                exit_code, stopping = 1, True
        time.sleep(0.2)
    _stop(list(children.values()))
    return exit_code


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
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signum)
