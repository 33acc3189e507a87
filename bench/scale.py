"""Scale: N rules at a fixed interval for a while; lateness, worker CPU and memory, and
"verify now" latency measured while the load runs, on the production split: Redis, a
scheduler+checks worker, a dedicated interactive worker and beat. (The stack `rulewatch up`
starts is measured by bench/verify_now_bench.py; storage by bench/storage_bench.py.)

Usage: python bench/scale.py [--rules 100000] [--interval 60] [--duration 300] [--ports 4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import create_engine, insert, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import free_port, rulewatch_env, run_as_script, start_rulewatch, wait_port  # noqa: E402
from bench.database import scratch_database  # noqa: E402
from bench.nginx import start_nginx, target_urls  # noqa: E402
from bench.procstat import usage  # noqa: E402
from rulewatch import create_app  # noqa: E402
from rulewatch.config import load_settings  # noqa: E402
from rulewatch.dispatch import verify_now  # noqa: E402
from rulewatch.domain.schedule import Schedule, first_due  # noqa: E402
from rulewatch.migrate import upgrade  # noqa: E402
from rulewatch.models import Rule  # noqa: E402

BROKER = os.environ.get("RULEWATCH_BENCH_SCALE_REDIS", "redis://127.0.0.1:6379/10")


def make_rules(url: str, targets: list[str], interval: int, start: datetime) -> None:
    """One rule per target URL, spread over the interval as new rules are (``first_due``)."""
    count = len(targets)
    schedule = Schedule(interval_s=interval)
    engine = create_engine(url)
    for base in range(0, count, 10000):
        rows = [
            {
                "id": i,
                "name": f"scale {i}",
                "kind": "http",
                "target": {"url": targets[i - 1], "timeout_s": 5.0},
                "conditions": ["[STATUS] == 200", "[BODY].status == UP"],
                "interval_s": interval,
                "timezone": "UTC",
                "enabled": True,
                "stability_target": 0.99,
                "created_at": start,
                "updated_at": start,
                "next_due_at": first_due(schedule, i, start),
            }
            for i in range(base + 1, min(base + 10000, count) + 1)
        ]
        with engine.begin() as conn:
            conn.execute(insert(Rule), rows)
    engine.dispose()


def interactive_latencies(app: Any, rule_id: int, stop: threading.Event) -> list[float]:
    """Every 2 s, a verify-now queued as the API queues it; seconds until its result is stored."""
    runtime, celery = app.extensions["rulewatch"], app.extensions["celery"]
    out: list[float] = []
    while not stop.wait(2.0):
        t0 = time.perf_counter()
        celery.AsyncResult(verify_now(runtime, rule_id)).get(timeout=60)
        out.append(time.perf_counter() - t0)
    return out


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    q = statistics.quantiles(values, n=100, method="inclusive")
    return {
        "p50": round(q[49], 4),
        "p95": round(q[94], 4),
        "p99": round(q[98], 4),
        "max": round(max(values), 4),
        "n": len(values),
    }


def lateness(url: str, since: datetime) -> dict[str, Any]:
    engine = create_engine(url)
    with engine.connect() as conn:
        row = conn.execute(
            text(
                """
            SELECT count(*),
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY {late}),
                   percentile_cont(0.99) WITHIN GROUP (ORDER BY {late}),
                   max({late}),
                   sum(CASE WHEN status = 'pass' THEN 1 ELSE 0 END)
            FROM verifications WHERE trigger = 'schedule' AND scheduled_for >= :since
        """.format(late="extract(epoch FROM started_at - scheduled_for)")
            ),
            {"since": since.replace(tzinfo=None)},
        ).one()
        due = conn.execute(
            text(
                "SELECT count(*) FROM rules"
                " WHERE next_due_at < now() AT TIME ZONE 'utc' - interval '10 seconds'"
            )
        ).scalar()
    engine.dispose()
    return {
        "scheduled_verifications": row[0],
        "passed": int(row[4] or 0),
        "lateness_p50_s": round(float(row[1] or 0), 3),
        "lateness_p99_s": round(float(row[2] or 0), 3),
        "lateness_max_s": round(float(row[3] or 0), 3),
        "rules_overdue_by_10s_at_end": due,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The load on a fresh database, dropped afterwards."""
    with scratch_database() as url:
        return _run(url, args)


def _run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    upgrade(url)
    redis.Redis.from_url(BROKER).flushdb()
    home = f"/tmp/rulewatch-scale-{os.getpid()}"
    env = rulewatch_env(home, url, BROKER, RULEWATCH_CHUNK_SIZE=str(args.chunk),
                        RULEWATCH_CLAIM_BATCH="5000")  # fmt: skip
    ports = [free_port() for _ in range(args.ports)]
    procs = [start_nginx(ports)]
    stop = threading.Event()
    try:
        for port in ports:
            wait_port(port)
        start = datetime.now(UTC) + timedelta(seconds=15)
        make_rules(url, target_urls(ports, args.rules), args.interval, start)
        roles = [["worker", "-Q", "scheduler,checks", "-c", str(args.concurrency)],
                 ["worker", "-Q", "interactive", "-c", "1"], ["beat"]]  # fmt: skip
        procs += start_rulewatch(roles, env, Path(home) / "bench.log")
        app = create_app(load_settings(env))
        print(f"scale: {args.rules} rules created; load starts at {start:%H:%M:%S}", flush=True)
        while datetime.now(UTC) < start:
            time.sleep(0.5)
        cpu0 = {
            role: usage(home, role).cpu_s
            for role in ("-Q scheduler,checks", "-Q interactive", "beat")
        }
        latencies: list[float] = []
        thread = threading.Thread(
            target=lambda: latencies.extend(interactive_latencies(app, 1, stop))
        )
        thread.start()
        peak_rss = 0
        t_end = time.monotonic() + args.duration
        while time.monotonic() < t_end:
            time.sleep(5)
            peak_rss = max(peak_rss, usage(home, "-Q scheduler,checks").rss_bytes)
        stop.set()
        thread.join()
        print("scale: load done; measuring", flush=True)
        cpu = {role: round(usage(home, role).cpu_s - c0, 1) for role, c0 in cpu0.items()}
        result = {
            "rules": args.rules,
            "interval_s": args.interval,
            "duration_s": args.duration,
            "check_worker_concurrency": args.concurrency,
            "chunk": args.chunk,
            "distinct_urls": args.rules,
            "nginx_ports": args.ports,
            **lateness(url, start),
            "worker_cpu_s": cpu,
            "worker_cpu_share_of_one_core": {
                role: round(v / args.duration, 2) for role, v in cpu.items()
            },
            "check_worker_peak_rss_mb": round(peak_rss / 2**20, 1),
            "verify_now_latency_s": percentiles(latencies),
        }
        for p in procs[1:]:
            p.terminate()
        for p in procs[1:]:
            p.wait(60)
        return result
    finally:
        stop.set()
        for p in procs:
            if p.poll() is None:
                p.terminate()  # nginx's master stops its workers on SIGTERM, not on SIGKILL
                p.wait(30)


def parser() -> argparse.ArgumentParser:
    """Command-line options, also used by bench/run_all.py for the defaults."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rules", type=int, default=100_000)
    p.add_argument("--interval", type=int, default=60)
    p.add_argument("--duration", type=int, default=300)
    p.add_argument("--ports", type=int, default=4, help="nginx ports the URLs spread over")
    p.add_argument("--concurrency", type=int, default=2)
    p.add_argument("--chunk", type=int, default=500)
    return p


if __name__ == "__main__":
    run_as_script(run, parser)
