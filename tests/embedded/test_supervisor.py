"""`rulewatch up`'s supervisor with real child processes: restarts, backoff, giving up."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

import pytest

from rulewatch.supervisor import Child, RestartPolicy, supervise
from tests.integration.processes import wait_for

QUICK = RestartPolicy(first_delay_s=0.1, max_delay_s=1.0, steady_after_s=60, failed_start_s=10,
                      max_failed_starts=3)  # fmt: skip


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


def _terminate_me_when(path: Path) -> threading.Thread:
    """SIGTERM this process, as Ctrl-C would, once ``path`` exists."""

    def _run() -> None:
        wait_for(path.exists, 30, f"{path.name} to appear")
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=_run, daemon=True)
    thread.start()
    return thread


def test_it_starts_a_child_again_after_it_is_killed_and_says_which_and_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    child = _python(
        "import os, pathlib, signal, time\n"
        f"first, second = pathlib.Path({str(first)!r}), pathlib.Path({str(second)!r})\n"
        "if not first.exists():\n"
        "    first.write_text(str(os.getpid())); os.kill(os.getpid(), signal.SIGKILL)\n"
        "second.write_text(str(os.getpid())); time.sleep(60)\n"
    )
    _terminate_me_when(second)
    assert supervise({"worker": child}, QUICK) == 0
    err = capsys.readouterr().err
    assert "rulewatch: worker was killed by SIGKILL after" in err
    assert "starting it again in 0.1 s" in err
    assert f"rulewatch: worker started again (pid {second.read_text()})" in err
    assert not _alive(int(second.read_text()))  # stopped with everything on SIGTERM


def test_it_stops_everything_when_a_child_cannot_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    steady = tmp_path / "steady"
    commands = {
        "beat": _python(f"import os, pathlib, time; pathlib.Path({str(steady)!r})"
                        ".write_text(str(os.getpid())); time.sleep(60)"),
        "web": _python("raise SystemExit(3)"),
    }  # fmt: skip
    assert supervise(commands, QUICK) == 1
    err = capsys.readouterr().err
    assert err.count("rulewatch: web exited with code 3 after") == 2
    assert (
        "rulewatch: web died 3 times within 10 s of starting (last: exited with code 3);"
        " it cannot start: stopping everything"
    ) in err
    assert not _alive(int(steady.read_text()))


def test_it_waits_twice_as_long_after_each_death_up_to_the_cap() -> None:
    child = Child("worker", [])
    delays = [child.delay_after_death(20, QUICK) for _ in range(6)]
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


def test_it_waits_the_first_delay_again_after_a_steady_run() -> None:
    child = Child("worker", [])
    for _ in range(4):
        child.delay_after_death(20, QUICK)
    assert child.delay_after_death(61, QUICK) == 0.1


def test_it_gives_up_only_after_failed_starts_in_a_row() -> None:
    child = Child("web", [])
    outcomes = [child.delay_after_death(ran_s, QUICK) for ran_s in (1, 1, 30, 1, 1)]
    assert None not in outcomes
    assert child.delay_after_death(1, QUICK) is None
