"""Deployment-wide figures for /metrics, read from the database at scrape time.

Workers run on many machines and the web on others, so no process holds the whole picture;
the database sees every verification. A few grouped statements answer a scrape whatever the
number of rules: rollup sums per rule kind (see RollupSums), then rule, incident and
notification counts.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import Session

from rulewatch.models import (
    DURATION_BOUNDS_MS,
    LAG_BOUNDS_MS,
    DailyRollup,
    Incident,
    Notification,
    Rule,
)
from rulewatch.probes import KINDS
from rulewatch.services.gaps import gap_totals
from rulewatch.services.rollups import DURATION_COLUMNS, LAG_COLUMNS, day_of

STATUSES = {"pass": "passed", "fail": "failed", "error": "errors", "maintenance": "maintenance"}
NOTIFICATION_STATUSES = ("pending", "sending", "sent", "failed", "unsent")


@dataclass(frozen=True)
class Histogram:
    """Cumulative counts at each bound (seconds), the count of all samples and their sum."""

    bounds_s: tuple[float, ...]
    cumulative: tuple[int, ...]
    count: int
    sum_s: float


@dataclass(frozen=True)
class KindFigures:
    """What the daily rollups of one rule kind add up to."""

    kind: str
    verifications: dict[str, int]  # pass, fail, error, maintenance
    duration: Histogram  # every verification
    lag: Histogram  # scheduled verifications: started_at - scheduled_for


@dataclass(frozen=True)
class DeploymentFigures:
    """Everything /metrics reports."""

    kinds: list[KindFigures]
    rules: dict[str, int]  # enabled, disabled
    incidents_open: int
    notifications: dict[str, int]  # outbox rows by status
    redispatched: int  # due runs dispatched again after their claim expired or was given back
    gaps: tuple[int, float] = (0, 0.0)  # monitor gaps stored, and their seconds


def deployment_figures(session: Session, now: datetime, sums: RollupSums) -> DeploymentFigures:
    """Read every /metrics figure from the database (one grouped statement per figure)."""
    return DeploymentFigures(
        kinds=_kind_figures(sums.read(session, now)),
        rules=_rules(session),
        incidents_open=session.scalar(
            select(func.count()).select_from(Incident).where(Incident.resolved_at.is_(None))
        )
        or 0,
        notifications=_notifications(session),
        redispatched=int(session.scalar(select(func.sum(Rule.redispatches))) or 0),
        gaps=gap_totals(session),
    )


_SUMMED = (
    *STATUSES.values(), "duration_sum_ms", *DURATION_COLUMNS, "lag_count", "lag_sum_ms",
    *LAG_COLUMNS,
)  # fmt: skip
Sums = dict[str, dict[str, Any]]  # rule kind -> summed column -> value


def kind_sums_query(*where: ColumnElement[bool]) -> Select[*tuple[Any, ...]]:
    """Sums of every daily rollup column /metrics reads, one row per rule kind."""
    sums = [func.sum(getattr(DailyRollup, c)) for c in _SUMMED]  # never NULL: a group has rows
    return (
        select(Rule.kind, *sums)
        .select_from(DailyRollup)
        .join(Rule, Rule.id == DailyRollup.rule_id)
        .where(*where)
        .group_by(Rule.kind)
    )


@dataclass(frozen=True)
class _Closed:
    before: datetime  # the days summed are those before this one
    sums: Sums
    read_at: datetime


class RollupSums:
    """Per-kind sums of every daily rollup, without reading two years of rows at each scrape.

    A day's row stops changing minutes after midnight (a verification is recorded soon after
    it starts), so the days before yesterday are summed once and kept; only yesterday's and
    today's rows, found through the bucket index, are read on each call. The kept sums are
    read again every ``refresh_s``, which is how long a deleted rule or a pruned day goes on
    being counted here.
    """

    def __init__(self, refresh_s: float = 600.0) -> None:
        self.refresh_s = refresh_s
        self._closed: _Closed | None = None
        self._lock = threading.Lock()

    def read(self, session: Session, now: datetime) -> Sums:
        """Sums of all daily rollups as of ``now``."""
        before = day_of(now) - timedelta(days=1)
        with self._lock:
            closed = self._closed
            if (
                closed is None
                or closed.before != before
                or (now - closed.read_at).total_seconds() >= self.refresh_s
            ):
                closed = _Closed(before, _sums(session, DailyRollup.bucket < before), now)
                self._closed = closed
        recent = _sums(session, DailyRollup.bucket >= closed.before)
        kinds = set(closed.sums) | set(recent)
        empty = dict.fromkeys(_SUMMED, 0)
        return {
            k: {c: closed.sums.get(k, empty)[c] + recent.get(k, empty)[c] for c in _SUMMED}
            for k in kinds
        }


def _sums(session: Session, where: ColumnElement[bool]) -> Sums:
    rows = session.execute(kind_sums_query(where))
    return {kind: dict(zip(_SUMMED, values, strict=True)) for kind, *values in rows}


def _kind_figures(sums: Sums) -> list[KindFigures]:
    """Figures per rule kind; every known kind appears, with zeros when it has no rollups."""
    empty = dict.fromkeys(_SUMMED, 0)
    return [_kind(kind, sums.get(kind, empty)) for kind in sorted(set(KINDS) | set(sums))]


def _kind(kind: str, row: dict[str, Any]) -> KindFigures:
    total = sum(int(row[c]) for c in STATUSES.values())
    return KindFigures(
        kind=kind,
        verifications={status: int(row[column]) for status, column in STATUSES.items()},
        duration=_histogram(DURATION_BOUNDS_MS, DURATION_COLUMNS, row, total, "duration_sum_ms"),
        lag=_histogram(LAG_BOUNDS_MS, LAG_COLUMNS, row, int(row["lag_count"]), "lag_sum_ms"),
    )


def _histogram(
    bounds_ms: tuple[int, ...],
    columns: tuple[str, ...],
    row: dict[str, Any],
    count: int,
    sum_column: str,
) -> Histogram:
    return Histogram(
        bounds_s=tuple(b / 1000 for b in bounds_ms),
        cumulative=tuple(int(row[c]) for c in columns),
        count=count,
        sum_s=float(row[sum_column]) / 1000,
    )


def _rules(session: Session) -> dict[str, int]:
    query = select(Rule.enabled, func.count()).group_by(Rule.enabled)
    counts = {bool(enabled): n for enabled, n in session.execute(query)}
    return {"enabled": counts.get(True, 0), "disabled": counts.get(False, 0)}


def _notifications(session: Session) -> dict[str, int]:
    query = select(Notification.status, func.count()).group_by(Notification.status)
    counts = {status: n for status, n in session.execute(query)}
    return {status: counts.get(status, 0) for status in sorted({*NOTIFICATION_STATUSES, *counts})}
