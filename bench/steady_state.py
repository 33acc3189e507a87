"""Steady state with the production defaults: verifications a second held, not a burst.

The README's production split on this machine's PostgreSQL and Redis: `rulewatch web`,
`rulewatch worker` and `rulewatch beat`, each with no option and no tuning variable, so
what is measured is what a user gets. N http rules at one interval, each with its own URL
on Debian's nginx, first runs spread over the interval as created rules are. After a
warm-up, a window of steady state is measured from the verifications table: runs started
in the window (each recorded, or it would not be counted), their lateness (start minus
due time), and CPU per verification of each process group from /proc. Then beat stops and
bare Celery no-op tasks (`rulewatch.ping`) are timed on the same broker and worker.

Usage: python bench/steady_state.py [--rules 40000] [--interval 10] [--warmup 40]
       [--duration 60] [--ports 4] [--noop 3000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
from celery import group
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import free_port, run_as_script, wait_http, wait_port  # noqa: E402
from bench.database import scratch_database  # noqa: E402
from bench.nginx import start_nginx, target_urls  # noqa: E402
from bench.procstat import usage  # noqa: E402
from bench.scale import make_rules  # noqa: E402
from rulewatch import create_app  # noqa: E402
from rulewatch.config import load_settings  # noqa: E402
from rulewatch.migrate import upgrade  # noqa: E402

BROKER = os.environ.get("RULEWATCH_BENCH_STEADY_REDIS", "redis://127.0.0.1:6379/13")
ROLES = {"web": " web", "worker": " worker", "beat": " beat"}  # command-line needles


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The load on a fresh database and Redis db, both emptied afterwards."""
    redis.Redis.from_url(BROKER).flushdb()
    try:
        with scratch_database() as url:
            return _run(url, args)
    finally:
        redis.Redis.from_url(BROKER).flushdb()


def _run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    upgrade(url)
    home = Path(f"/tmp/rulewatch-steady-{os.getpid()}")
    home.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "RULEWATCH_HOME": str(home),
        "RULEWATCH_DATABASE_URL": url,
        "RULEWATCH_BROKER_URL": BROKER,
        "RULEWATCH_ADMIN_PASSWORD": "bench-password-1",
    }
    for name in (
        "RULEWATCH_TICK_S",
        "RULEWATCH_CHUNK_SIZE",
        "RULEWATCH_CLAIM_BATCH",
        "RULEWATCH_RESULT_BACKEND",
    ):  # the defaults, whatever the caller's shell says
        env.pop(name, None)  # fmt: skip
    ports = [free_port() for _ in range(args.ports)]
    web_port = free_port()
    procs = [start_nginx(ports)]
    log = (home / "steady.log").open("wb")
    me = [sys.executable, "-m", "rulewatch"]

    def start(*command: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([*me, *command], env=env, stdout=log, stderr=log)
        procs.append(proc)
        return proc

    try:
        for port in ports:
            wait_port(port)
        begin = datetime.now(UTC) + timedelta(seconds=10)
        make_rules(url, target_urls(ports, args.rules), args.interval, begin)
        start("web", "--port", str(web_port))
        start("worker", "--loglevel", "WARNING")
        beat = start("beat", "--loglevel", "WARNING")
        wait_http(f"http://127.0.0.1:{web_port}/healthz")
        print(f"steady: {args.rules:,} rules every {args.interval} s from {begin:%H:%M:%S};"
              f" warm-up {args.warmup} s, then {args.duration} s measured", flush=True)  # fmt: skip
        _sleep_until(begin + timedelta(seconds=args.warmup))
        window_start = datetime.now(UTC)
        cpu0 = {role: usage(str(home), needle).cpu_s for role, needle in ROLES.items()}
        _sleep_until(window_start + timedelta(seconds=args.duration))
        window_end = datetime.now(UTC)
        cpu = {role: usage(str(home), needle).cpu_s - cpu0[role] for role, needle in ROLES.items()}
        behind_s = _behind_s(url)
        beat.terminate()
        beat.wait(30)
        time.sleep(args.interval)  # what beat sent drains before the no-op tasks
        noop_per_s = _noop_rate(env, args.noop)
        result = _figures(url, window_start, window_end, args, cpu, noop_per_s)
        result["scheduler_behind_s_at_end"] = behind_s
        return result
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.terminate()  # nginx's master stops its workers on SIGTERM, not SIGKILL
        for proc in procs:
            proc.wait(60)


def _sleep_until(moment: datetime) -> None:
    while (left := (moment - datetime.now(UTC)).total_seconds()) > 0:
        time.sleep(min(left, 1.0))


def _behind_s(url: str) -> float:
    """How far the most overdue enabled rule is past its due time, unclaimed or claimed."""
    engine = create_engine(url)
    with engine.connect() as conn:
        oldest = conn.scalar(text("SELECT min(next_due_at) FROM rules WHERE enabled"))
    engine.dispose()
    now = datetime.now(UTC).replace(tzinfo=None)
    return round(max(0.0, (now - oldest).total_seconds()), 2) if oldest else 0.0


def _noop_rate(env: dict[str, str], count: int) -> float:
    celery = create_app(load_settings(env)).extensions["celery"]
    celery.send_task("rulewatch.ping").get(timeout=60)
    started = time.perf_counter()
    ping = celery.signature("rulewatch.ping")
    group(ping.clone() for _ in range(count)).apply_async().get(timeout=600)
    return count / (time.perf_counter() - started)


def _figures(
    url: str, start: datetime, end: datetime, args: argparse.Namespace,
    cpu: dict[str, float], noop_per_s: float,
) -> dict[str, Any]:  # fmt: skip
    late = "extract(epoch FROM started_at - scheduled_for)"
    query = text(f"""
        SELECT count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY {late}),
               percentile_cont(0.99) WITHIN GROUP (ORDER BY {late}), max({late}),
               count(DISTINCT rule_id), sum(CASE WHEN status = 'pass' THEN 1 ELSE 0 END)
        FROM verifications
        WHERE trigger = 'schedule' AND started_at >= :start AND started_at < :end
    """)
    engine = create_engine(url)
    with engine.connect() as conn:
        window = {"start": start.replace(tzinfo=None), "end": end.replace(tzinfo=None)}
        count, p50, p99, worst, rules_run, passed = conn.execute(query, window).one()
    engine.dispose()
    seconds = (end - start).total_seconds()
    rate = count / seconds
    return {
        "rules": args.rules, "interval_s": args.interval, "distinct_urls": args.rules,
        "nginx_ports": args.ports, "demand_per_s": round(args.rules / args.interval, 1),
        "warmup_s": args.warmup, "window_s": round(seconds, 1),
        "verifications": count, "verifications_per_s": round(rate, 1),
        "rules_verified_in_window": rules_run, "passed": int(passed or 0),
        "lateness_p50_s": round(float(p50 or 0), 3), "lateness_p99_s": round(float(p99 or 0), 3),
        "lateness_max_s": round(float(worst or 0), 3),
        "cpu_ms_per_verification": {
            role: round(1000 * used / max(count, 1), 3) for role, used in cpu.items()
        },
        "cpu_share_of_one_core": {role: round(s / seconds, 2) for role, s in cpu.items()},
        "noop_tasks_per_s": round(noop_per_s, 1),
        "ratio_to_noop": round(rate / noop_per_s, 2),
        "worker_defaults": "rulewatch worker (no options), rulewatch beat, rulewatch web",
    }  # fmt: skip


def parser() -> argparse.ArgumentParser:
    """Command-line options, also used by bench/run_all.py for the defaults."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rules", type=int, default=40_000)
    p.add_argument("--interval", type=int, default=10)
    p.add_argument("--warmup", type=int, default=40)
    p.add_argument("--duration", type=int, default=60)
    p.add_argument("--ports", type=int, default=4, help="nginx ports the URLs spread over")
    p.add_argument("--noop", type=int, default=3000)
    return p


if __name__ == "__main__":
    run_as_script(run, parser)
