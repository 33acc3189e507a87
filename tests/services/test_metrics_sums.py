"""Rollup sums for /metrics: the days before yesterday are kept, recent days read every time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from rulewatch.db import transaction
from rulewatch.models import utcnow
from rulewatch.services.metrics import RollupSums
from rulewatch.services.rollups import Sample, add_samples
from rulewatch.services.rules import create_rule
from tests.targets import http_rule

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _rule(factory: sessionmaker[Session]) -> int:
    with transaction(factory) as session:
        return create_rule(session, http_rule("http://127.0.0.1:9/"), utcnow()).id


def _record(factory: sessionmaker[Session], rule_id: int, *moments: datetime) -> None:
    with transaction(factory) as session:
        add_samples(session, [Sample(rule_id, at, "pass", 10.0) for at in moments])


def _passed(factory: sessionmaker[Session], sums: RollupSums, now: datetime) -> int:
    with factory() as session:
        return int(sums.read(session, now)["http"]["passed"])


def test_it_reads_recent_days_every_time_and_older_ones_once_a_refresh(
    factory: sessionmaker[Session],
) -> None:
    rule_id, sums = _rule(factory), RollupSums(refresh_s=600)
    _record(factory, rule_id, NOW - timedelta(days=3), NOW - timedelta(days=1), NOW)
    assert _passed(factory, sums, NOW) == 3
    _record(factory, rule_id, NOW - timedelta(days=3), NOW - timedelta(days=1), NOW)
    assert _passed(factory, sums, NOW + timedelta(minutes=1)) == 5, "3 days ago: kept sums"
    assert _passed(factory, sums, NOW + timedelta(minutes=10)) == 6, "read again after 600 s"


def test_it_neither_loses_nor_doubles_yesterday_when_the_day_turns(
    factory: sessionmaker[Session],
) -> None:
    rule_id, sums = _rule(factory), RollupSums(refresh_s=86_400)
    midnight = NOW.replace(hour=0) + timedelta(days=1)
    _record(factory, rule_id, NOW - timedelta(days=1), NOW, midnight - timedelta(seconds=1))
    assert _passed(factory, sums, midnight - timedelta(seconds=1)) == 3
    _record(factory, rule_id, midnight + timedelta(seconds=1))
    assert _passed(factory, sums, midnight + timedelta(seconds=2)) == 4
    assert _passed(factory, sums, midnight + timedelta(days=2)) == 4
