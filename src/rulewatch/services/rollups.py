"""Hourly and daily rollups, updated by upsert with every recorded verification."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table
from sqlalchemy.orm import Session

from rulewatch.models import DailyRollup, HourlyRollup


@dataclass(frozen=True)
class Sample:
    """The part of a verification that rollups count."""

    rule_id: int
    started_at: datetime
    status: str
    duration_ms: float
    in_maintenance: bool = False  # counted apart: never in a rate


def hour_of(moment: datetime) -> datetime:
    """Start of the UTC hour holding ``moment``."""
    return moment.replace(minute=0, second=0, microsecond=0)


def day_of(moment: datetime) -> datetime:
    """Start of the UTC day holding ``moment``."""
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def add_samples(session: Session, samples: Iterable[Sample]) -> None:
    """Add samples to both rollup tables, one upsert per (rule, bucket)."""
    samples = list(samples)
    for model, bucket_of in ((HourlyRollup, hour_of), (DailyRollup, day_of)):
        rows = _aggregate(samples, bucket_of)
        if rows:
            _upsert(session, model.__table__, rows)  # type: ignore[arg-type]


def _aggregate(samples: list[Sample], bucket_of: Any) -> list[dict[str, Any]]:
    acc: dict[tuple[int, datetime], dict[str, Any]] = defaultdict(
        lambda: {"passed": 0, "failed": 0, "errors": 0, "maintenance": 0,
                 "duration_sum_ms": 0.0, "duration_max_ms": 0.0}
    )  # fmt: skip
    for s in samples:
        row = acc[(s.rule_id, bucket_of(s.started_at))]
        counter = {"pass": "passed", "fail": "failed"}.get(s.status, "errors")
        row["maintenance" if s.in_maintenance else counter] += 1
        row["duration_sum_ms"] += s.duration_ms
        row["duration_max_ms"] = max(row["duration_max_ms"], s.duration_ms)
    # sorted keys keep lock order stable across concurrent writers (no deadlocks)
    return [{"rule_id": r, "bucket": b, **v} for (r, b), v in sorted(acc.items())]


def _upsert(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    dialect = session.get_bind().dialect.name
    counters = ("passed", "failed", "errors", "maintenance", "duration_sum_ms")
    if dialect in ("mysql", "mariadb"):
        from sqlalchemy.dialects.mysql import insert as mysql_insert

        stmt = mysql_insert(table)
        new = stmt.inserted
        updates = {c: table.c[c] + new[c] for c in counters}
        updates["duration_max_ms"] = _greatest(table.c.duration_max_ms, new.duration_max_ms)
        session.execute(stmt.on_duplicate_key_update(updates), rows)
        return
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt_pg = pg_insert(table)
        excluded = stmt_pg.excluded
        stmt_any: Any = stmt_pg
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt_any = sqlite_insert(table)
        excluded = stmt_any.excluded
    updates = {c: table.c[c] + excluded[c] for c in counters}
    updates["duration_max_ms"] = _greatest(table.c.duration_max_ms, excluded.duration_max_ms)
    session.execute(
        stmt_any.on_conflict_do_update(index_elements=["rule_id", "bucket"], set_=updates), rows
    )


def _greatest(a: Any, b: Any) -> Any:
    from sqlalchemy import case

    return case((a >= b, a), else_=b)
