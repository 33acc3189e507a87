"""`rulewatch up` end to end on embedded storage: nothing but this package installed."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
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
