"""Stability rates over a window, read from rollups so the cost does not grow with history."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection
from concurrent import futures
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Subquery, and_, func, literal, or_, select
from sqlalchemy.orm import Session

from rulewatch.domain.stability import (
    BucketPlan,
    Counts,
    RuleStability,
    StabilitySummary,
    parse_window,
    plan_buckets,
    rule_stability,
    summarize,
)
from rulewatch.models import DailyRollup, HourlyRollup, Rule, RuleTag
from rulewatch.services.gaps import unmonitored_s
from rulewatch.shapes import StabilityOut, answer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StabilityReport:
    """Per-rule and overall stability over one window."""

    window: str
    start: datetime
    end: datetime
    tag: str | None
    rules: list[RuleStability]
    overall: StabilitySummary
    # seconds of the window each rule spent in monitor gaps (rules with none left out)
    unmonitored: dict[int, float] = field(default_factory=dict)


def stability_report(
    session: Session, window: str, now: datetime, tag: str | None = None
) -> StabilityReport:
    """Compute stability for every rule (optionally with ``tag``) over ``window``.

    One statement: the hourly and daily sums are grouped in the database and joined to
    the rules, so a 30-day report at 10,000 rules returns 10,000 rows, not 300,000.
    """
    span = parse_window(window)
    plan = plan_buckets(span, now)
    rules = rule_stabilities(session, plan, tag=tag)
    start = _window_start(plan.hourly, plan.daily, now - span)
    listed = {r.rule_id for r in rules}
    unmonitored = {
        rid: s for rid, s in unmonitored_s(session, None, start, now).items() if rid in listed
    }
    return StabilityReport(window, start, now, tag, rules, summarize(rules), unmonitored)


def rule_stabilities(
    session: Session,
    plan: BucketPlan,
    *,
    tag: str | None = None,
    rule_ids: Collection[int] | None = None,
) -> list[RuleStability]:
    """Each rule's stability over the buckets of ``plan``, by name, in one statement.

    ``tag`` keeps the rules with that tag; ``rule_ids`` keeps those rules, and reads only
    their buckets, so a page of rules costs the same whatever the number of rules.
    """
    ids = None if rule_ids is None else sorted(set(rule_ids))
    hourly = _sums(HourlyRollup, plan.hourly, ids)
    daily = _sums(DailyRollup, plan.daily, ids)
    query = select(Rule.id, Rule.name, Rule.stability_target, *_pooled(hourly, daily))
    for sums in (hourly, daily):
        if sums is not None:
            query = query.outerjoin(sums, sums.c.rule_id == Rule.id)
    if tag:
        query = query.where(Rule.id.in_(select(RuleTag.rule_id).where(RuleTag.tag == tag)))
    if ids is not None:
        query = query.where(Rule.id.in_(ids))
    return [
        rule_stability(rid, name, Counts(int(p), int(f), int(e), int(m)), target)
        for rid, name, target, p, f, e, m in session.execute(query.order_by(Rule.name))
    ]


def _sums(
    model: type[HourlyRollup] | type[DailyRollup],
    ranges: list[tuple[datetime, datetime]],
    rule_ids: list[int] | None = None,
) -> Subquery | None:
    """Per-rule sums of one rollup table over bucket ranges, or None with no ranges."""
    if not ranges:
        return None
    query = select(
        model.rule_id.label("rule_id"),
        func.sum(model.passed).label("passed"),
        func.sum(model.failed).label("failed"),
        func.sum(model.errors).label("errors"),
        func.sum(model.maintenance).label("maintenance"),
    ).where(or_(*(and_(model.bucket >= a, model.bucket < b) for a, b in ranges)))
    if rule_ids is not None:
        query = query.where(model.rule_id.in_(rule_ids))
    return query.group_by(model.rule_id).subquery()


def _pooled(*parts: Subquery | None) -> list[Any]:
    """passed, failed, errors and maintenance summed over the parts that exist (0 where none)."""
    present = [p for p in parts if p is not None]
    return [
        sum((func.coalesce(p.c[name], 0) for p in present), literal(0)).label(name)
        for name in ("passed", "failed", "errors", "maintenance")
    ]


def _window_start(
    hourly: list[tuple[datetime, datetime]],
    daily: list[tuple[datetime, datetime]],
    fallback: datetime,
) -> datetime:
    starts = [a for a, _ in hourly] + [a for a, _ in daily]
    return min(starts) if starts else fallback


def report_to_dict(
    report: StabilityReport, limit: int | None = None, offset: int = 0, worst_first: bool = False
) -> dict[str, Any]:
    """The API form of a stability report; ``limit``/``offset`` page the per-rule rows."""
    rules = sorted(report.rules, key=worst_first_key) if worst_first else report.rules
    page = rules[offset : None if limit is None else offset + limit]
    overall = report.overall
    return answer(
        StabilityOut, window=report.window, start=report.start, end=report.end, tag=report.tag,
        overall=dict(
            **_counts(overall.counts), rate=overall.rate, rules=overall.rules_total,
            rules_with_data=overall.rules_with_data,
            rules_meeting_target=overall.rules_meeting_target,
        ),
        total=len(rules), limit=limit, offset=offset,
        rules=[_rule_rate(r, report.unmonitored.get(r.rule_id, 0.0)) for r in page],
    )  # fmt: skip


def _rule_rate(r: RuleStability, unmonitored: float) -> dict[str, Any]:
    c = r.counts  # written out: a report may hold 10,000 rules
    return {
        "rule_id": r.rule_id, "name": r.name, "pass": c.passed, "fail": c.failed,
        "error": c.errors, "maintenance": c.maintenance, "rate": r.rate, "target": r.target,
        "meets_target": r.meets_target, "error_budget_left": r.error_budget_left,
        "unmonitored_s": round(unmonitored, 3),
    }  # fmt: skip


def worst_first_key(r: RuleStability) -> tuple[bool, float]:
    """Lowest rate first; rules with no data last."""
    return (r.rate is None, r.rate if r.rate is not None else 0.0)


Key = tuple[str, str | None]


class ReportCache:
    """Reports of the last ``ttl_s`` seconds, per (window, tag), shared by a process's threads.

    A 30-day report at 10,000 rules costs a few hundred milliseconds; rates over an hour or
    more barely move in seconds, so readers share one computation. Once a report is older
    than ``ttl_s`` (but younger than ten times that) readers still get it at once while one
    background thread computes its successor: only the very first reader of a key, or one
    after a long quiet spell, waits for a computation. The lock guards the two dicts only
    and is never held while computing, so a cold report stalls none of the other keys'
    readers; the readers of a key being computed wait for that one computation (a future).
    """

    def __init__(self, ttl_s: float, size: int = 64) -> None:
        self.ttl_s, self.size = ttl_s, size
        self.stale_s = ttl_s * 10  # served while refreshed; 0 (no cache) serves nothing stale
        self._entries: dict[Key, StabilityReport] = {}
        self._flights: dict[Key, Future[StabilityReport]] = {}
        self._lock = threading.Lock()

    def get(
        self, key: Key, now: datetime, compute: Callable[[], StabilityReport]
    ) -> StabilityReport:
        """The cached report for ``key``: fresh, or stale while a refresh runs, else computed."""
        with self._lock:
            cached = self._entries.get(key)
            age = (now - cached.end).total_seconds() if cached is not None else None
            if cached is not None and age is not None and age < self.ttl_s:
                return cached
            flight, mine = self._flight(key)
        if cached is not None and age is not None and age < self.stale_s:
            if mine:
                threading.Thread(
                    target=self._refresh, args=(key, flight, compute), daemon=True
                ).start()
            return cached
        if mine:
            self._compute(key, flight, compute)
        return flight.result()

    def settle(self, timeout_s: float | None = None) -> None:
        """Wait for the computations under way, background refreshes included, to end."""
        with self._lock:
            flights = list(self._flights.values())
        futures.wait(flights, timeout_s)

    def _flight(self, key: Key) -> tuple[Future[StabilityReport], bool]:
        """The computation of ``key`` under way, or a new one this caller must run (True)."""
        flight = self._flights.get(key)
        if flight is not None:
            return flight, False
        flight = self._flights[key] = Future()
        return flight, True

    def _compute(
        self, key: Key, flight: Future[StabilityReport], compute: Callable[[], StabilityReport]
    ) -> None:
        """Run ``compute`` outside the lock; store and hand its report to the waiting readers."""
        try:
            report = compute()
        except BaseException as exc:
            with self._lock:
                del self._flights[key]
            flight.set_exception(exc)
            return
        with self._lock:
            self._store(key, report)
            del self._flights[key]
        flight.set_result(report)

    def _refresh(
        self, key: Key, flight: Future[StabilityReport], compute: Callable[[], StabilityReport]
    ) -> None:
        self._compute(key, flight, compute)
        if flight.exception() is not None:  # the stale report stays; the next reader retries
            log.error(
                "refreshing the cached %s stability report failed",
                key[0],
                exc_info=flight.exception(),
            )

    def _store(self, key: Key, report: StabilityReport) -> None:
        if len(self._entries) >= self.size:
            self._entries.clear()
        self._entries[key] = report


def _counts(c: Counts) -> dict[str, int]:
    return {"pass": c.passed, "fail": c.failed, "error": c.errors, "maintenance": c.maintenance}
