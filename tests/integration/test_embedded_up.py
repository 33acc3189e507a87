"""`rulewatch up` end to end on embedded storage: nothing but this package installed."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.integration.processes import free_port, processes_with_env, spawn, stop, wait_for
from tests.targets import Target, http_rule

ADMIN_PASSWORD = "embedded admin password"


def _get(url: str, token: str = "") -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=5) as response:
        body = response.read()
        kind = response.headers.get("Content-Type", "")
        return json.loads(body) if "json" in kind else body.decode()


def _post(url: str, data: dict[str, Any], token: str = "") -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=json.dumps(data).encode(), method="POST",
                                     headers=headers)  # fmt: skip
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def test_it_runs_everything_with_one_command_and_stops_cleanly(tmp_path: Path) -> None:
    home = tmp_path / "home"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "up.log"
    env = {"RULEWATCH_HOME": str(home), "RULEWATCH_TICK_S": "1",
           "RULEWATCH_ADMIN_PASSWORD": ADMIN_PASSWORD}  # fmt: skip
    for key in ("RULEWATCH_DATABASE_URL", "RULEWATCH_BROKER_URL", "RULEWATCH_RESULT_BACKEND"):
        env[key] = ""
    up = spawn(["up", "--port", str(port)], env, log)
    try:
        wait_for(lambda: _get(f"{base}/healthz")["status"] == "ok", 60, "the web server", log)
        told = "created user 'admin' (role admin) with the password in RULEWATCH_ADMIN_PASSWORD"
        assert told in log.read_text()
        me = _post(f"{base}/api/v1/session", {"username": "admin", "password": ADMIN_PASSWORD})
        assert (me["name"], me["role"]) == ("admin", "admin")
        token = _token(env, "admin")
        with Target() as target:
            rule = _post(f"{base}/api/v1/rules", http_rule(target.url, interval_s=1), token)
            runs = wait_for(
                lambda: _scheduled_runs(base, rule["id"], token, at_least=2),
                60, "scheduled runs", log,
            )  # fmt: skip
        assert all(v["status"] == "pass" for v in runs)
        report = _get(f"{base}/report?window=24h", token)
        assert "orders API" in report and "rate-ok" in report
        assert (home / "rulewatch.db").exists()
    finally:
        code = stop(up)
    assert code == 0, log.read_text()[-3000:]
    assert processes_with_env("RULEWATCH_HOME", str(home)) == []


def _token(env: dict[str, str], user: str) -> str:
    """A token from `rulewatch tokens create`, run beside `rulewatch up` on the same home."""
    done = subprocess.run(
        [sys.executable, "-m", "rulewatch", "tokens", "create", "--user", user],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return done.stdout.splitlines()[-1]


def _scheduled_runs(
    base: str, rule_id: int, token: str, at_least: int
) -> list[dict[str, Any]] | None:
    body = _get(f"{base}/api/v1/rules/{rule_id}/verifications?limit=20", token)
    runs = [v for v in body["verifications"] if v["trigger"] == "schedule"]
    return runs if len(runs) >= at_least else None


def test_it_stops_every_process_when_its_terminal_hangs_up(tmp_path: Path) -> None:
    home = tmp_path / "home"
    port = free_port()
    log = tmp_path / "up.log"
    env = {"RULEWATCH_HOME": str(home), "RULEWATCH_ADMIN_PASSWORD": ""}
    up = spawn(["up", "--port", str(port)], env, log)
    wait_for(lambda: _get(f"http://127.0.0.1:{port}/healthz")["status"] == "ok", 60, "web", log)
    assert len(processes_with_env("RULEWATCH_HOME", str(home))) >= 4
    printed = re.search(r"created user 'admin' \(role admin\) with password (\S+)", log.read_text())
    assert printed, log.read_text()[-3000:]
    signed_in = {"username": "admin", "password": printed[1]}
    assert _post(f"http://127.0.0.1:{port}/api/v1/session", signed_in)["role"] == "admin"
    up.send_signal(signal.SIGHUP)
    assert up.wait(40) == 0, log.read_text()[-3000:]
    wait_for(lambda: processes_with_env("RULEWATCH_HOME", str(home)) == [], 10, "no processes left")


def _child_pid(parent: int, command: str) -> int | None:
    """Pid of the live child of ``parent`` running `rulewatch COMMAND`."""
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError):
            continue
        if stat[0] != "Z" and int(stat[1]) == parent and command.encode() in argv[3:4]:
            return int(entry.name)
    return None


def _started(run: dict[str, Any]) -> datetime:
    started = datetime.fromisoformat(run["started_at"])
    return started if started.tzinfo else started.replace(tzinfo=UTC)


def _runs_since(base: str, rule_id: int, token: str, since: datetime) -> list[dict[str, Any]]:
    return [run for run in _scheduled_runs(base, rule_id, token, at_least=0) or []
            if _started(run) > since]  # fmt: skip


def _first_since(base: str, rule_id: int, token: str, since: datetime) -> datetime:
    return min(map(_started, _runs_since(base, rule_id, token, since)))


def _up_with_admin(tmp_path: Path, **extra: str) -> tuple[subprocess.Popen[bytes], str, str, Path]:
    """`rulewatch up` on a new home; its process, base URL, an admin token and its log."""
    port = free_port()
    log = tmp_path / "up.log"
    env = {"RULEWATCH_HOME": str(tmp_path / "home"), "RULEWATCH_TICK_S": "1",
           "RULEWATCH_ADMIN_PASSWORD": ADMIN_PASSWORD, **extra}  # fmt: skip
    for key in ("RULEWATCH_DATABASE_URL", "RULEWATCH_BROKER_URL", "RULEWATCH_RESULT_BACKEND"):
        env[key] = ""
    up = spawn(["up", "--port", str(port)], env, log)
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: _get(f"{base}/healthz")["status"] == "ok", 60, "the web server", log)
    return up, base, _token(env, "admin"), log


def test_it_restarts_a_worker_killed_mid_check_and_every_rule_is_verified_again(
    tmp_path: Path,
) -> None:
    # the tasks the killed worker held are given back to the new one; only rules claimed by a
    # tick killed before it queued their batch wait for RULEWATCH_CLAIM_TTL_S (60 s by
    # default): 10 s keeps that rare case within the bound too
    up, base, token, log = _up_with_admin(tmp_path, RULEWATCH_CLAIM_TTL_S="10")
    try:
        with Target() as fast, Target() as slow:
            slow.delay_s = 3
            rules = [_post(f"{base}/api/v1/rules",
                           http_rule(fast.url, name=f"fast {n}", interval_s=2), token)
                     for n in range(4)]  # fmt: skip
            slow_rule = http_rule(slow.url, name="slow", interval_s=5)
            rules.append(_post(f"{base}/api/v1/rules", slow_rule, token))
            for rule in rules:
                wait_for(lambda r=rule: _scheduled_runs(base, r["id"], token, 1), 60, "runs", log)
            hits = slow.hits
            wait_for(lambda: slow.hits > hits, 30, "the slow check in flight", log)
            worker = _child_pid(up.pid, "worker")
            assert worker, log.read_text()[-3000:]
            killed_at = datetime.now(UTC)
            os.kill(worker, signal.SIGKILL)
            wait_for(lambda: _child_pid(up.pid, "worker") not in (None, worker), 30, "a new worker")
            for rule in rules:
                wait_for(lambda r=rule: _runs_since(base, r["id"], token, killed_at),
                         120, f"{rule['name']} verified again", log)  # fmt: skip
            resumed = {rule["name"]: _first_since(base, rule["id"], token, killed_at)
                       for rule in rules}  # fmt: skip
            runs = [_scheduled_runs(base, rule["id"], token, 0) or [] for rule in rules]
    finally:
        code = stop(up)
    late_s = {name: (at - killed_at).total_seconds() for name, at in resumed.items()}
    print("verified again after the kill (s):", late_s)
    timeout_s = {rule["name"]: rule["target"]["timeout_s"] for rule in rules}
    assert all(late_s[name] <= timeout_s[name] + 30 for name in late_s), late_s
    assert "rulewatch: worker was killed by SIGKILL after" in log.read_text()
    assert f"taken by process {worker} that is gone" in log.read_text()  # the slow check's
    for recorded in runs:
        due = [run["scheduled_for"] for run in recorded]
        assert len(due) == len(set(due)), due
    assert code == 0, log.read_text()[-3000:]


def test_it_sets_unreadable_message_files_aside_and_the_worker_lives_on(tmp_path: Path) -> None:
    up, base, token, log = _up_with_admin(tmp_path)
    broker = tmp_path / "home" / "broker"
    try:
        with Target() as target:
            rule = _post(f"{base}/api/v1/rules", http_rule(target.url, interval_s=1), token)
            wait_for(lambda: _scheduled_runs(base, rule["id"], token, 1), 60, "a first run", log)
            worker = _child_pid(up.pid, "worker")
            # names that sort before every real message, so they are the next ones read
            torn = f"{0:020d}_00000000-0000-0000-0000-000000000001.scheduler.msg"
            empty = f"{0:020d}_00000000-0000-0000-0000-000000000002.checks.msg"
            (broker / torn).write_bytes(b'{"body": "eyJ0YXNrIjogInJ1bGV3YXRja')
            (broker / empty).write_bytes(b"")
            written_at = datetime.now(UTC)
            wait_for(lambda: {torn, empty} <= {p.name for p in (broker / "bad").iterdir()},
                     30, "both files set aside", log)  # fmt: skip
            wait_for(lambda: _runs_since(base, rule["id"], token, written_at), 30, "a run", log)
            assert _child_pid(up.pid, "worker") == worker
    finally:
        code = stop(up)
    text = log.read_text()
    for name, reason in ((torn, "JSONDecodeError: Unterminated string"),
                         (empty, "JSONDecodeError: Expecting value")):  # fmt: skip
        assert f"embedded broker: moved unreadable message {name} to " in text
        assert reason in text.split(name)[1].splitlines()[0]
    assert "rulewatch: worker" not in text  # never restarted
    assert code == 0, text[-3000:]
