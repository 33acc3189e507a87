"""Slow targets delay only themselves (issue #12 item 2): fast rules' lateness beside rules
whose target never answers.

Usage: python bench/slow_targets_bench.py [--fast 1000] [--slow 20] [--interval 10]
                                          [--timeout 60] [--duration 150]

N http rules at an interval against nginx, and M rules against a port that accepts
connections and never answers (`timeout_s` 60 by default), spread over their interval as new
rules are. One `rulewatch worker` of the default concurrency consumes every queue (the
scheduler's ticks included) and beat ticks every second, on Redis and PostgreSQL. From the
database: the fast rules' lateness (`started_at - scheduled_for`) and every due time that was
never verified; from the worker's log: when each `verify_all_rules` tick started.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import create_engine, insert, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import free_port, run_as_script, wait_port  # noqa: E402
from bench.database import scratch_database  # noqa: E402
from bench.nginx import start_nginx, target_urls  # noqa: E402
from rulewatch.domain.schedule import Schedule, first_due  # noqa: E402
from rulewatch.migrate import upgrade  # noqa: E402
from rulewatch.models import Rule, Verification  # noqa: E402

BROKER = os.environ.get("RULEWATCH_BENCH_SLOW_REDIS", "redis://127.0.0.1:6379/5")
WARM_UP_S = 15  # the worker and beat start before the first rule is due
SETTLE_S = 5  # due times this close to the end may still be running: not counted
TICK = re.compile(
    r"\[([\d-]+ [\d:,]+): INFO/MainProcess\] Task rulewatch\.verify_all_rules\[[^\]]+\] received"
)


def make_rules(url: str, fast: list[str], slow: str, args: argparse.Namespace,
               start: datetime) -> dict[int, datetime]:  # fmt: skip
    """The fast rules, then the slow ones; each fast rule's first due time, by id."""
    schedule = Schedule(interval_s=args.interval)
    targets = [(u, 5.0) for u in fast] + [(slow, float(args.timeout))] * args.slow
    rows = [
        {"id": i, "name": f"{'fast' if i <= len(fast) else 'slow'} {i}", "kind": "http",
         "target": {"url": target, "timeout_s": timeout_s},
         "conditions": ["[STATUS] == 200"], "interval_s": args.interval, "timezone": "UTC",
         "enabled": True, "stability_target": 0.99, "created_at": start, "updated_at": start,
         "next_due_at": first_due(schedule, i, start)}
        for i, (target, timeout_s) in enumerate(targets, start=1)
    ]  # fmt: skip
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(insert(Rule), rows)
    engine.dispose()
    return {row["id"]: row["next_due_at"] for row in rows[: len(fast)]}


def silent_port() -> tuple[socket.socket, int]:
    """A port whose connections the kernel accepts and nobody ever answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    return listener, listener.getsockname()[1]


def fast_runs(url: str, first: dict[int, datetime], until: datetime) -> dict[int, list[Any]]:
    """Each fast rule's scheduled runs due before ``until``: (due, started) in due order."""
    query = (
        select(Verification.rule_id, Verification.scheduled_for, Verification.started_at)
        .where(Verification.rule_id.in_(first), Verification.scheduled_for < until)
        .order_by(Verification.scheduled_for)
    )
    runs: dict[int, list[Any]] = defaultdict(list)
    engine = create_engine(url)
    with engine.connect() as conn:
        for rule_id, due, started in conn.execute(query):
            runs[rule_id].append((due, started))
    engine.dispose()
    return runs


def missed_due_times(runs: dict[int, list[Any]], first: dict[int, datetime], interval: int,
                     until: datetime) -> tuple[int, int]:  # fmt: skip
    """Due times on each fast rule's grid before ``until`` never verified, and due times
    verified twice."""
    missed = twice = 0
    for rule_id, first_due_at in first.items():
        expected = max(0, -(-(until - first_due_at) // timedelta(seconds=interval)))
        dues = [due for due, _ in runs.get(rule_id, [])]
        twice += len(dues) - len(set(dues))
        missed += expected - len(set(dues))
    return missed, twice


def slow_outcomes(url: str, fast: int) -> dict[str, int]:
    """How the slow rules' runs were recorded, by status and error."""
    query = select(Verification.status, Verification.error, Verification.scheduled_for,
                   Verification.rule_id).where(Verification.rule_id > fast)  # fmt: skip
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    engine.dispose()
    outcomes: dict[str, int] = defaultdict(int)
    for status, error, _, _ in rows:
        outcomes[f"{status}: {error}"] += 1
    outcomes["due times recorded twice"] = len(rows) - len({(r[3], r[2]) for r in rows})
    return dict(outcomes)


def tick_gaps_s(log: str) -> list[float]:
    """Seconds between consecutive ticks the worker started, from its log."""
    started = [datetime.strptime(at, "%Y-%m-%d %H:%M:%S,%f") for at in TICK.findall(log)]
    return [(b - a).total_seconds() for a, b in itertools.pairwise(started)]


def quantiles(values: list[float]) -> dict[str, float]:
    """p50, p99 and max, rounded to the millisecond."""
    q = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": round(q[49], 3), "p99": round(q[98], 3), "max": round(max(values), 3),
            "n": len(values)}  # fmt: skip


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The scenario on a fresh database, dropped afterwards."""
    with scratch_database() as url:
        return _run(url, args)


def _run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    upgrade(url)
    redis.Redis.from_url(BROKER).flushdb()
    home = Path(tempfile.mkdtemp(prefix="rulewatch-slow-bench-"))
    env = {**os.environ, "RULEWATCH_HOME": str(home), "RULEWATCH_DATABASE_URL": url,
           "RULEWATCH_BROKER_URL": BROKER, "RULEWATCH_RESULT_BACKEND": BROKER,
           "RULEWATCH_TICK_S": "1"}  # fmt: skip
    ports = [free_port() for _ in range(4)]
    listener, silent = silent_port()
    procs = [start_nginx(ports)]
    log = home / "worker.log"
    try:
        for port in ports:
            wait_port(port)
        start = datetime.now(UTC) + timedelta(seconds=WARM_UP_S)
        slow_url = f"http://127.0.0.1:{silent}/health"
        first = make_rules(url, target_urls(ports, args.fast), slow_url, args, start)
        me = [sys.executable, "-m", "rulewatch"]
        with log.open("wb") as out:
            procs += [subprocess.Popen([*me, "worker"], env=env, stdout=out, stderr=out),
                      subprocess.Popen([*me, "beat", "--loglevel", "WARNING"], env=env,
                                       stdout=out, stderr=out)]  # fmt: skip
            print(f"slow_targets: load from {start:%H:%M:%S} for {args.duration} s", flush=True)
            time.sleep(WARM_UP_S + args.duration)
            end = datetime.now(UTC)
            for proc in procs[1:]:
                proc.terminate()
            for proc in procs[1:]:
                proc.wait(120)
        until = end - timedelta(seconds=SETTLE_S)
        runs = fast_runs(url, first, until)
        missed, twice = missed_due_times(runs, first, args.interval, until)
        late = [(started - due).total_seconds() for r in runs.values() for due, started in r]
        gaps = tick_gaps_s(log.read_text(errors="replace"))
        result = {
            "fast_rules": args.fast, "slow_rules": args.slow, "interval_s": args.interval,
            "slow_timeout_s": args.timeout, "duration_s": args.duration,
            "worker": "one `rulewatch worker`, default concurrency, every queue; beat every 1 s",
            "fast_lateness_s": quantiles(late),
            "fast_missed_due_times": missed,
            "fast_due_times_verified_twice": twice,
            "tick_gap_s": quantiles(gaps),
            "slow_outcomes": slow_outcomes(url, args.fast),
        }  # fmt: skip
        shutil.rmtree(home, ignore_errors=True)
        return result
    finally:
        listener.close()
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()  # nginx's master stops its workers on SIGTERM, not SIGKILL
                proc.wait(60)


def parser() -> argparse.ArgumentParser:
    """Command-line options, also used by bench/run_all.py for the defaults."""
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--fast", type=int, default=1000)
    p.add_argument("--slow", type=int, default=20)
    p.add_argument("--interval", type=int, default=10)
    p.add_argument("--timeout", type=int, default=60, help="the slow rules' timeout_s")
    p.add_argument("--duration", type=int, default=150, help="seconds of load measured")
    return p


if __name__ == "__main__":
    run_as_script(run, parser)
