"""Duration and lag histograms in the daily rollups, written by the same upsert as the counts."""

from __future__ import annotations

from typing import Any

from alembic import command
from sqlalchemy import column, create_engine, insert, select, table
from sqlalchemy.orm import Session, sessionmaker

from rulewatch.db import transaction
from rulewatch.migrate import alembic_config, upgrade
from rulewatch.models import DailyRollup, HourlyRollup, UTCDateTime, utcnow
from rulewatch.services.rollups import HISTOGRAMS, Sample, add_samples, day_of
from rulewatch.services.rules import create_rule
from tests.targets import http_rule


def _rule(factory: sessionmaker[Session]) -> int:
    with transaction(factory) as session:
        return create_rule(session, http_rule("http://127.0.0.1:9/"), utcnow()).id


def _daily(factory: sessionmaker[Session], rule_id: int) -> DailyRollup:
    with factory() as session:
        row = session.scalar(select(DailyRollup).where(DailyRollup.rule_id == rule_id))
        assert row is not None
        return row


def test_it_counts_a_duration_in_every_bucket_at_or_above_it(
    factory: sessionmaker[Session],
) -> None:
    rule_id, now = _rule(factory), utcnow()
    durations = [10.0, 50.0, 50.001, 300.0, 20_000.0]
    with transaction(factory) as session:
        add_samples(session, [Sample(rule_id, now, "pass", d) for d in durations])
    row = _daily(factory, rule_id)
    cumulative = [row.duration_le_50ms, row.duration_le_100ms, row.duration_le_250ms,
                  row.duration_le_500ms, row.duration_le_1000ms,
                  row.duration_le_10000ms]  # fmt: skip
    assert cumulative == [2, 3, 3, 4, 4, 4], "50 ms is at most 50 ms; 20 s is over every bound"
    assert row.passed == 5


def test_it_adds_a_later_batch_to_the_days_histogram(factory: sessionmaker[Session]) -> None:
    rule_id, now = _rule(factory), utcnow()
    for duration in (80.0, 700.0):
        with transaction(factory) as session:
            add_samples(session, [Sample(rule_id, now, "fail", duration, lag_ms=1500.0)])
    row = _daily(factory, rule_id)
    assert (row.duration_le_100ms, row.duration_le_1000ms) == (1, 2)
    assert (row.lag_count, row.lag_le_1000ms, row.lag_le_2000ms) == (2, 0, 2)
    assert row.lag_sum_ms == 3000.0


def test_it_counts_the_lag_of_scheduled_runs_only(factory: sessionmaker[Session]) -> None:
    rule_id, now = _rule(factory), utcnow()
    samples = [Sample(rule_id, now, "pass", 5.0, lag_ms=3000.0), Sample(rule_id, now, "pass", 5.0)]
    with transaction(factory) as session:
        add_samples(session, samples)
    row = _daily(factory, rule_id)
    assert (row.lag_count, row.lag_sum_ms) == (1, 3000.0)
    assert (row.lag_le_2000ms, row.lag_le_5000ms, row.lag_le_300000ms) == (0, 1, 1)
    assert row.duration_le_50ms == 2


def test_it_keeps_histograms_out_of_the_hourly_rollups() -> None:
    assert not set(HISTOGRAMS) & set(HourlyRollup.__table__.c.keys())
    assert set(HISTOGRAMS) <= set(DailyRollup.__table__.c.keys())


def test_it_keeps_daily_rollups_written_before_the_histograms(
    database_url: str, factory: sessionmaker[Session]
) -> None:
    rule_id = _rule(factory)  # made at head: the downgrade keeps the row, less later columns
    command.downgrade(alembic_config(database_url), "0007")
    old: dict[str, Any] = {"rule_id": rule_id, "bucket": day_of(utcnow()), "passed": 7,
                           "failed": 1, "errors": 0, "maintenance": 0, "duration_sum_ms": 80.0,
                           "duration_max_ms": 20.0}  # fmt: skip
    typed = {"bucket": UTCDateTime()}  # stored as the application stores it, on every engine
    before = table("rollups_daily", *(column(name, typed.get(name)) for name in old))
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(insert(before).values(old))
    engine.dispose()
    upgrade(database_url)
    row = _daily(factory, rule_id)
    assert (row.passed, row.failed) == (7, 1)
    assert all(getattr(row, c) == 0 for c in HISTOGRAMS), "rows made before have no histograms"
    with transaction(factory) as session:  # and the upsert adds to them from then on
        add_samples(session, [Sample(rule_id, utcnow(), "pass", 30.0, lag_ms=100.0)])
    row = _daily(factory, rule_id)
    assert (row.passed, row.duration_le_50ms, row.lag_le_250ms) == (8, 1, 1)
