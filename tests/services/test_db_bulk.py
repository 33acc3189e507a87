"""Bulk writes (db.insert_many, update_many, upsert): one statement of column arrays on
PostgreSQL, a statement per row elsewhere; the same rows stored on every engine."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session, sessionmaker

from rulewatch.db import Merge, insert_many, transaction, update_many, upsert
from rulewatch.models import HourlyRollup, Rule, Verification, utcnow
from rulewatch.services.rules import create_rule
from tests.targets import http_rule

RULES = cast(Table, Rule.__table__)


def _rules(factory: sessionmaker[Session], count: int) -> list[int]:
    with transaction(factory) as session:
        made = [create_rule(session, http_rule("http://127.0.0.1:9/", name=f"r{i}"), utcnow())
                for i in range(count)]  # fmt: skip
        return [rule.id for rule in made]


def test_it_inserts_rows_with_json_lists_nulls_and_times(factory: sessionmaker[Session]) -> None:
    [a, b] = _rules(factory, 2)
    now = utcnow()
    rows: list[dict[str, Any]] = [
        {"id": str(uuid.uuid4()), "rule_id": rule_id, "scheduled_for": due, "started_at": now,
         "duration_ms": 1.5, "status": status, "conditions": conditions, "measured": measured,
         "error": error, "trigger": "schedule", "in_maintenance": False}
        for rule_id, due, status, conditions, measured, error in [
            (a, now - timedelta(seconds=3), "pass", [{"condition": "x", "ok": True}],
             {"status": 200, "headers": {"a": "b"}}, None),
            (b, None, "error", [], {}, "refused"),
        ]
    ]  # fmt: skip
    with transaction(factory) as session:
        insert_many(session, cast(Table, Verification.__table__), rows)
    with factory() as session:
        stored = {v.rule_id: v for v in session.scalars(select(Verification))}
    assert stored[a].conditions == [{"condition": "x", "ok": True}]
    assert stored[a].measured == {"status": 200, "headers": {"a": "b"}}
    assert stored[a].scheduled_for == now - timedelta(seconds=3)
    assert (stored[b].scheduled_for, stored[b].error, stored[b].conditions) == (None, "refused", [])
    assert stored[b].started_at == now


def test_it_updates_each_row_by_id_and_sets_the_constants(factory: sessionmaker[Session]) -> None:
    ids = _rules(factory, 3)
    later = utcnow() + timedelta(minutes=5)
    with transaction(factory) as session:
        session.execute(RULES.update().values(claim_token="t", claimed_until=later))
        update_many(session, RULES, [
            {"id": ids[0], "last_status": "pass", "next_due_at": later},
            {"id": ids[2], "last_status": "fail", "next_due_at": later + timedelta(seconds=1)},
        ], {"claim_token": None, "claimed_until": None})  # fmt: skip
    with factory() as session:
        rules = {r.id: r for r in session.scalars(select(Rule))}
    assert [(rules[i].last_status, rules[i].claim_token) for i in ids] == [
        ("pass", None), (None, "t"), ("fail", None),
    ]  # fmt: skip
    assert rules[ids[2]].next_due_at == later + timedelta(seconds=1)


def test_it_adds_to_rows_that_exist_and_inserts_the_others(factory: sessionmaker[Session]) -> None:
    [a, b] = _rules(factory, 2)
    hour = utcnow().replace(minute=0, second=0, microsecond=0)
    table = cast(Table, HourlyRollup.__table__)

    def row(rule_id: int, passed: int, slowest: float) -> dict[str, Any]:
        counts = {"passed": passed, "failed": 0, "errors": 0, "maintenance": 0}
        return {"rule_id": rule_id, "bucket": hour, **counts, "duration_sum_ms": slowest,
                "duration_max_ms": slowest}  # fmt: skip

    merge: dict[str, Merge] = {"passed": "add", "duration_sum_ms": "add", "duration_max_ms": "max"}
    with transaction(factory) as session:
        upsert(session, table, [row(a, 2, 10.0)], ("rule_id", "bucket"), merge)
    with transaction(factory) as session:
        upsert(session, table, [row(a, 3, 4.0), row(b, 1, 7.0)], ("rule_id", "bucket"), merge)
    with factory() as session:
        got = {r.rule_id: (r.passed, r.duration_sum_ms, r.duration_max_ms)
               for r in session.scalars(select(HourlyRollup))}  # fmt: skip
    assert got == {a: (5, 14.0, 10.0), b: (1, 7.0, 7.0)}
