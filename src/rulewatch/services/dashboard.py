"""What the pages show beside a rule: rates per window, an hourly sparkline, its history.

Every function takes the rule ids of one page and reads only their rows, so a page of 50
rules costs the same at 10,000 rules as at 100.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from rulewatch.domain.history import HistoryPoint
from rulewatch.domain.stability import (
    DAY,
    HOUR,
    Counts,
    RuleStability,
    as_utc,
    floor_day,
    floor_hour,
    parse_window,
    plan_buckets,
    stability_rate,
)
from rulewatch.models import DailyRollup, HourlyRollup, Verification
from rulewatch.services.stability import rule_stabilities

DASHBOARD_WINDOWS = ("24h", "7d", "30d")
# Up to 6 hours a chart draws every verification; up to 30 days an hour per point (720).
RAW_HISTORY_UP_TO = timedelta(hours=6)
MAX_RAW_POINTS = 2000  # a chart is 800 units wide: more points would only cost time
HOURLY_HISTORY_UP_TO = timedelta(days=30)


def rates_by_window(
    session: Session,
    rule_ids: Collection[int],
    now: datetime,
    windows: Sequence[str] = DASHBOARD_WINDOWS,
) -> dict[int, dict[str, RuleStability]]:
    """Each rule's stability per window, as stability_report computes it; one statement a window.

    Ids of rules that do not exist are left out of the answer.
    """
    rates: dict[int, dict[str, RuleStability]] = {}
    if not rule_ids:
        return rates
    for window in windows:
        plan = plan_buckets(parse_window(window), now)
        for item in rule_stabilities(session, plan, rule_ids=rule_ids):
            rates.setdefault(item.rule_id, {})[window] = item
    return rates


def sparklines(
    session: Session, rule_ids: Collection[int], now: datetime, hours: int = 24
) -> dict[int, list[float | None]]:
    """Pass rate per hour, oldest first, ``hours`` of them up to the current hour.

    An hour is None when nothing in it counts towards a rate: no runs, or only runs in
    maintenance or ending in errors (the same arithmetic as the stability rates).
    """
    if hours < 1:
        raise ValueError(f"a sparkline needs at least 1 hour, got {hours}")
    end = floor_hour(as_utc(now, "now")) + HOUR
    start = end - hours * HOUR
    lines: dict[int, list[float | None]] = {rid: [None] * hours for rid in rule_ids}
    if not lines:
        return lines
    rows = session.execute(
        select(HourlyRollup.rule_id, HourlyRollup.bucket, HourlyRollup.passed, HourlyRollup.failed)
        .where(HourlyRollup.rule_id.in_(sorted(lines)))
        .where(HourlyRollup.bucket >= start, HourlyRollup.bucket < end)
    )
    for rule_id, bucket, passed, failed in rows:
        lines[rule_id][(bucket - start) // HOUR] = stability_rate(Counts(passed, failed))
    return lines


def history(session: Session, rule_id: int, window: str, now: datetime) -> list[HistoryPoint]:
    """A rule's response times and outcomes over ``window``, oldest first, for its chart.

    Every verification up to 6h, hourly rollups up to 30d, daily rollups beyond.
    """
    span = parse_window(window)
    now = as_utc(now, "now")
    start = now - span
    if span <= RAW_HISTORY_UP_TO:
        return _verifications(session, rule_id, start, now)
    if span <= HOURLY_HISTORY_UP_TO:
        return _buckets(session, HourlyRollup, rule_id, floor_hour(start), floor_hour(now) + HOUR)
    return _buckets(session, DailyRollup, rule_id, floor_day(start), floor_day(now) + DAY)


def recent_verifications(session: Session, rule_id: int, limit: int) -> list[Verification]:
    """A rule's newest ``limit`` verifications, newest first."""
    return list(
        session.scalars(
            select(Verification)
            .where(Verification.rule_id == rule_id)
            .order_by(Verification.started_at.desc())
            .limit(limit)
        )
    )


def _verifications(
    session: Session, rule_id: int, start: datetime, end: datetime
) -> list[HistoryPoint]:
    """One point per run in [start, end] (the newest MAX_RAW_POINTS); a run in maintenance
    counts as maintenance only."""
    v = Verification
    rows = session.execute(
        select(v.started_at, v.duration_ms, v.status, v.in_maintenance)
        .where(v.rule_id == rule_id, v.started_at >= start, v.started_at <= end)
        .order_by(v.started_at.desc(), v.id.desc())
        .limit(MAX_RAW_POINTS)
    ).all()
    return [_run_point(at, duration, status, maint) for at, duration, status, maint in rows[::-1]]


def _run_point(at: datetime, duration: float, status: str, in_maintenance: bool) -> HistoryPoint:
    """A run as rollups count it: maintenance apart, anything but pass or fail an error."""
    if in_maintenance:
        return HistoryPoint(at, duration, 0, 0, 0, maintenance=1)
    passed, failed = int(status == "pass"), int(status == "fail")
    return HistoryPoint(at, duration, passed, failed, errors=1 - passed - failed)


def _buckets(
    session: Session,
    model: type[HourlyRollup] | type[DailyRollup],
    rule_id: int,
    start: datetime,
    end: datetime,
) -> list[HistoryPoint]:
    """One point per rollup bucket starting in [start, end), at the bucket's start."""
    columns = (model.passed, model.failed, model.errors, model.maintenance)
    rows = session.execute(
        select(model.bucket, *columns, model.duration_sum_ms)
        .where(model.rule_id == rule_id, model.bucket >= start, model.bucket < end)
        .order_by(model.bucket)
    )
    points = []
    for bucket, passed, failed, errors, maintenance, duration_sum in rows:
        runs = passed + failed + errors + maintenance  # duration_sum_ms covers every run
        mean = duration_sum / runs if runs else None
        points.append(HistoryPoint(bucket, mean, passed, failed, errors, maintenance))
    return points
