"""Bulk writes of one batch of verifications on PostgreSQL: the worker's CPU and the wall
time of what recording writes (the verification rows, their hourly rollups, the rules'
advance), as `db.insert_many` / `db.upsert` / `db.update_many` send them (one statement
each, rows from one JSON parameter) and as a statement run per row (the executemany they
replaced, and what SQLite and MariaDB still use). Alternating rounds, medians.

Usage: python bench/bulk_writes.py [--rows 500] [--rounds 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, update
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import run_as_script  # noqa: E402
from bench.database import scratch_database  # noqa: E402
from rulewatch import db  # noqa: E402
from rulewatch.migrate import upgrade  # noqa: E402
from rulewatch.models import HourlyRollup, Rule, Verification, utcnow  # noqa: E402

VERIFICATIONS = cast(Table, Verification.__table__)
HOURLY = cast(Table, HourlyRollup.__table__)
RULES = cast(Table, Rule.__table__)
MERGE: dict[str, db.Merge] = {
    "passed": "add", "failed": "add", "errors": "add", "maintenance": "add",
    "duration_sum_ms": "add", "duration_max_ms": "max",
}  # fmt: skip
RELEASE = {"claimed_until": None, "claim_token": None}
Rows = tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]


def _rows(rule_ids: list[int]) -> Rows:
    now = utcnow()
    hour = now.replace(minute=0, second=0, microsecond=0)
    verifications = [
        {"id": str(uuid.uuid4()), "rule_id": i, "scheduled_for": now, "started_at": now,
         "duration_ms": 1.2, "status": "pass", "trigger": "schedule", "in_maintenance": False,
         "conditions": [{"condition": "[STATUS] == 200", "success": True,
                         "resolved": "[STATUS] (200) == 200"}],
         "measured": {"status": 200, "response_time_ms": 1.2, "connected": True}, "error": None}
        for i in rule_ids
    ]  # fmt: skip
    rollups = [{"rule_id": i, "bucket": hour, "passed": 1, "failed": 0, "errors": 0,
                "maintenance": 0, "duration_sum_ms": 1.2, "duration_max_ms": 1.2}
               for i in rule_ids]  # fmt: skip
    advance = [{"id": i, "last_status": "pass", "last_verified_at": now,
                "next_due_at": now + timedelta(seconds=10)} for i in rule_ids]  # fmt: skip
    return verifications, rollups, advance


def bulk(session: Session, rows: Rows) -> None:
    """What recording sends now."""
    db.insert_many(session, VERIFICATIONS, rows[0])
    db.upsert(session, HOURLY, rows[1], ("rule_id", "bucket"), MERGE)
    db.update_many(session, RULES, rows[2], RELEASE)


def per_row(session: Session, rows: Rows) -> None:
    """The same writes as a statement run per row (executemany)."""
    session.execute(insert(VERIFICATIONS), rows[0])
    statement = db._upsert_statement("postgresql", HOURLY, ("rule_id", "bucket"),
                                     tuple(MERGE.items()))  # fmt: skip
    session.execute(statement, rows[1])
    by_id = update(RULES).where(RULES.c.id == bindparam("b_id"))
    values = {name: bindparam(f"b_{name}") for name in ("last_status", "last_verified_at",
                                                        "next_due_at")}  # fmt: skip
    session.execute(by_id.values(**values, **RELEASE),
                    [{f"b_{k}": v for k, v in row.items()} for row in rows[2]])  # fmt: skip


def run(args: argparse.Namespace) -> dict[str, Any]:
    with scratch_database() as url:
        upgrade(url)
        factory = db.make_session_factory(db.make_engine(url))
        now = utcnow()
        with db.transaction(factory) as session:
            session.execute(insert(Rule), [
                {"name": f"r{i}", "kind": "http", "target": {"url": f"http://127.0.0.1/{i}"},
                 "conditions": ["[STATUS] == 200"], "interval_s": 10, "timezone": "UTC",
                 "enabled": True, "stability_target": 0.99, "alert": None, "created_at": now,
                 "updated_at": now, "next_due_at": now} for i in range(args.rows)
            ])  # fmt: skip
        rule_ids = list(range(1, args.rows + 1))
        ways: dict[str, Callable[[Session, Rows], None]] = {"bulk": bulk, "per_row": per_row}
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in ways}
        for round_ in range(args.rounds + 2):  # two warm-up rounds, not counted
            for name, write in ways.items():
                rows = _rows(rule_ids)
                cpu, wall = time.process_time(), time.perf_counter()
                with db.transaction(factory) as session:
                    write(session, rows)
                if round_ >= 2:
                    samples[name].append((time.process_time() - cpu, time.perf_counter() - wall))
    out: dict[str, Any] = {"rows": args.rows, "rounds": args.rounds}
    for name, values in samples.items():
        cpu = statistics.median(c for c, _ in values)
        out[name] = {
            "cpu_us_per_row": round(cpu / args.rows * 1e6, 1),
            "wall_ms_per_batch": round(statistics.median(w for _, w in values) * 1000, 1),
        }
    out["cpu_ratio"] = round(out["per_row"]["cpu_us_per_row"] / out["bulk"]["cpu_us_per_row"], 2)
    return out


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=500)
    p.add_argument("--rounds", type=int, default=10)
    return p


if __name__ == "__main__":
    run_as_script(run, parser)
