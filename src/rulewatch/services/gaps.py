"""Monitor gaps: the times a rule went unverified because the monitor could not run it.

Whatever made the monitor blind (the database down, the broker or every worker gone, a
queue too long), it shows when the rule's late run is recorded: a run due at D that starts
at S, late enough by ``domain.schedule.leaves_gap``, records the gap [D, S] in the same
transaction as the verification. Missed due times are skipped, not replayed, so a gap adds
no sample: stability rates, which count recorded verifications, neither fail nor pass it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, func, select
from sqlalchemy.orm import Session

from rulewatch.db import insert_many
from rulewatch.domain.schedule import Schedule, lateness_s, leaves_gap
from rulewatch.models import MonitorGap
from rulewatch.shapes import GapOut, answer

REASON = "the monitor could not run it (database, broker or workers unavailable, or overloaded)"


@dataclass(frozen=True)
class LateRun:
    """A scheduled run being recorded: when it was due, when it started, how it is judged."""

    rule_id: int
    due: datetime
    started: datetime
    schedule: Schedule
    timeout_s: float


def record_gaps(session: Session, runs: Iterable[LateRun]) -> int:
    """Insert a gap for each run that shows the monitor could not run it; how many."""
    rows = [
        {"rule_id": run.rule_id, "started_at": run.due, "ended_at": run.started,
         "seconds": round(lateness_s(run.due, run.started), 3), "reason": REASON}
        for run in runs
        if leaves_gap(run.schedule, run.due, run.started, run.timeout_s)
    ]  # fmt: skip
    insert_many(session, cast(Table, MonitorGap.__table__), rows)
    return len(rows)


def rule_gaps(session: Session, rule_id: int, since: datetime, limit: int) -> list[MonitorGap]:
    """The rule's gaps that ended after ``since``, newest first."""
    query = (
        select(MonitorGap)
        .where(MonitorGap.rule_id == rule_id, MonitorGap.ended_at > since)
        .order_by(MonitorGap.ended_at.desc())
        .limit(limit)
    )
    return list(session.scalars(query))


def unmonitored_s(
    session: Session, rule_ids: Sequence[int] | None, start: datetime, end: datetime
) -> dict[int, float]:
    """Seconds of ``[start, end]`` each rule (of ``rule_ids``; None: every rule) spent in
    gaps; rules with none are left out."""
    query = select(MonitorGap.rule_id, MonitorGap.started_at, MonitorGap.ended_at).where(
        MonitorGap.ended_at > start, MonitorGap.started_at < end
    )
    if rule_ids is not None:
        query = query.where(MonitorGap.rule_id.in_(rule_ids))
    seconds: dict[int, float] = defaultdict(float)
    for rule_id, began, ended in session.execute(query):
        seconds[rule_id] += (min(ended, end) - max(began, start)).total_seconds()
    return dict(seconds)


def gap_totals(session: Session) -> tuple[int, float]:
    """How many gaps are stored, and their seconds (for /metrics)."""
    count, total = session.execute(
        select(func.count(MonitorGap.id), func.coalesce(func.sum(MonitorGap.seconds), 0.0))
    ).one()
    return int(count), float(total)


def gap_to_dict(gap: MonitorGap) -> dict[str, Any]:
    """The API form of a gap."""
    return answer(GapOut, started_at=gap.started_at, ended_at=gap.ended_at,
                  seconds=gap.seconds, reason=gap.reason)  # fmt: skip
