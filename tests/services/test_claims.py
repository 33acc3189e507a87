"""Claims against real databases: each due run is dispatched once, however dispatchers race."""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from flask import Flask
from kombu.exceptions import OperationalError as BrokerError
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from rulewatch import create_app
from rulewatch.config import Settings
from rulewatch.db import transaction
from rulewatch.models import Rule, utcnow
from rulewatch.services.rules import create_rule
from rulewatch.services.scheduling import (
    HARD_LIMIT_AFTER_TIMEOUT_S,
    Claim,
    claim_due_rules,
    give_back,
    hold_while_running,
)
from rulewatch.services.verification import Job
from rulewatch.tasks import (
    claims_held,
    retries_worth_it,
    retry_wait_s,
    verify_all_rules,
    verify_batch,
)
from tests.targets import closed_port, http_rule


def _make_due_rules(factory: sessionmaker[Session], count: int, timeout_s: float = 5) -> None:
    now = utcnow()
    with transaction(factory) as session:
        for i in range(count):
            rule = http_rule("http://127.0.0.1:9/x", name=f"r{i}")
            rule["target"]["timeout_s"] = timeout_s
            create_rule(session, rule, now)
        session.execute(update(Rule).values(next_due_at=now - timedelta(seconds=1)))


def _race_two_dispatchers(factory: sessionmaker[Session], limit: int) -> list[Claim]:
    """Two threads claim due rules in a loop, started together, until none is left."""
    barrier = threading.Barrier(2)
    results: list[list[Claim]] = [[], []]

    def dispatcher(slot: int) -> None:
        barrier.wait()
        while True:
            with transaction(factory) as session:
                got = claim_due_rules(session, utcnow(), limit=limit, ttl_s=60)
            if not got:
                return
            results[slot] += got

    threads = [threading.Thread(target=dispatcher, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results[0] + results[1]


def test_it_claims_each_due_rule_once_when_two_dispatchers_race(
    factory: sessionmaker[Session],
) -> None:
    _make_due_rules(factory, 300)
    ids = [c.rule_id for c in _race_two_dispatchers(factory, limit=25)]
    assert len(ids) == 300
    assert len(set(ids)) == 300


def test_it_does_not_claim_a_rule_whose_claim_is_live(factory: sessionmaker[Session]) -> None:
    _make_due_rules(factory, 3)
    with transaction(factory) as session:
        first = claim_due_rules(session, utcnow(), limit=10, ttl_s=60)
    with transaction(factory) as session:
        second = claim_due_rules(session, utcnow(), limit=10, ttl_s=60)
    assert len(first) == 3
    assert second == []


def _claim_lost_then_again(
    factory: sessionmaker[Session], after_s: float
) -> tuple[Claim, Claim, datetime]:
    """A rule claimed for 1 s, then claimed again ``after_s`` later for 300 s."""
    _make_due_rules(factory, 1)
    with transaction(factory) as session:
        [lost] = claim_due_rules(session, utcnow(), limit=10, ttl_s=1)
    later = utcnow() + timedelta(seconds=after_s)
    with transaction(factory) as session:
        [again] = claim_due_rules(session, later, limit=10, ttl_s=300)
    return lost, again, later


def test_it_reclaims_a_rule_whose_claim_expired_without_a_verification(
    factory: sessionmaker[Session],
) -> None:
    lost, again, _ = _claim_lost_then_again(factory, after_s=300)
    assert again.rule_id == lost.rule_id
    assert again.due == lost.due
    assert again.verification_id != lost.verification_id


def test_it_skips_disabled_and_not_yet_due_rules(factory: sessionmaker[Session]) -> None:
    _make_due_rules(factory, 2)
    with transaction(factory) as session:
        session.execute(update(Rule).where(Rule.name == "r0").values(enabled=False))
        session.execute(
            update(Rule).where(Rule.name == "r1").values(next_due_at=utcnow() + timedelta(hours=1))
        )
    with transaction(factory) as session:
        assert claim_due_rules(session, utcnow(), limit=10, ttl_s=60) == []


def test_it_dispatches_each_of_ten_thousand_due_rules_once_on_postgresql(
    pg_server: str,
) -> None:
    from sqlalchemy import func, insert, select

    from rulewatch.db import make_engine, make_session_factory
    from rulewatch.migrate import upgrade
    from tests.conftest import drop_database, fresh_database

    url, name = fresh_database(pg_server)
    try:
        upgrade(url)
        engine = make_engine(url)
        factory = make_session_factory(engine)
        now = utcnow() - timedelta(seconds=1)
        rows = [
            {"name": f"r{i}", "kind": "tcp", "target": {"host": "127.0.0.1", "port": 9},
             "conditions": ["[CONNECTED] == true"], "interval_s": 60, "timezone": "UTC",
             "enabled": True, "stability_target": 0.99, "created_at": now, "updated_at": now,
             "next_due_at": now}
            for i in range(10_000)
        ]  # fmt: skip
        with transaction(factory) as session:
            session.execute(insert(Rule), rows)
        ids = [c.rule_id for c in _race_two_dispatchers(factory, limit=500)]
        with factory() as session:
            total = session.scalar(select(func.count()).select_from(Rule))
        assert len(ids) == len(set(ids)) == total == 10_000
        engine.dispose()
    finally:
        drop_database(pg_server, name)


def _job(claim: Claim) -> Job:
    return Job(claim.rule_id, claim.verification_id, claim.due)


def _claimed_until(factory: sessionmaker[Session]) -> dict[int, datetime | None]:
    with factory() as session:
        return {rid: until for rid, until in session.execute(select(Rule.id, Rule.claimed_until))}


def _redispatches(factory: sessionmaker[Session]) -> dict[int, int]:
    with factory() as session:
        return {rid: n for rid, n in session.execute(select(Rule.id, Rule.redispatches))}


def test_it_holds_a_started_runs_claim_for_its_timeout_plus_the_hard_limit_only(
    factory: sessionmaker[Session],
) -> None:
    _make_due_rules(factory, 2, timeout_s=3)
    claimed_at = utcnow()
    with transaction(factory) as session:
        started, queued = claim_due_rules(session, claimed_at, limit=10, ttl_s=300)
    started_at = claimed_at + timedelta(seconds=2)
    with transaction(factory) as session:
        assert hold_while_running(session, [_job(started)], started_at) == 1
    until = _claimed_until(factory)
    assert until[started.rule_id] == started_at + timedelta(seconds=3 + HARD_LIMIT_AFTER_TIMEOUT_S)
    assert until[queued.rule_id] == claimed_at + timedelta(seconds=300)


def test_it_leaves_alone_a_claim_its_run_no_longer_holds(factory: sessionmaker[Session]) -> None:
    lost, again, later = _claim_lost_then_again(factory, after_s=5)
    with transaction(factory) as session:
        assert hold_while_running(session, [_job(lost)], later) == 0
        assert give_back(session, [_job(lost)], later) == 0
    assert _claimed_until(factory)[again.rule_id] == later + timedelta(seconds=300)


def test_it_leaves_claims_alone_for_a_manual_run(factory: sessionmaker[Session]) -> None:
    _make_due_rules(factory, 1)
    now = utcnow()
    with transaction(factory) as session:
        [claim] = claim_due_rules(session, now, limit=10, ttl_s=300)
    with transaction(factory) as session:
        assert hold_while_running(session, [Job(claim.rule_id, "manual-run")], now) == 0
    assert _claimed_until(factory)[claim.rule_id] == now + timedelta(seconds=300)


def test_it_dispatches_a_given_back_claim_again_at_the_next_round_and_counts_it(
    factory: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    _make_due_rules(factory, 2)
    now = utcnow()
    with transaction(factory) as session:
        gave_up, kept = claim_due_rules(session, now, limit=10, ttl_s=300)
    with transaction(factory) as session:
        assert give_back(session, [_job(gave_up)], now) == 1
    with caplog.at_level(logging.WARNING), transaction(factory) as session:
        [again] = claim_due_rules(session, now + timedelta(seconds=1), limit=10, ttl_s=300)
    assert (again.rule_id, again.due) == (gave_up.rule_id, gave_up.due)
    assert again.verification_id != gave_up.verification_id
    assert _redispatches(factory) == {gave_up.rule_id: 1, kept.rule_id: 0}
    lines = [r.getMessage() for r in caplog.records if "re-dispatching" in r.getMessage()]
    assert lines == [f"re-dispatching 1 due runs whose claim expired or was given back"
                     f" unrecorded (rules {gave_up.rule_id})"]  # fmt: skip


def test_it_counts_a_first_dispatch_as_no_redispatch(factory: sessionmaker[Session]) -> None:
    _make_due_rules(factory, 3)
    with transaction(factory) as session:
        assert len(claim_due_rules(session, utcnow(), limit=10, ttl_s=1)) == 3
    assert set(_redispatches(factory).values()) == {0}
    with transaction(factory) as session:
        assert len(claim_due_rules(session, utcnow() + timedelta(seconds=5), 10, ttl_s=1)) == 3
    assert set(_redispatches(factory).values()) == {1}


def _claim_two(app: Flask) -> tuple[sessionmaker[Session], list[Job], datetime]:
    factory = app.extensions["rulewatch"].factory
    _make_due_rules(factory, 2, timeout_s=3)
    now = utcnow()
    with transaction(factory) as session:
        jobs = [_job(c) for c in claim_due_rules(session, now, limit=10, ttl_s=300)]
    return factory, jobs, now


def test_it_gives_back_the_claims_of_a_batch_stopped_by_its_soft_time_limit(app: Flask) -> None:
    factory, jobs, _ = _claim_two(app)
    rt = app.extensions["rulewatch"]
    with pytest.raises(SoftTimeLimitExceeded), claims_held(verify_batch, rt, jobs):
        raise SoftTimeLimitExceeded()  # what Celery raises in the task at the soft limit
    after = utcnow()
    assert all(until is not None and until <= after for until in _claimed_until(factory).values())
    with transaction(factory) as session:
        assert len(claim_due_rules(session, utcnow(), limit=10, ttl_s=300)) == 2


@pytest.mark.parametrize(("retries_left", "given_back"), [(0, True), (1, False), (55, False)])
def test_it_gives_back_claims_only_when_infrastructure_retries_are_exhausted(
    app: Flask, retries_left: int, given_back: bool
) -> None:
    factory, jobs, started = _claim_two(app)
    rt = app.extensions["rulewatch"]
    verify_batch.push_request(retries=retries_worth_it(rt.settings.claim_ttl_s) - retries_left)
    try:
        with pytest.raises(OperationalError), claims_held(verify_batch, rt, jobs):
            raise OperationalError("SELECT 1", {}, ConnectionError("database gone"))
    finally:
        verify_batch.pop_request()
    held_until = started + timedelta(seconds=3 + HARD_LIMIT_AFTER_TIMEOUT_S)
    until = list(_claimed_until(factory).values())
    if given_back:
        assert all(u is not None and u < held_until for u in until)
    else:  # a retry follows: the claims hold while the task can still run
        assert all(u is not None and u >= held_until for u in until)


def test_it_retries_a_verify_task_through_five_minutes_of_outage_at_most_five_s_apart() -> None:
    waits = [retry_wait_s(tries) for tries in range(retries_worth_it(300))]
    assert max(waits) <= 5 and waits[0] <= 1
    assert sum(waits) >= 0.8 * 300 - 10  # the claim taken at dispatch lasts 300 s
    assert retries_worth_it(10) == 3  # a short claim TTL still rides out a blip


def test_a_tick_whose_runs_the_broker_refuses_gives_their_claims_back(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    dead_broker = replace(settings, broker_url=f"redis://127.0.0.1:{closed_port()}/0")
    app = create_app(dead_broker)
    factory = app.extensions["rulewatch"].factory
    _make_due_rules(factory, 2)
    with app.app_context(), caplog.at_level(logging.WARNING), pytest.raises(BrokerError):
        verify_all_rules.run()
    assert all(u is not None and u <= utcnow() for u in _claimed_until(factory).values())
    assert any("gave back 2 claims of a tick" in r.getMessage() for r in caplog.records)
    app.extensions["rulewatch"].engine.dispose()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_tick_while_the_database_is_down_logs_one_line_and_no_traceback(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    down = replace(settings, database_url=f"postgresql+psycopg://u:pw@127.0.0.1:{closed_port()}/rw")
    app = create_app(down)
    with app.app_context(), caplog.at_level(logging.INFO):
        answers = [verify_all_rules.run() for _ in range(3)]
    assert answers == [{"dispatched": 0, "database_unavailable": 1}] * 3
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "is unavailable" in lines[0] and "pw" not in lines[0], lines
