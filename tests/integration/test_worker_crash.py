"""A worker killed with -9 in the middle of checks, on Redis and on RabbitMQ with PostgreSQL
and a real beat: another worker verifies the rules it held within their timeout_s + 30 s, each
due time once. On Redis the killed worker's message waits out its visibility timeout, so the
rules come back through their expired claims (re-dispatched, counted); RabbitMQ hands the
message to the new worker as soon as the dead one's connection closes."""

from __future__ import annotations

import os
import signal
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from rulewatch.db import transaction
from rulewatch.models import Rule, Verification, utcnow
from rulewatch.services.rules import create_rule
from rulewatch.services.scheduling import HARD_LIMIT_AFTER_TIMEOUT_S
from tests.integration.brokers import BROKERS, broker
from tests.integration.processes import spawn, stop, wait_for
from tests.targets import Target, http_rule

REDIS_DB = 14
TIMEOUT_S = 3
RULES = 3


def _slow_rules(factory: sessionmaker[Session], url: str) -> list[int]:
    """Rules due now, every 300 s, whose checks may take TIMEOUT_S."""
    with transaction(factory) as session:
        ids = []
        for i in range(RULES):
            rule = http_rule(url, name=f"slow {i}", interval_s=300)
            rule["target"]["timeout_s"] = TIMEOUT_S
            ids.append(create_rule(session, rule, utcnow()).id)
        session.execute(update(Rule).values(next_due_at=utcnow()))
    return ids


def _scheduled(factory: sessionmaker[Session]) -> list[tuple[int, datetime, datetime]]:
    """(rule id, due time, start) of every scheduled verification recorded."""
    query = select(Verification.rule_id, Verification.scheduled_for, Verification.started_at)
    with factory() as session:
        rows = session.execute(query.where(Verification.trigger == "schedule")).all()
    return [(rid, due, started) for rid, due, started in rows]


def _claims(factory: sessionmaker[Session]) -> list[datetime | None]:
    with factory() as session:
        return list(session.scalars(select(Rule.claimed_until)))


@pytest.mark.parametrize("broker_kind", BROKERS)
def test_it_verifies_a_killed_workers_rules_again_within_their_timeout_plus_30_s(
    broker_kind: str, database: tuple[str, sessionmaker[Session]], tmp_path: Path
) -> None:
    url, factory = database
    with broker(broker_kind, REDIS_DB) as queues:
        recorded, held, killed_at, logs = _kill_a_worker_mid_check(
            factory, {"RULEWATCH_HOME": str(tmp_path), "RULEWATCH_DATABASE_URL": url,
                      "RULEWATCH_BROKER_URL": queues.url,
                      "RULEWATCH_RESULT_BACKEND": queues.result_backend(url),
                      "RULEWATCH_TICK_S": "1"},  # the claim TTL stays at its default 300 s
            tmp_path,
        )  # fmt: skip
    started_hold = killed_at + timedelta(seconds=TIMEOUT_S + HARD_LIMIT_AFTER_TIMEOUT_S)
    assert all(until is not None and until <= started_hold for until in held), held
    again_s = [(started - killed_at).total_seconds() for _, _, started in recorded]
    print(broker_kind, "verified again after the kill (s):", sorted(again_s))
    assert all(0 < s <= TIMEOUT_S + 30 for s in again_s), again_s
    assert sorted(rid for rid, _, _ in recorded) == _rule_ids(factory)  # each due time once
    if broker_kind == "redis":
        assert "re-dispatching" in logs[1].read_text(), logs[1].read_text()[-3000:]
        with factory() as session:
            assert list(session.scalars(select(Rule.redispatches))) == [1] * RULES


def _rule_ids(factory: sessionmaker[Session]) -> list[int]:
    with factory() as session:
        return sorted(session.scalars(select(Rule.id)))


def _kill_a_worker_mid_check(
    factory: sessionmaker[Session], env: dict[str, str], tmp_path: Path
) -> tuple[list[tuple[int, datetime, datetime]], list[datetime | None], datetime, list[Path]]:
    """Kill the worker checking the slow rules, start another; what was recorded, the claims
    as the checks started, when the worker was killed, and the logs."""
    logs = [tmp_path / "first.log", tmp_path / "second.log", tmp_path / "beat.log"]
    with Target() as target:
        target.hold()  # the first worker's checks hang until it is killed
        _slow_rules(factory, target.url)
        beat = spawn(["beat"], env, logs[2])
        first = spawn(["worker", "-c", "2"], env, logs[0])
        second = None
        try:
            wait_for(lambda: target.hits >= RULES, 60, "the first worker's checks", logs[0])
            held = _claims(factory)
            os.killpg(first.pid, signal.SIGKILL)  # the main process and its pool
            killed_at = utcnow()
            first.wait()
            target.release.set()
            second = spawn(["worker", "-c", "2"], env, logs[1])
            wait_for(lambda: len(_scheduled(factory)) >= RULES, TIMEOUT_S + 60,
                     "the rules verified again", logs[1])  # fmt: skip
            recorded = _scheduled(factory)
        finally:
            for process in (beat, first, second):
                if process is not None:
                    stop(process)
    return recorded, held, killed_at, logs
