"""End-to-end verifications per second on Redis + PostgreSQL, beside the bare Celery rate.

Usage: python bench/throughput.py [--rules N] [--ports P] [--noop M] [--workers W]
       [--concurrency C] [--result FILE]
Starts Debian's nginx on P ports as the target, W worker processes, creates N due http rules,
each with its own URL spread over the ports, in a fresh PostgreSQL database, runs one
verify_all_rules and times until all N are recorded; then times M no-op `rulewatch.ping`
tasks on the same broker. Only task names, settings and tables are used, so the same bench
runs against another revision of rulewatch (bench/baseline.py).
"""

from __future__ import annotations

import argparse
import json
import os
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
from bench.common import free_port, wait_port  # noqa: E402
from bench.database import scratch_database  # noqa: E402
from bench.nginx import start_nginx, target_urls  # noqa: E402
from rulewatch import create_app  # noqa: E402
from rulewatch.config import load_settings  # noqa: E402
from rulewatch.migrate import upgrade  # noqa: E402
from rulewatch.models import Rule, Verification  # noqa: E402

BROKER = os.environ.get("RULEWATCH_BENCH_REDIS", "redis://127.0.0.1:6379/12")


def make_rules(url: str, targets: list[str]) -> None:
    """One due http rule per target URL."""
    now = datetime.now(UTC) - timedelta(seconds=1)
    rows = [
        {"name": f"bench {i}", "kind": "http", "target": {"url": target, "timeout_s": 10},
         "conditions": ["[STATUS] == 200", "[BODY].status == UP"], "interval_s": 3600,
         "timezone": "UTC", "enabled": True, "stability_target": 0.99, "created_at": now,
         "updated_at": now, "next_due_at": now}
        for i, target in enumerate(targets)
    ]  # fmt: skip
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(insert(Rule), rows)
    engine.dispose()


def count_verifications(url: str) -> int:
    """Verifications recorded so far."""
    engine = create_engine(url)
    with engine.connect() as conn:
        n = conn.scalar(select(func.count()).select_from(Verification)) or 0
    engine.dispose()
    return int(n)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Time N verifications end to end, then M no-op tasks, on a fresh stack."""
    with scratch_database() as url:
        upgrade(url)
        redis.Redis.from_url(BROKER).flushdb()
        ports = [free_port() for _ in range(args.ports)]
        procs = [start_nginx(ports)]
        try:
            for port in ports:
                wait_port(port)
            targets = target_urls(ports, args.rules)
            make_rules(url, targets)
            env = _env(url, args.chunk)
            procs += [_worker(env, args.concurrency) for _ in range(args.workers)]
            checks_s, noop_s = _timed(env, url, args)
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(30)
    verifications_per_s = args.rules / checks_s
    noop_per_s = args.noop / noop_s
    return {
        "rules": args.rules, "distinct_urls": len(set(targets)), "nginx_ports": len(ports),
        "workers": args.workers, "concurrency": args.concurrency, "chunk": args.chunk,
        "verifications_per_s": round(verifications_per_s, 1),
        "noop_tasks_per_s": round(noop_per_s, 1),
        "ratio": round(verifications_per_s / noop_per_s, 2),
    }  # fmt: skip


def _env(url: str, chunk: int) -> dict[str, str]:
    home = Path(f"/tmp/rulewatch-bench-{os.getpid()}")
    return {**os.environ, "RULEWATCH_HOME": str(home), "RULEWATCH_DATABASE_URL": url,
            "RULEWATCH_BROKER_URL": BROKER, "RULEWATCH_RESULT_BACKEND": BROKER,
            "RULEWATCH_CHUNK_SIZE": str(chunk)}  # fmt: skip


def _worker(env: dict[str, str], concurrency: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "rulewatch", "worker", "-Q", "scheduler,checks",
               "-c", str(concurrency), "--loglevel", "WARNING"]  # fmt: skip
    return subprocess.Popen(command, env=env, stdout=sys.stderr.fileno())


def _timed(env: dict[str, str], url: str, args: argparse.Namespace) -> tuple[float, float]:
    """Seconds for all rules' verifications to be recorded, and for the no-op tasks."""
    celery = create_app(load_settings(env)).extensions["celery"]
    celery.send_task("rulewatch.ping").get(timeout=60)  # workers are up
    t0 = time.perf_counter()
    celery.send_task("rulewatch.verify_all_rules").get(timeout=120)
    while count_verifications(url) < args.rules:
        time.sleep(0.05)
    checks_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ping = celery.signature("rulewatch.ping")
    group(ping.clone() for _ in range(args.noop)).apply_async().get(timeout=600)
    return checks_s, time.perf_counter() - t0


def parser() -> argparse.ArgumentParser:
    """Command-line options, also used by bench/run_all.py for the defaults."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rules", type=int, default=30000)
    p.add_argument("--ports", type=int, default=4, help="nginx ports the URLs spread over")
    p.add_argument("--noop", type=int, default=3000)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--concurrency", type=int, default=2)
    p.add_argument("--chunk", type=int, default=500)
    p.add_argument("--result", type=Path, help="also write the JSON result to this file")
    return p


def main() -> None:
    args = parser().parse_args()
    result = json.dumps(run(args), indent=2)
    if args.result:
        args.result.write_text(result)
    print(result)


if __name__ == "__main__":
    main()
