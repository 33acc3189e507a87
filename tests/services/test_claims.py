"""Claims against real databases: each due run is dispatched once, however dispatchers race."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from rulewatch.db import transaction
from rulewatch.models import Rule, utcnow
from rulewatch.services.rules import create_rule
from rulewatch.services.scheduling import Claim, claim_due_rules
from tests.targets import http_rule


def _make_due_rules(factory: sessionmaker[Session], count: int) -> None:
    now = utcnow()
    with transaction(factory) as session:
        for i in range(count):
            create_rule(session, http_rule("http://127.0.0.1:9/x", name=f"r{i}"), now)
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


def test_it_reclaims_a_rule_whose_claim_expired_without_a_verification(
    factory: sessionmaker[Session],
) -> None:
    _make_due_rules(factory, 1)
    with transaction(factory) as session:
        [lost] = claim_due_rules(session, utcnow(), limit=10, ttl_s=1)
    later = utcnow() + timedelta(seconds=300)
    with transaction(factory) as session:
        [again] = claim_due_rules(session, later, limit=10, ttl_s=1)
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
