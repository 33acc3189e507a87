"""End-to-end verifications per second on Redis + PostgreSQL, beside the bare Celery rate.

Usage: python bench/throughput.py [--rules N] [--noop M] [--workers W] [--concurrency C]
Starts a local HTTP target, W worker processes, creates N due http rules in a fresh
PostgreSQL database, runs one verify_all_rules and times until all N are recorded; then times
M no-op `rulewatch.ping` tasks on the same broker. Writes docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
from celery import group
from sqlalchemy import create_engine, func, insert, select, text

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


def write_doc(result: dict[str, Any]) -> None:
    from importlib.metadata import version

    names = ("celery", "kombu", "sqlalchemy", "aiohttp", "redis", "psycopg")
    pins = [f"{name} {version(name)}" for name in names]
    engine = create_engine(PG_ADMIN)
    with engine.connect() as conn:
        pg = conn.scalar(text("SHOW server_version"))
    engine.dispose()
    redis_version = redis.Redis.from_url(BROKER).info()["redis_version"]
    doc = ROOT / "docs/performance.md"
    doc.write_text(f"""# Performance

Figures written by `make bench` (`bench/throughput.py`); rerun it to refresh them.

## Throughput baseline (issue #2)

Run on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {os.cpu_count()} cores,
Python {platform.python_version()}, PostgreSQL {pg}, Redis {redis_version};
{", ".join(pins)}.

{result["rules"]} http rules against Debian's nginx (a static JSON answer), all due at once; one
`verify_all_rules` claims them and dispatches `verify_batch` chunks of {result["chunk"]};
{result["workers"]} worker process(es) with prefork concurrency {result["concurrency"]} on
queues `scheduler,checks`. Timed from the dispatch until every verification is in the
database (verification, hourly and daily rollups, rule state).

| measure | figure |
| --- | --- |
| end-to-end verifications per second | {result["verifications_per_s"]} |
| bare Celery no-op tasks per second (same broker and workers, results on) | \
{result["noop_tasks_per_s"]} |
| ratio | {result["ratio"]} |

```json
{json.dumps(result, indent=2)}
```
""")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=2000)
    parser.add_argument("--noop", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--chunk", type=int, default=50)
    result = run(parser.parse_args())
    print(json.dumps(result, indent=2))
    write_doc(result)


if __name__ == "__main__":
    main()
