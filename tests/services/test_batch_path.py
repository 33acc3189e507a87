"""The batch path: same records as the single path, and one hanging target holds no one."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from rulewatch.db import transaction
from rulewatch.models import HourlyRollup, Rule, Verification, utcnow
from rulewatch.probes import ProbeContext
from rulewatch.services.rules import create_rule
from rulewatch.services.verification import Job, verify_jobs, verify_one
from tests.targets import Target, http_rule

CTX = ProbeContext(datasources={})
VOLATILE = {"id", "rule_id", "rule_name", "started_at", "duration_ms", "measured"}


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


def _comparable(result: dict[str, Any]) -> dict[str, Any]:
    kept = {k: v for k, v in result.items() if k not in VOLATILE}
    kept["measured"] = sorted(result["measured"])
    kept["conditions"] = [
        {**c, "resolved": c["resolved"].split(" (")[0]} if "RESPONSE_TIME" in c["condition"] else c
        for c in result["conditions"]
    ]
    return kept


def test_it_records_the_same_through_the_batch_and_the_single_path(
    factory: sessionmaker[Session],
) -> None:
    with Target() as target:
        single_ids = _rules(factory, target.url, "single", 4)
        batch_ids = _rules(factory, target.url, "batch", 4)
        outcomes: dict[str, list[dict[str, Any]]] = {"single": [], "batch": []}
        for status in (200, 500):
            target.status = status
            outcomes["single"] += [
                verify_one(factory, Job(rid, str(uuid.uuid4())), CTX) for rid in single_ids
            ]
            outcomes["batch"] += verify_jobs(
                factory, [Job(rid, str(uuid.uuid4())) for rid in batch_ids], CTX
            )
    assert [_comparable(r) for r in outcomes["single"]] == [
        _comparable(r) for r in outcomes["batch"]
    ]
    with factory() as session:
        stored = {v.id: v for v in session.scalars(select(Verification))}
        for result in outcomes["single"] + outcomes["batch"]:
            assert stored[result["id"]].status == result["status"]
        rollups = {
            r.rule_id: (r.passed, r.failed, r.errors) for r in session.scalars(select(HourlyRollup))
        }
        states = {r.id: r.last_status for r in session.scalars(select(Rule))}
    assert [rollups[i] for i in single_ids] == [rollups[i] for i in batch_ids] == [(1, 1, 0)] * 4
    assert {states[i] for i in single_ids + batch_ids} == {"fail"}


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
