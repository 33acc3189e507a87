"""Stability rates over a window, read from rollups so the cost does not grow with history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from rulewatch.domain.stability import (
    Counts,
    RuleStability,
    StabilitySummary,
    parse_window,
    plan_buckets,
    rule_stability,
    summarize,
)
from rulewatch.models import DailyRollup, HourlyRollup, Rule, RuleTag


@dataclass(frozen=True)
class StabilityReport:
    """Per-rule and overall stability over one window."""

    window: str
    start: datetime
    end: datetime
    tag: str | None
    rules: list[RuleStability]
    overall: StabilitySummary


def stability_report(
    session: Session, window: str, now: datetime, tag: str | None = None
) -> StabilityReport:
    """Compute stability for every rule (optionally with ``tag``) over ``window``."""
    span = parse_window(window)
    plan = plan_buckets(span, now)
    counts = _sum(session, HourlyRollup, plan.hourly, tag)
    for rule_id, c in _sum(session, DailyRollup, plan.daily, tag).items():
        counts[rule_id] = counts.get(rule_id, Counts()) + c
    query = select(Rule.id, Rule.name, Rule.stability_target).order_by(Rule.name)
    if tag:
        query = query.where(Rule.id.in_(select(RuleTag.rule_id).where(RuleTag.tag == tag)))
    rules = [
        rule_stability(rid, name, counts.get(rid, Counts()), target)
        for rid, name, target in session.execute(query)
    ]
    start = _window_start(plan.hourly, plan.daily, now - span)
    return StabilityReport(window, start, now, tag, rules, summarize(rules))


def _sum(
    session: Session,
    model: type[HourlyRollup] | type[DailyRollup],
    ranges: list[tuple[datetime, datetime]],
    tag: str | None,
) -> dict[int, Counts]:
    if not ranges:
        return {}
    query = (
        select(
            model.rule_id, func.sum(model.passed), func.sum(model.failed), func.sum(model.errors)
        )
        .where(or_(*(and_(model.bucket >= a, model.bucket < b) for a, b in ranges)))
        .group_by(model.rule_id)
    )
    if tag:
        query = query.where(model.rule_id.in_(select(RuleTag.rule_id).where(RuleTag.tag == tag)))
    return {
        rid: Counts(int(p or 0), int(f or 0), int(e or 0))
        for rid, p, f, e in session.execute(query)
    }


def _window_start(
    hourly: list[tuple[datetime, datetime]],
    daily: list[tuple[datetime, datetime]],
    fallback: datetime,
) -> datetime:
    starts = [a for a, _ in hourly] + [a for a, _ in daily]
    return min(starts) if starts else fallback


def report_to_dict(report: StabilityReport) -> dict[str, Any]:
    """The API form of a stability report."""
    return {
        "window": report.window,
        "start": report.start.isoformat(),
        "end": report.end.isoformat(),
        "tag": report.tag,
        "overall": {
            **_counts(report.overall.counts),
            "rate": report.overall.rate,
            "rules": report.overall.rules_total,
            "rules_with_data": report.overall.rules_with_data,
            "rules_meeting_target": report.overall.rules_meeting_target,
        },
        "rules": [
            {
                "rule_id": r.rule_id,
                "name": r.name,
                **_counts(r.counts),
                "rate": r.rate,
                "target": r.target,
                "meets_target": r.meets_target,
                "error_budget_left": r.error_budget_left,
            }
            for r in report.rules
        ],
    }


def _counts(c: Counts) -> dict[str, int]:
    return {"pass": c.passed, "fail": c.failed, "error": c.errors}
