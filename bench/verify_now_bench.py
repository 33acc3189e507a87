"""Verify-now latency on the stack `rulewatch up` starts, while its scheduled load runs.

Usage: python bench/verify_now_bench.py [--rules 2000] [--interval 60] [--duration 90]

`rulewatch up` in a fresh RULEWATCH_HOME with no other RULEWATCH_* settings: SQLite, the
embedded (filesystem) broker, one worker (prefork 4) consuming every queue, beat and the web
server; no dedicated interactive worker. N http rules (each its own URL on nginx) spread over
their interval keep the worker busy; every 2 s a client asks the API to verify rule 1 now
(POST /api/v1/rules/1/verify) and polls GET /api/v1/tasks/<id> every 20 ms until it
succeeds: the latency a person clicking "verify now" sees. The production split (Redis, a
dedicated interactive worker) is measured by bench/scale.py.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import create_engine, insert, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import free_port, summary_ms, wait_http, wait_port  # noqa: E402
from bench.nginx import start_nginx, target_urls  # noqa: E402
from rulewatch.domain.schedule import Schedule, first_due  # noqa: E402
from rulewatch.models import Rule  # noqa: E402

POLL_S = 0.02


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start `rulewatch up` with N rules due over their interval; time verify-now meanwhile."""
    home = Path(tempfile.mkdtemp(prefix="rulewatch-up-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RULEWATCH_")}
    env |= {"RULEWATCH_HOME": str(home), "RULEWATCH_ADMIN_PASSWORD": secrets.token_urlsafe(16)}
    ports = [free_port() for _ in range(4)]
    web = free_port()
    procs = [start_nginx(ports)]
    log = (home / "up.log").open("wb")
    try:
        for port in ports:
            wait_port(port)
        command = [sys.executable, "-m", "rulewatch", "up", "--port", str(web)]
        procs.append(subprocess.Popen(command, env=env, stdout=log, stderr=log))
        base = f"http://127.0.0.1:{web}"
        wait_http(base + "/healthz", alive=lambda: procs[1].poll() is None)
        token = _token(env)
        start = datetime.now(UTC) + timedelta(seconds=5)
        _make_rules(home, target_urls(ports, args.rules), args.interval, start)
        return _measure(base, token, home, start, args)
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            p.wait(60)
        log.close()
        shutil.rmtree(home, ignore_errors=True)


def _token(env: dict[str, str]) -> str:
    """An API token of the admin `rulewatch up` created, from the CLI (its last line)."""
    command = [sys.executable, "-m", "rulewatch", "tokens", "create", "--user", "admin"]
    out = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
    return out.strip().splitlines()[-1]


def _make_rules(home: Path, targets: list[str], interval: int, start: datetime) -> None:
    schedule = Schedule(interval_s=interval)
    rows = [
        {"id": i, "name": f"up {i}", "kind": "http", "target": {"url": url, "timeout_s": 5.0},
         "conditions": ["[STATUS] == 200", "[BODY].status == UP"], "interval_s": interval,
         "timezone": "UTC", "enabled": True, "stability_target": 0.99, "created_at": start,
         "updated_at": start, "next_due_at": first_due(schedule, i, start)}
        for i, url in enumerate(targets, start=1)
    ]  # fmt: skip
    engine = create_engine(f"sqlite:///{home / 'rulewatch.db'}", connect_args={"timeout": 30})
    with engine.begin() as conn:
        conn.execute(insert(Rule), rows)
    engine.dispose()


def _measure(
    base: str, token: str, home: Path, start: datetime, args: argparse.Namespace
) -> dict[str, Any]:
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {token}"
    while datetime.now(UTC) < start:
        time.sleep(0.2)
    latencies: list[float] = []
    deadline = time.monotonic() + args.duration
    while time.monotonic() < deadline:
        time.sleep(2.0)  # a person's click every 2 s, as bench/scale.py does
        latencies.append(_verify_now(http, base, rule_id=1))
    return {
        "bench": "verify_now_up", "stack": "rulewatch up (SQLite, embedded broker, one worker "
        "prefork 4 on every queue, beat, web)", "rules": args.rules,
        "interval_s": args.interval, "duration_s": args.duration, "poll_ms": POLL_S * 1000,
        "verify_now_ms": summary_ms(latencies), **_lateness(home, start),
    }  # fmt: skip


def _verify_now(http: requests.Session, base: str, rule_id: int) -> float:
    """Seconds from asking for a verification to the API reporting its success."""
    t0 = time.perf_counter()
    answer = http.post(f"{base}/api/v1/rules/{rule_id}/verify", json={}, timeout=30)
    answer.raise_for_status()
    task = answer.json()["task_id"]
    while True:
        state = http.get(f"{base}/api/v1/tasks/{task}", timeout=30).json()["state"]
        if state == "SUCCESS":
            return time.perf_counter() - t0
        if state in ("FAILURE", "REVOKED"):
            raise RuntimeError(f"verify-now task {task} ended {state}")
        if time.perf_counter() - t0 > 120:
            raise RuntimeError(f"verify-now task {task} still {state} after 120 s")
        time.sleep(POLL_S)


def _lateness(home: Path, start: datetime) -> dict[str, Any]:
    """How late the scheduled verifications started, from the database."""
    engine = create_engine(f"sqlite:///{home / 'rulewatch.db'}", connect_args={"timeout": 30})
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT (julianday(started_at) - julianday(scheduled_for)) * 86400 "
                "FROM verifications WHERE trigger = 'schedule' AND scheduled_for >= :start"
            ),
            {"start": start.replace(tzinfo=None).isoformat(sep=" ")},
        ).scalars()
        late = sorted(float(r) for r in rows)
    engine.dispose()
    if len(late) < 2:
        return {"scheduled_verifications": len(late)}
    q = statistics.quantiles(late, n=100, method="inclusive")
    return {"scheduled_verifications": len(late), "lateness_p50_s": round(q[49], 3),
            "lateness_p99_s": round(q[98], 3), "lateness_max_s": round(late[-1], 3)}  # fmt: skip


def parser() -> argparse.ArgumentParser:
    """Command-line options, also used by bench/run_all.py for the defaults."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rules", type=int, default=2000)
    p.add_argument("--interval", type=int, default=60)
    p.add_argument("--duration", type=int, default=90)
    return p


def main() -> None:
    print(json.dumps(run(parser().parse_args()), indent=2))


if __name__ == "__main__":
    main()
