"""The batch path: each rule recorded as its target answered, and one hanging target holds
no one."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from rulewatch.db import transaction
from rulewatch.models import HourlyRollup, Rule, Verification, utcnow
from rulewatch.probes import ProbeContext
from rulewatch.services.rules import create_rule
from rulewatch.services.verification import Job, verify_jobs, verify_one
from tests.targets import Target, closed_port, http_rule

CTX = ProbeContext(datasources={})


@pytest.fixture
def hanging_port() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(50)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def _rules(factory: sessionmaker[Session], url: str, prefix: str, n: int) -> list[int]:
    with transaction(factory) as session:
        return [create_rule(session, http_rule(url, name=f"{prefix}{i}"), utcnow()).id
                for i in range(n)]  # fmt: skip


@dataclass(frozen=True)
class Case:
    """A rule whose verification is known before it runs: status, error, conditions met."""

    rule: dict[str, Any]
    status: str
    error: str | None
    met: list[bool]
    measured: dict[str, Any]
    rollup: tuple[int, int, int]  # (passed, failed, errors) of the hour


def _rule(kind: str, target: dict[str, Any], condition: str) -> dict[str, Any]:
    return {"name": kind, "kind": kind, "target": target, "conditions": [condition],
            "interval_s": 60}  # fmt: skip


def _cases(up: Target, down: Target, refused_port: int) -> dict[str, Case]:
    """Rules of each kind against targets whose answers the test chose."""
    sql = _rule("sql", {"datasource": "nowhere", "query": "SELECT 1"}, "[VALUE] == 1")
    tcp = _rule(
        "tcp", {"host": "127.0.0.1", "port": up.port, "timeout_s": 2}, "[CONNECTED] == true"
    )
    return {
        "up": Case(http_rule(up.url), "pass", None, [True, True, True],
                   {"connected": True, "status": 200}, (1, 0, 0)),
        "down": Case(http_rule(down.url), "fail", "condition not met: [STATUS] (500) == 200",
                     [False, False, True], {"connected": True, "status": 500}, (0, 1, 0)),
        "refused": Case(http_rule(f"http://127.0.0.1:{refused_port}/health"), "fail",
                        f"connection refused to 127.0.0.1:{refused_port}",
                        [False, False, True], {"connected": False}, (0, 1, 0)),
        "open port": Case(tcp, "pass", None, [True], {"connected": True}, (1, 0, 0)),
        "no source": Case(sql, "error", "unknown data source 'nowhere'", [False],
                          {"connected": False}, (0, 0, 1)),
    }  # fmt: skip


def _create(factory: sessionmaker[Session], cases: dict[str, Case], prefix: str) -> dict[int, Case]:
    with transaction(factory) as session:
        return {
            create_rule(session, {**case.rule, "name": prefix + name}, utcnow()).id: case
            for name, case in cases.items()
        }  # fmt: skip


def _assert_recorded_as_expected(factory: sessionmaker[Session], expected: dict[int, Case]) -> None:
    with factory() as session:
        recorded = list(session.scalars(select(Verification)))
        rows = {v.rule_id: v for v in recorded}
        rollups = {
            r.rule_id: (r.passed, r.failed, r.errors) for r in session.scalars(select(HourlyRollup))
        }
        states = {r.id: r.last_status for r in session.scalars(select(Rule))}
    assert len(recorded) == len(expected), "each rule verified once"
    for rule_id, case in expected.items():
        row = rows[rule_id]
        assert (row.status, row.error, row.trigger) == (case.status, case.error, "manual")
        assert [c["ok"] for c in row.conditions] == case.met
        assert case.measured.items() <= row.measured.items()
        assert (rollups[rule_id], states[rule_id]) == (case.rollup, case.status)


def test_it_records_each_rule_as_its_target_answered_on_the_batch_and_the_single_path(
    factory: sessionmaker[Session],
) -> None:
    with Target() as up, Target() as down:
        down.status, down.body = 500, {"status": "DOWN"}
        cases = _cases(up, down, closed_port())
        batch, single = _create(factory, cases, "batch "), _create(factory, cases, "single ")
        verify_jobs(factory, [Job(rule_id, str(uuid.uuid4())) for rule_id in batch], CTX)
        for rule_id in single:
            verify_one(factory, Job(rule_id, str(uuid.uuid4())), CTX)
    _assert_recorded_as_expected(factory, batch | single)


def test_it_finishes_the_other_rules_of_a_batch_while_one_target_hangs(
    factory: sessionmaker[Session], hanging_port: int
) -> None:
    with Target() as target:
        fast = _rules(factory, target.url, "fast", 5)
        with transaction(factory) as session:
            rule = http_rule(f"http://127.0.0.1:{hanging_port}/", name="hangs")
            rule["target"]["timeout_s"] = 1
            slow = create_rule(session, rule, utcnow()).id
        started = time.monotonic()
        results = verify_jobs(factory, [Job(r, str(uuid.uuid4())) for r in [slow, *fast]], CTX)
        elapsed = time.monotonic() - started
    by_rule = {r["rule_id"]: r for r in results}
    assert by_rule[slow]["status"] == "fail"
    assert "timed out after 1s" in by_rule[slow]["error"]
    assert all(by_rule[r]["status"] == "pass" for r in fast)
    assert all(by_rule[r]["duration_ms"] < 1000 for r in fast), "fast rules waited for the slow one"
    assert elapsed < 5, "the batch outlived the slow rule's own timeout by far"


def test_it_records_the_fast_rules_of_a_batch_while_a_slow_target_still_holds_its_request(
    factory: sessionmaker[Session],
) -> None:
    with Target() as fast_target, Target() as slow_target:
        fast = _rules(factory, fast_target.url, "fast", 5)
        [slow] = _rules(factory, slow_target.url, "slow", 1)
        slow_target.hold()
        seen_while_held: list[int] = []

        def check_while_held() -> None:
            slow_target.arrived.wait(HOLD_S)
            seen_while_held.extend(_wait_for_recorded(factory, len(fast)))
            slow_target.release.set()

        watcher = threading.Thread(target=check_while_held)
        watcher.start()
        results = verify_jobs(factory, [Job(r, str(uuid.uuid4())) for r in [slow, *fast]], CTX)
        watcher.join()
    assert sorted(seen_while_held) == sorted(fast), "fast rules waited for the slow one"
    assert {r["rule_id"]: r["status"] for r in results} == dict.fromkeys([slow, *fast], "pass")


HOLD_S = 20


def _wait_for_recorded(factory: sessionmaker[Session], count: int) -> list[int]:
    """The rules with a recorded verification, once ``count`` are (or after HOLD_S)."""
    deadline = time.monotonic() + HOLD_S
    while True:
        with factory() as session:
            recorded = list(session.scalars(select(Verification.rule_id)))
        if len(recorded) >= count or time.monotonic() > deadline:
            return recorded
        time.sleep(0.05)  # polls the database for an outcome, stages nothing
