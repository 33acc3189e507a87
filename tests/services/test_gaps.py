"""Monitor gaps against real databases: a run the monitor could not start on time records the
time the rule went unverified, in the same transaction as the verification; the gap adds no
sample to the rule's rate and no alert, is shown in the report, and goes with its rule."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from rulewatch.config import Settings
from rulewatch.db import transaction
from rulewatch.models import MonitorGap, Notification, Rule, Verification, utcnow
from rulewatch.probes import ProbeContext
from rulewatch.services.gaps import gap_totals, unmonitored_s
from rulewatch.services.retention import prune_history
from rulewatch.services.rules import create_rule
from rulewatch.services.scheduling import claim_due_rules
from rulewatch.services.stability import report_to_dict, stability_report
from rulewatch.services.verification import Alerting, Job, verify_jobs
from tests.targets import Target, http_rule

CTX = ProbeContext(datasources={})
POLICY = {"emails": ["ops@example.com"], "failure_threshold": 1, "success_threshold": 1}


def _rule_due(factory: sessionmaker[Session], url: str, late_s: float, interval_s: int) -> int:
    """A rule every ``interval_s`` whose due time passed ``late_s`` seconds ago, unverified."""
    with transaction(factory) as session:
        rule = create_rule(session, http_rule(url, interval_s=interval_s, alert=POLICY), utcnow())
        session.execute(update(Rule).values(next_due_at=utcnow() - timedelta(seconds=late_s)))
        return rule.id


def _run_due(factory: sessionmaker[Session], settings: Settings | None = None) -> list[Job]:
    """What a tick and a worker do: claim the due runs, verify them, record them."""
    with transaction(factory) as session:
        claims = claim_due_rules(session, utcnow(), limit=10, ttl_s=300)
    jobs = [Job(c.rule_id, c.verification_id, c.due) for c in claims]
    alerting = Alerting(settings.alerts, "http://x") if settings else None
    verify_jobs(factory, jobs, CTX, alerting)
    return jobs


def _gaps(factory: sessionmaker[Session]) -> list[MonitorGap]:
    with factory() as session:
        return list(session.scalars(select(MonitorGap)))


def test_a_run_a_minute_late_records_the_minute_as_a_gap_and_no_failure(
    factory: sessionmaker[Session], settings: Settings
) -> None:
    with Target() as target:
        rule_id = _rule_due(factory, target.url, late_s=60, interval_s=5)
        [job] = _run_due(factory, settings)
    [gap] = _gaps(factory)
    with factory() as session:
        run = session.get(Verification, job.verification_id)
        rule = session.get(Rule, rule_id)
        notifications = session.scalar(select(func.count()).select_from(Notification))
        report = stability_report(session, "24h", utcnow())
    assert run is not None and rule is not None and job.due is not None
    assert (gap.rule_id, gap.started_at, gap.ended_at) == (rule_id, job.due, run.started_at)
    assert 59 < gap.seconds < 75 and "could not run" in gap.reason
    assert rule.next_due_at > utcnow()  # the missed due times are skipped, not replayed
    assert notifications == 0  # nothing about the rule is alerted
    [rate] = report_to_dict(report)["rules"]
    assert (rate["pass"], rate["fail"], rate["error"], rate["rate"]) == (1, 0, 0, 1.0)
    assert rate["unmonitored_s"] == pytest.approx(gap.seconds, abs=0.01)


def test_a_run_on_time_or_a_few_seconds_late_records_no_gap(
    factory: sessionmaker[Session],
) -> None:
    with Target() as target:
        _rule_due(factory, target.url, late_s=3, interval_s=5)
        _rule_due_named(factory, target.url, "hourly", late_s=30, interval_s=3600)
        assert len(_run_due(factory)) == 2
    assert _gaps(factory) == []  # the hourly rule skipped no due time, within timeout + 30 s


def _rule_due_named(
    factory: sessionmaker[Session], url: str, name: str, late_s: float, interval_s: int
) -> None:
    with transaction(factory) as session:
        rule = create_rule(session, http_rule(url, name=name, interval_s=interval_s), utcnow())
        due = utcnow() - timedelta(seconds=late_s)
        session.execute(update(Rule).where(Rule.id == rule.id).values(next_due_at=due))


def test_the_report_counts_only_the_part_of_a_gap_inside_its_window(
    factory: sessionmaker[Session],
) -> None:
    with Target() as target:
        rule_id = _rule_due(factory, target.url, late_s=7200, interval_s=60)
        _run_due(factory)
    now = utcnow()
    with factory() as session:
        inside = unmonitored_s(session, [rule_id], now - timedelta(hours=1), now)
        assert gap_totals(session)[0] == 1
    assert inside[rule_id] == pytest.approx(3600, abs=5)


def test_gaps_go_with_their_rule_and_with_retention(
    factory: sessionmaker[Session], settings: Settings
) -> None:
    with Target() as target:
        first = _rule_due(factory, target.url, late_s=60, interval_s=5)
        _run_due(factory)
        _rule_due_named(factory, target.url, "other", late_s=60, interval_s=5)
        _run_due(factory)
    assert len(_gaps(factory)) == 2
    with transaction(factory) as session:
        session.execute(delete(Rule).where(Rule.id == first))
    [left] = _gaps(factory)
    assert left.rule_id != first
    later = utcnow() + timedelta(days=settings.daily_retention_days, minutes=1)
    assert prune_history(factory, replace(settings), later)["gaps"] == 1
    assert _gaps(factory) == []
