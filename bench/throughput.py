"""End-to-end verifications per second on Redis + PostgreSQL, beside the bare Celery rate.

Usage: python bench/throughput.py [--rules N] [--noop M] [--workers W] [--concurrency C]
Starts Debian's nginx as the target, W worker processes, creates N due http rules in a fresh
PostgreSQL database, runs one verify_all_rules and times until all N are recorded; then times
M no-op `rulewatch.ping` tasks on the same broker.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
from celery import group
from sqlalchemy import create_engine, func, insert, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.nginx import start_nginx  # noqa: E402
from rulewatch import create_app  # noqa: E402
from rulewatch.config import load_settings  # noqa: E402
from rulewatch.migrate import upgrade  # noqa: E402
from rulewatch.models import Rule, Verification  # noqa: E402
from tests.conftest import drop_database, fresh_database  # noqa: E402

PG_ADMIN = os.environ.get("RULEWATCH_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BROKER = os.environ.get("RULEWATCH_BENCH_REDIS", "redis://127.0.0.1:6379/12")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def make_rules(url: str, count: int, target: str) -> None:
    now = datetime.now(UTC) - timedelta(seconds=1)
    rows = [
        {"name": f"bench {i}", "kind": "http", "target": {"url": target, "timeout_s": 10},
         "conditions": ["[STATUS] == 200", "[BODY].status == UP"], "interval_s": 3600,
         "timezone": "UTC", "enabled": True, "stability_target": 0.99, "created_at": now,
         "updated_at": now, "next_due_at": now}
        for i in range(count)
    ]  # fmt: skip
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(insert(Rule), rows)
    engine.dispose()


def count_verifications(url: str) -> int:
    engine = create_engine(url)
    with engine.connect() as conn:
        n = conn.scalar(select(func.count()).select_from(Verification)) or 0
    engine.dispose()
    return int(n)


def run(args: argparse.Namespace) -> dict[str, Any]:
    url, dbname = fresh_database(PG_ADMIN)
    upgrade(url)
    redis.Redis.from_url(BROKER).flushdb()
    home = Path(f"/tmp/rulewatch-bench-{os.getpid()}")
    env = {**os.environ, "RULEWATCH_HOME": str(home), "RULEWATCH_DATABASE_URL": url,
           "RULEWATCH_BROKER_URL": BROKER, "RULEWATCH_RESULT_BACKEND": BROKER,
           "RULEWATCH_CHUNK_SIZE": str(args.chunk)}  # fmt: skip
    port = free_port()
    procs = [start_nginx(port)]
    try:
        wait_port(port)
        make_rules(url, args.rules, f"http://127.0.0.1:{port}/health")
        for _ in range(args.workers):
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "rulewatch", "worker", "-Q", "scheduler,checks",
                 "-c", str(args.concurrency), "--loglevel", "WARNING"], env=env))  # fmt: skip
        app = create_app(load_settings(env))
        from rulewatch.tasks import ping, verify_all_rules

        ping.apply_async().get(timeout=60)  # workers are up
        t0 = time.perf_counter()
        verify_all_rules.apply_async().get(timeout=120)
        while count_verifications(url) < args.rules:
            time.sleep(0.05)
        checks_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        group(ping.s() for _ in range(args.noop)).apply_async().get(timeout=600)
        noop_s = time.perf_counter() - t0
        del app
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
        drop_database(PG_ADMIN, dbname)
    verifications_per_s = args.rules / checks_s
    noop_per_s = args.noop / noop_s
    return {
        "rules": args.rules, "workers": args.workers, "concurrency": args.concurrency,
        "chunk": args.chunk, "verifications_per_s": round(verifications_per_s, 1),
        "noop_tasks_per_s": round(noop_per_s, 1),
        "ratio": round(verifications_per_s / noop_per_s, 2),
    }  # fmt: skip


def parser() -> argparse.ArgumentParser:
    """Command-line options, also used by bench/run_all.py for the defaults."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rules", type=int, default=30000)
    p.add_argument("--noop", type=int, default=3000)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--concurrency", type=int, default=2)
    p.add_argument("--chunk", type=int, default=500)
    return p


def main() -> None:
    print(json.dumps(run(parser().parse_args()), indent=2))


if __name__ == "__main__":
    main()
