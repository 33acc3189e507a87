"""Storage per rule at steady state, measured from the database after a real run.

Usage: python bench/storage_bench.py [--rules 50] [--extra-rounds 400] [--days 765]

1. Raw verifications: N http rules against nginx, one worker; ``verify_all_rules(force)``
   rounds through the broker (the real probe and write path) until every rule has
   ``RULEWATCH_KEEP_PER_RULE`` (the default in force) plus ``--extra-rounds`` verifications,
   with the real retention task (``rulewatch.prune``) and a plain VACUUM (what autovacuum
   does) every 60 rounds (an hour at 60 s) once past the cap, so freed space is reused as
   in production; the rules table, updated by every run, is vacuumed every 5 rounds.
2. Rollups: the hours and days before today, in time order, through ``add_samples`` (the
   upsert the verification path calls), one sample a rule and hour, with ``prune_history``
   and VACUUM every simulated week, until the hourly and daily retention periods are full.

Then table plus index bytes (``pg_total_relation_size``) divided by the number of rules.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import Engine, create_engine, func, insert, select, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import free_port, say, wait_port  # noqa: E402
from bench.database import scratch_database  # noqa: E402
from bench.nginx import start_nginx, target_urls  # noqa: E402
from rulewatch import create_app  # noqa: E402
from rulewatch.config import Settings, load_settings  # noqa: E402
from rulewatch.db import make_engine, make_session_factory, transaction  # noqa: E402
from rulewatch.migrate import upgrade  # noqa: E402
from rulewatch.models import Rule, Verification  # noqa: E402
from rulewatch.services.retention import prune_history  # noqa: E402
from rulewatch.services.rollups import Sample, add_samples  # noqa: E402

BROKER = os.environ.get("RULEWATCH_BENCH_STORAGE_REDIS", "redis://127.0.0.1:6379/11")
TABLES = ("verifications", "rules", "rollups_hourly", "rollups_daily")
# At a 60 s interval a round is a minute: beat prunes hourly, and autovacuum (a minute's
# nap) keeps up with the rules' updates; the fill runs minutes in seconds, so it does both.
PRUNE_EVERY = 60
VACUUM_EVERY = 5


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Fill a fresh database to steady state through the real paths; measure bytes per rule."""
    with scratch_database() as url:
        upgrade(url)
        redis.Redis.from_url(BROKER).flushdb()
        env = {**os.environ, "RULEWATCH_HOME": f"/tmp/rulewatch-storage-{os.getpid()}",
               "RULEWATCH_DATABASE_URL": url, "RULEWATCH_BROKER_URL": BROKER,
               "RULEWATCH_RESULT_BACKEND": BROKER}  # fmt: skip
        settings = load_settings(env)
        engine = create_engine(url)
        try:
            t0 = time.perf_counter()
            raw = _raw_verifications(env, engine, settings, args)
            t1 = time.perf_counter()
            _rollups(url, engine, settings, args.days)
            t2 = time.perf_counter()
            tables = _sizes(engine, args.rules)
        finally:
            engine.dispose()
    per_rule = sum(t["bytes_per_rule"] for t in tables.values())
    per_row = tables["verifications"]["bytes"] / max(tables["verifications"]["rows"], 1)
    return {
        "bench": "storage", "rules": args.rules, "keep_per_rule": settings.keep_per_rule,
        "retention_days": settings.retention_days,
        "hourly_retention_days": settings.hourly_retention_days,
        "daily_retention_days": settings.daily_retention_days,
        **raw, "simulated_days": args.days, "tables": tables,
        "bytes_per_rule": per_rule, "bytes_per_verification_row": round(per_row),
        "always_failing_rule_bytes_derived": _failing_rule_bytes(tables, per_row, settings),
        "seconds": {"verifications": round(t1 - t0, 1), "rollups": round(t2 - t1, 1)},
        "goal_bytes_per_rule": 1_000_000, "meets_goal": per_rule <= 1_000_000,
    }  # fmt: skip


def _raw_verifications(
    env: dict[str, str], engine: Engine, settings: Settings, args: argparse.Namespace
) -> dict[str, Any]:
    """Verify every rule ``keep_per_rule + extra`` times through a worker, pruning as it goes."""
    port = free_port()
    procs = [start_nginx(port)]
    try:
        wait_port(port)
        _make_rules(engine, target_urls([port], args.rules))
        command = [sys.executable, "-m", "rulewatch", "worker", "-Q", "scheduler,checks",
                   "-c", "2", "--loglevel", "WARNING"]  # fmt: skip
        procs.append(subprocess.Popen(command, env=env, stdout=sys.stderr.fileno()))
        return _rounds(create_app(settings).extensions["celery"], engine, settings, args)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)


def _make_rules(engine: Engine, targets: Sequence[str]) -> None:
    now = datetime.now(UTC)
    rows = [
        {"name": f"storage {i}", "kind": "http", "target": {"url": url, "timeout_s": 10},
         "conditions": ["[STATUS] == 200", "[BODY].status == UP"], "interval_s": 60,
         "timezone": "UTC", "enabled": True, "stability_target": 0.99, "created_at": now,
         "updated_at": now, "next_due_at": now + timedelta(days=1)}
        for i, url in enumerate(targets)
    ]  # fmt: skip
    with engine.begin() as conn:
        conn.execute(insert(Rule), rows)


def _rounds(
    celery: Any, engine: Engine, settings: Settings, args: argparse.Namespace
) -> dict[str, Any]:
    celery.send_task("rulewatch.ping").get(timeout=60)  # the worker is up
    total = settings.keep_per_rule + args.extra_rounds
    done, live, cycles = 0, 0, []
    while done < total:
        step = min(VACUUM_EVERY, total - done)
        for _ in range(step):
            celery.send_task("rulewatch.verify_all_rules", kwargs={"force": True})
        live += step * args.rules
        _wait_for_rows(engine, live)
        done += step
        _vacuum(engine, ("rules",))
        if (done >= settings.keep_per_rule and done % PRUNE_EVERY == 0) or done == total:
            pruned = celery.send_task("rulewatch.prune").get(timeout=600)
            _vacuum(engine, ("verifications",))
            live = _count(engine)
            cycles.append({"rounds": done, "pruned": pruned["over_cap"], "rows": live,
                           "bytes": _relation_bytes(engine, "verifications")})  # fmt: skip
            say(f"storage: {cycles[-1]}")
    return {"rounds": total, "verifications_recorded": total * args.rules, "prune_cycles": cycles}


def _wait_for_rows(engine: Engine, rows: int, timeout_s: float = 900) -> None:
    deadline = time.monotonic() + timeout_s
    while _count(engine) < rows:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{_count(engine)} verifications after {timeout_s} s, not {rows}")
        time.sleep(0.2)


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(Verification)) or 0)


def _rollups(url: str, engine: Engine, settings: Settings, days: int) -> None:
    """``days`` days before today through the rollup upsert, pruning every simulated week."""
    factory = make_session_factory(make_engine(url))
    with engine.connect() as conn:
        rule_ids = list(conn.scalars(select(Rule.id)))
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    for n in range(days, 0, -1):
        day = today - timedelta(days=n)
        samples = [
            Sample(rid, day + timedelta(hours=h, minutes=30), "pass", 20.0 + (rid + h) % 80,
                   lag_ms=float(50 + (rid * h) % 900))
            for h in range(24) for rid in rule_ids
        ]  # fmt: skip
        with transaction(factory) as session:
            add_samples(session, samples)
        if n % 7 == 0:
            prune_history(factory, settings, day + timedelta(days=1))
            _vacuum(engine, ("rollups_hourly", "rollups_daily"))
    prune_history(factory, settings, datetime.now(UTC))
    _vacuum(engine, TABLES)


def _vacuum(engine: Engine, tables: Sequence[str]) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"VACUUM ANALYZE {', '.join(tables)}"))


def _relation_bytes(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(text(f"SELECT pg_total_relation_size('{table}')")) or 0)


def _sizes(engine: Engine, rules: int) -> dict[str, dict[str, Any]]:
    """Each table's bytes (heap, indexes, toast), rows, and both per rule."""
    out = {}
    for table in TABLES:
        with engine.connect() as conn:
            rows = int(conn.scalar(text(f"SELECT count(*) FROM {table}")) or 0)
        size = _relation_bytes(engine, table)
        out[table] = {"bytes": size, "rows": rows, "rows_per_rule": round(rows / rules, 1),
                      "bytes_per_rule": round(size / rules)}  # fmt: skip
    return out


def _failing_rule_bytes(
    tables: dict[str, dict[str, Any]], per_row: float, settings: Settings
) -> int:
    """A rule failing at every 60 s run keeps each failure for the retention period."""
    kept = settings.retention_days * 1440
    others = sum(t["bytes_per_rule"] for name, t in tables.items() if name != "verifications")
    return round(others + kept * per_row)


def parser() -> argparse.ArgumentParser:
    """Command-line options, also used by bench/run_all.py for the defaults."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rules", type=int, default=50)
    p.add_argument("--extra-rounds", type=int, default=400, help="rounds past the cap")
    p.add_argument("--days", type=int, default=765, help="simulated days of rollups")
    return p


def main() -> None:
    print(json.dumps(run(parser().parse_args()), indent=2))


if __name__ == "__main__":
    main()
