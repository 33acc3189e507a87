"""The pages' data: rates per window, hourly sparklines and a rule's history, on real databases."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from rulewatch.db import transaction
from rulewatch.domain.history import HistoryPoint
from rulewatch.models import Verification
from rulewatch.services.dashboard import history, rates_by_window, sparklines
from rulewatch.services.rollups import Sample, add_samples
from rulewatch.services.rules import create_rule
from rulewatch.services.stability import stability_report
from tests.targets import http_rule

NOW = datetime(2024, 5, 15, 12, 30, tzinfo=UTC)
HOUR = timedelta(hours=1)


def _rules(factory: sessionmaker[Session], *names: str) -> list[int]:
    with transaction(factory) as session:
        url = "http://127.0.0.1:9/"
        return [create_rule(session, http_rule(url, name=n), NOW).id for n in names]


def _samples(factory: sessionmaker[Session], samples: list[Sample]) -> None:
    with transaction(factory) as session:
        add_samples(session, samples)


def _runs(
    factory: sessionmaker[Session], rule_id: int, *runs: tuple[timedelta, str, float, bool]
) -> None:
    """Verifications ``ago`` before NOW, with their rollups, as recording them writes both."""
    rows = [
        Verification(id=str(uuid.uuid4()), rule_id=rule_id, started_at=NOW - ago, duration_ms=ms,
                     status=status, conditions=[], measured={}, in_maintenance=maint)
        for ago, status, ms, maint in runs
    ]  # fmt: skip
    with transaction(factory) as session:
        session.add_all(rows)
        add_samples(session, [Sample(rule_id, v.started_at, v.status, v.duration_ms,
                                     v.in_maintenance) for v in rows])  # fmt: skip


def test_it_gives_each_rule_of_the_page_the_rates_the_stability_report_gives(
    factory: sessionmaker[Session],
) -> None:
    ids = _rules(factory, "alpha", "beta", "gamma", "quiet")
    statuses = ("pass", "pass", "fail", "pass", "error", "pass", "pass")
    _samples(factory, [
        Sample(rule_id, NOW - step * timedelta(hours=5, minutes=13), statuses[(step + k) % 7],
               12.0, in_maintenance=step % 11 == 0)
        for k, rule_id in enumerate(ids[:3]) for step in range(40 * 24 // 5)
    ])  # fmt: skip
    page = [ids[0], ids[2], ids[3]]
    with factory() as session:
        rates = rates_by_window(session, page, NOW)
        reports = {w: stability_report(session, w, NOW) for w in ("24h", "7d", "30d")}
    assert sorted(rates) == sorted(page), "only the page's rules"
    for window, report in reports.items():
        by_id = {r.rule_id: r for r in report.rules}
        for rule_id in page:
            assert rates[rule_id][window] == by_id[rule_id], (rule_id, window)
    assert rates[ids[0]]["30d"].rate is not None and rates[ids[3]]["30d"].rate is None


def test_it_answers_no_rates_for_an_empty_page(factory: sessionmaker[Session]) -> None:
    with factory() as session:
        assert rates_by_window(session, [], NOW) == {}
        assert sparklines(session, [], NOW) == {}


def test_it_leaves_sparkline_gaps_for_hours_without_data_or_only_in_maintenance(
    factory: sessionmaker[Session],
) -> None:
    rule_id, quiet = _rules(factory, "alpha", "quiet")
    this_hour = NOW.replace(minute=5)
    _samples(factory, [
        Sample(rule_id, this_hour, "pass", 5.0),
        *(Sample(rule_id, this_hour - HOUR, s, 5.0) for s in ("pass", "pass", "pass", "fail")),
        Sample(rule_id, this_hour - HOUR, "pass", 5.0, in_maintenance=True),
        Sample(rule_id, this_hour - 3 * HOUR, "fail", 5.0, in_maintenance=True),
        Sample(rule_id, this_hour - 23 * HOUR, "fail", 5.0),
        Sample(rule_id, this_hour - 24 * HOUR, "pass", 5.0),  # before the first hour
    ])  # fmt: skip
    with factory() as session:
        lines = sparklines(session, [rule_id, quiet], NOW)
    line = lines[rule_id]
    assert len(line) == 24
    assert line[-1] == 1.0 and line[-2] == 0.75, "maintenance runs are not in the rate"
    assert line[-4] is None, "an hour with only maintenance runs is a gap"
    assert line[0] == 0.0
    assert sum(rate is not None for rate in line) == 3
    assert lines[quiet] == [None] * 24


def test_it_draws_every_verification_for_a_one_hour_history(
    factory: sessionmaker[Session],
) -> None:
    [rule_id] = _rules(factory, "alpha")
    _runs(factory, rule_id,
          (timedelta(minutes=50), "pass", 120.0, False),
          (timedelta(minutes=30), "fail", 300.0, False),
          (timedelta(minutes=20), "error", 5000.0, False),
          (timedelta(minutes=10), "fail", 80.0, True),
          (timedelta(minutes=70), "pass", 999.0, False))  # fmt: skip
    with factory() as session:
        points = history(session, rule_id, "1h", NOW)
    assert points == [
        HistoryPoint(NOW - timedelta(minutes=50), 120.0, 1, 0, 0),
        HistoryPoint(NOW - timedelta(minutes=30), 300.0, 0, 1, 0),
        HistoryPoint(NOW - timedelta(minutes=20), 5000.0, 0, 0, 1),
        HistoryPoint(NOW - timedelta(minutes=10), 80.0, 0, 0, 0, maintenance=1),
    ]


def test_it_draws_hourly_buckets_for_a_seven_day_history(
    factory: sessionmaker[Session],
) -> None:
    [rule_id] = _rules(factory, "alpha")
    _runs(factory, rule_id,
          (timedelta(minutes=10), "pass", 100.0, False),
          (timedelta(minutes=20), "fail", 200.0, False),
          (timedelta(minutes=25), "pass", 600.0, True),
          (timedelta(days=3), "error", 50.0, False),
          (timedelta(days=8), "pass", 10.0, False))  # fmt: skip
    with factory() as session:
        points = history(session, rule_id, "7d", NOW)
    assert points == [
        HistoryPoint(datetime(2024, 5, 12, 12, tzinfo=UTC), 50.0, 0, 0, 1),
        HistoryPoint(datetime(2024, 5, 15, 12, tzinfo=UTC), 300.0, 1, 1, 0, maintenance=1),
    ], "a bucket's duration is the mean over all its runs, maintenance included"


def test_it_draws_daily_buckets_beyond_thirty_days(factory: sessionmaker[Session]) -> None:
    [rule_id] = _rules(factory, "alpha")
    _runs(factory, rule_id,
          (timedelta(minutes=10), "pass", 100.0, False),
          (timedelta(hours=2), "pass", 300.0, False),
          (timedelta(days=60), "fail", 40.0, False))  # fmt: skip
    with factory() as session:
        points = history(session, rule_id, "90d", NOW)
    assert points == [
        HistoryPoint(datetime(2024, 3, 16, tzinfo=UTC), 40.0, 0, 1, 0),
        HistoryPoint(datetime(2024, 5, 15, tzinfo=UTC), 200.0, 2, 0, 0),
    ]
