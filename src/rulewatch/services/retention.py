"""Retention: bounded storage whatever the run time, deleted in small steps without long locks.

- Raw verifications older than the retention period go.
- Within it, each rule keeps its newest ``keep_per_rule`` verifications plus every
  non-passing one (they explain incidents); older passing ones go.
- Hourly and daily rollups, which carry the stability windows, are kept much longer; so
  are monitor gaps, which the report shows beside them (as long as daily rollups).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from rulewatch.config import Settings
from rulewatch.db import transaction
from rulewatch.models import DailyRollup, HourlyRollup, MonitorGap, Rule, Verification

STEP = 2000
RULES_PER_STEP = 200


def prune_history(
    factory: sessionmaker[Session], settings: Settings, now: datetime
) -> dict[str, int]:
    """Apply every retention rule; returns how many rows each removed."""
    old = now - timedelta(days=settings.retention_days)
    return {
        "verifications": _delete_old(factory, Verification, Verification.started_at, old),
        "over_cap": _delete_over_cap(factory, settings.keep_per_rule),
        "hourly": _delete_old(
            factory, HourlyRollup, HourlyRollup.bucket,
            now - timedelta(days=settings.hourly_retention_days),
        ),
        "daily": _delete_old(
            factory, DailyRollup, DailyRollup.bucket,
            now - timedelta(days=settings.daily_retention_days),
        ),
        "gaps": _delete_old(
            factory, MonitorGap, MonitorGap.ended_at,
            now - timedelta(days=settings.daily_retention_days),
        ),
    }  # fmt: skip


def _delete_old(factory: sessionmaker[Session], model: Any, column: Any, cutoff: datetime) -> int:
    """Delete rows older than ``cutoff``, STEP rows per transaction."""
    key = model.__table__.primary_key.columns.values()
    total = 0
    while True:
        with transaction(factory) as session:
            rows = session.execute(select(*key).where(column < cutoff).limit(STEP)).all()
            _delete_rows(session, model, key, rows)
        total += len(rows)
        if len(rows) < STEP:
            return total


def _delete_over_cap(factory: sessionmaker[Session], keep: int) -> int:
    """Delete passing verifications beyond each rule's newest ``keep``, a page of rules a step."""
    total, after = 0, 0
    while True:
        with factory() as session:
            page = list(
                session.scalars(
                    select(Rule.id).where(Rule.id > after).order_by(Rule.id).limit(RULES_PER_STEP)
                )
            )
        if not page:
            return total
        with transaction(factory) as session:
            total += _delete_over_cap_for(session, page, keep)
        after = page[-1]


def _delete_over_cap_for(session: Session, rule_ids: Sequence[int], keep: int) -> int:
    ranked = (
        select(
            Verification.id,
            Verification.status,
            func.row_number()
            .over(partition_by=Verification.rule_id, order_by=Verification.started_at.desc())
            .label("rank"),
        )
        .where(Verification.rule_id.in_(rule_ids))
        .subquery()
    )
    ids = list(
        session.scalars(select(ranked.c.id).where(ranked.c.rank > keep, ranked.c.status == "pass"))
    )
    for i in range(0, len(ids), STEP):
        session.execute(delete(Verification).where(Verification.id.in_(ids[i : i + STEP])))
    return len(ids)


def _delete_rows(session: Session, model: Any, key: Sequence[Any], rows: Sequence[Any]) -> None:
    if not rows:
        return
    if len(key) == 1:
        session.execute(delete(model).where(key[0].in_([r[0] for r in rows])))
        return
    from sqlalchemy import tuple_

    session.execute(delete(model).where(tuple_(*key).in_([tuple(r) for r in rows])))
