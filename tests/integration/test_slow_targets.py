"""Slow targets delay only themselves: a real worker of the default concurrency and beat on
Redis and PostgreSQL, fast rules beside rules whose target never answers."""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from rulewatch.db import transaction
from rulewatch.migrate import upgrade
from rulewatch.models import Verification, utcnow
from rulewatch.services.rules import create_rule
from tests.conftest import REDIS_URL, drop_database, fresh_database, require_service
from tests.integration.processes import spawn, stop, wait_for
from tests.targets import Target, http_rule

REDIS_DB = 13
FAST_RULES = 100
SLOW_RULES = 4
SLOW_TIMEOUT_S = 15
SLOW_RUNS = 2  # the scenario lasts until each slow rule has timed out this many times


@pytest.fixture
def database(pg_server: str) -> Iterator[str]:
    """A fresh migrated PostgreSQL database."""
    url, name = fresh_database(pg_server)
    upgrade(url)
    yield url
    drop_database(pg_server, name)


def _create_rules(factory: sessionmaker[Session], fast_url: str, slow_url: str) -> dict[int, int]:
    """Fast rules every 2-5 s and slow ones that time out; the fast rules' intervals by id."""
    fast = [http_rule(fast_url, name=f"fast {n}", interval_s=2 + n % 4) for n in range(FAST_RULES)]
    slow = [http_rule(slow_url, name=f"slow {n}", interval_s=5) for n in range(SLOW_RULES)]
    for rule in slow:
        rule["target"]["timeout_s"] = SLOW_TIMEOUT_S
    with transaction(factory) as session:
        ids = {create_rule(session, rule, utcnow()).id: rule for rule in fast + slow}
    return {rule_id: rule["interval_s"] for rule_id, rule in ids.items() if rule in fast}


def _slow_runs(factory: sessionmaker[Session], fast: Collection[int]) -> int:
    with factory() as session:
        query = select(func.count()).where(Verification.rule_id.not_in(fast))
        return int(session.scalar(query.select_from(Verification)) or 0)


def _scheduled_runs(
    factory: sessionmaker[Session], fast: Collection[int]
) -> dict[int, list[tuple[float, float]]]:
    """Each fast rule's scheduled runs: (due as epoch seconds, lateness in seconds)."""
    query = select(Verification.rule_id, Verification.scheduled_for, Verification.started_at)
    runs: dict[int, list[tuple[float, float]]] = {rule_id: [] for rule_id in fast}
    with factory() as session:
        for rule_id, due, started in session.execute(query.order_by(Verification.scheduled_for)):
            if rule_id in fast and due is not None:
                runs[rule_id].append((due.timestamp(), (started - due).total_seconds()))
    return runs


# Not yet true (issue #12 item 2, docs/roadmap.md): an xfail that passes either way would
# prove nothing and cost CI a minute, so it is skipped until a batch gives its process back.
@pytest.mark.skip(
    reason="#12 item 2 is not done: slow rules claimed by different ticks hold every pool"
    " process until they time out, so ticks stall: measured p99 11.7 s (docs/reliability.md)"
)
def test_it_keeps_fast_rules_on_time_while_targets_that_never_answer_hold_their_checks(
    database: str, tmp_path: Path
) -> None:
    require_service("127.0.0.1", 6379, "Redis")
    broker = f"{REDIS_URL}/{REDIS_DB}"
    redis.Redis.from_url(broker).flushdb()
    env = {"RULEWATCH_HOME": str(tmp_path), "RULEWATCH_DATABASE_URL": database,
           "RULEWATCH_BROKER_URL": broker, "RULEWATCH_RESULT_BACKEND": broker,
           "RULEWATCH_TICK_S": "1"}  # fmt: skip
    engine = create_engine(database)
    factory = sessionmaker(engine, expire_on_commit=False)
    log = tmp_path / "worker.log"
    worker = spawn(["worker"], env, log)  # the default concurrency
    beat = spawn(["beat", "--loglevel", "WARNING"], env, tmp_path / "beat.log")
    try:
        wait_for(lambda: b"ready." in log.read_bytes(), 60, "the worker to start", log)
        with Target() as fast_target, Target() as slow_target:
            slow_target.hold()  # answers only when the test ends: never within the timeout
            fast = _create_rules(factory, fast_target.url, slow_target.url)
            slow_done = SLOW_RULES * SLOW_RUNS
            wait_for(lambda: _slow_runs(factory, fast) >= slow_done,
                     SLOW_TIMEOUT_S * SLOW_RUNS + 60, "the slow rules' timeouts", log)  # fmt: skip
            ended = utcnow()
    finally:
        stop(beat)
        stop(worker)
    runs = _scheduled_runs(factory, fast)
    engine.dispose()
    cutoff = (ended - timedelta(seconds=6)).timestamp()  # runs that could all be recorded
    lateness = sorted(late for rule in runs.values() for due, late in rule if due < cutoff)
    p99 = lateness[int(len(lateness) * 0.99)]
    print(f"{len(lateness)} fast runs; lateness p50 {lateness[len(lateness) // 2]:.2f} s, "
          f"p99 {p99:.2f} s, max {lateness[-1]:.2f} s")  # fmt: skip
    assert len(lateness) >= FAST_RULES * 5, "the fast rules kept running"
    first = min(due for rule in runs.values() for due, _ in rule)
    late = sorted((round(due - first, 1), round(lag, 2), rule_id) for rule_id, rule in runs.items()
                  for due, lag in rule if lag > 2)  # fmt: skip
    assert p99 <= 2, late[:40]
    for rule_id, rule_runs in runs.items():
        dues = [due for due, _ in rule_runs]
        gaps = {round(b - a, 3) for a, b in itertools.pairwise(dues)}
        assert gaps == {fast[rule_id]}, f"rule {rule_id} missed a due time: gaps {sorted(gaps)}"
