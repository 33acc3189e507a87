"""Hourly and daily rollups, updated by upsert with every recorded verification."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table
from sqlalchemy.orm import Session

from rulewatch.db import Merge, upsert
from rulewatch.models import DURATION_BOUNDS_MS, LAG_BOUNDS_MS, DailyRollup, HourlyRollup

COUNTS = ("passed", "failed", "errors", "maintenance", "duration_sum_ms", "duration_max_ms")
DURATION_COLUMNS = tuple(f"duration_le_{b}ms" for b in DURATION_BOUNDS_MS)
LAG_COLUMNS = tuple(f"lag_le_{b}ms" for b in LAG_BOUNDS_MS)
HISTOGRAMS = (*DURATION_COLUMNS, "lag_count", "lag_sum_ms", *LAG_COLUMNS)
# a bucket already written is merged with new samples: counts and sums add up, maxima compare
_MERGE: dict[str, Merge] = {**dict.fromkeys(COUNTS, "add"), "duration_max_ms": "max"}
_MERGE_WITH_HISTOGRAMS: dict[str, Merge] = {**_MERGE, **dict.fromkeys(HISTOGRAMS, "add")}


@dataclass(frozen=True)
class Sample:
    """The part of a verification that rollups count."""

    rule_id: int
    started_at: datetime
    status: str
    duration_ms: float
    in_maintenance: bool = False  # counted apart: never in a rate
    lag_ms: float | None = None  # started_at - scheduled_for; None for a manual run


def hour_of(moment: datetime) -> datetime:
    """Start of the UTC hour holding ``moment``."""
    return moment.replace(minute=0, second=0, microsecond=0)


def day_of(moment: datetime) -> datetime:
    """Start of the UTC day holding ``moment``."""
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def add_samples(session: Session, samples: Iterable[Sample]) -> None:
    """Add samples to both rollup tables, one upsert per (rule, bucket)."""
    samples = list(samples)
    for model, bucket_of, histograms in (
        (HourlyRollup, hour_of, False),
        (DailyRollup, day_of, True),
    ):
        rows = _aggregate(samples, bucket_of, histograms)
        if rows:
            merge = _MERGE_WITH_HISTOGRAMS if histograms else _MERGE
            table: Table = model.__table__  # type: ignore[assignment]
            upsert(session, table, rows, ("rule_id", "bucket"), merge)


def _aggregate(samples: list[Sample], bucket_of: Any, histograms: bool) -> list[dict[str, Any]]:
    columns = COUNTS + HISTOGRAMS if histograms else COUNTS
    acc: dict[tuple[int, datetime], dict[str, Any]] = {}
    for s in samples:
        key = (s.rule_id, bucket_of(s.started_at))
        row = acc.get(key)
        if row is None:
            row = acc[key] = dict.fromkeys(columns, 0)
        counter = {"pass": "passed", "fail": "failed"}.get(s.status, "errors")
        row["maintenance" if s.in_maintenance else counter] += 1
        row["duration_sum_ms"] += s.duration_ms
        row["duration_max_ms"] = max(row["duration_max_ms"], s.duration_ms)
        if histograms:
            _count_in_histograms(row, s)
    # sorted keys keep lock order stable across concurrent writers (no deadlocks)
    return [{"rule_id": r, "bucket": b, **v} for (r, b), v in sorted(acc.items())]


def _count_in_histograms(row: dict[str, Any], s: Sample) -> None:
    """Cumulative buckets: a sample counts in every bucket whose bound it does not exceed."""
    for name in DURATION_COLUMNS[bisect_left(DURATION_BOUNDS_MS, s.duration_ms) :]:
        row[name] += 1
    if s.lag_ms is not None:
        row["lag_count"] += 1
        row["lag_sum_ms"] += s.lag_ms
        for name in LAG_COLUMNS[bisect_left(LAG_BOUNDS_MS, s.lag_ms) :]:
            row[name] += 1
