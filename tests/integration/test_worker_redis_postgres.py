"""A real Celery worker process with PostgreSQL, driven through the API, on Redis and RabbitMQ.

One stack (worker, app, database) per broker for the whole module; on RabbitMQ the task
results go to PostgreSQL (``db+postgresql+psycopg://``), as the README advises.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from rulewatch import create_app
from rulewatch.config import QUEUES, load_settings
from rulewatch.dispatch import time_limits
from rulewatch.migrate import upgrade
from rulewatch.services.scheduling import MAX_CHECK_S
from rulewatch.web.api_models import MAX_COUNTDOWN_S
from tests.auth import sign_in_test_clients
from tests.conftest import drop_database, fresh_database
from tests.integration.brokers import BROKERS, Broker, broker
from tests.integration.processes import spawn, stop, wait_for
from tests.targets import Target, http_rule

REDIS_DB = 13


@dataclass
class Stack:
    app: Flask
    client: FlaskClient
    log: Path
    broker: Broker

    def wait_task(self, task_id: str, timeout: float = 30) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            body: dict[str, Any] = self.client.get(f"/api/v1/tasks/{task_id}").get_json()
            return body if body["state"] in ("SUCCESS", "FAILURE") else None

        result: dict[str, Any] = wait_for(done, timeout, f"task {task_id}", self.log)
        return result


@pytest.fixture(scope="module", params=BROKERS)
def stack(
    request: pytest.FixtureRequest, pg_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    with broker(request.param, REDIS_DB) as queues:
        yield from _stack(pg_server, tmp_path_factory.mktemp("home"), queues)


def _stack(pg_server: str, home: Path, queues: Broker) -> Iterator[Stack]:
    url, name = fresh_database(pg_server)
    upgrade(url)
    backend = queues.result_backend(url)
    env = {"RULEWATCH_HOME": str(home), "RULEWATCH_DATABASE_URL": url,
           "RULEWATCH_BROKER_URL": queues.url, "RULEWATCH_RESULT_BACKEND": backend,
           "RULEWATCH_TICK_S": "1", "RULEWATCH_CHUNK_SIZE": "2",
           "RULEWATCH_CLAIM_TTL_S": "3", "RULEWATCH_DIGEST_EMAILS": "team@example.com"}  # fmt: skip
    log = home / "worker.log"
    worker = spawn(["worker", "-c", "2"], env, log)
    app = create_app(replace(load_settings(env)))
    sign_in_test_clients(app)
    try:
        wait_for(lambda: b"ready." in log.read_bytes(), 60, "the worker to start", log)
        yield Stack(app, app.test_client(), log, queues)
    finally:
        stop(worker)
        drop_database(pg_server, name)


def test_it_verifies_now_through_the_interactive_queue(stack: Stack) -> None:
    with Target() as target:
        rule = stack.client.post("/api/v1/rules", json=http_rule(target.url, name="now")).get_json()
        accepted = stack.client.post(f"/api/v1/rules/{rule['id']}/verify")
        assert accepted.status_code == 202
        done = stack.wait_task(accepted.get_json()["task_id"])
        target.status = 503
        failed = stack.wait_task(
            stack.client.post(f"/api/v1/rules/{rule['id']}/verify").get_json()["task_id"]
        )
    assert done["state"] == "SUCCESS"
    assert done["result"]["status"] == "pass"
    assert failed["result"]["status"] == "fail"
    assert "[STATUS] (503) == 200" in [c["resolved"] for c in failed["result"]["conditions"]]
    history = stack.client.get(f"/api/v1/rules/{rule['id']}/verifications?limit=5").get_json()
    assert [v["status"] for v in history["verifications"]] == ["fail", "pass"]


def test_it_runs_a_delayed_verification_after_its_countdown(stack: Stack) -> None:
    with Target() as target:
        rule = stack.client.post(
            "/api/v1/rules", json=http_rule(target.url, name="later")
        ).get_json()
        asked = time.time()
        task_id = stack.client.post(
            f"/api/v1/rules/{rule['id']}/verify", json={"countdown_s": 2}
        ).get_json()["task_id"]
        early = stack.client.get(f"/api/v1/tasks/{task_id}").get_json()
        done = stack.wait_task(task_id)
    assert early["state"] == "PENDING"
    assert done["result"]["status"] == "pass"
    from datetime import datetime

    started = datetime.fromisoformat(done["result"]["started_at"]).timestamp()
    assert started >= asked + 1.9


def test_it_lets_a_worker_hold_a_delayed_task_past_the_longest_countdown(stack: Stack) -> None:
    if stack.broker.kind != "rabbitmq":
        pytest.skip("Redis has no consumer timeout (its visibility timeout bounds countdowns)")
    # a delayed task is held unacknowledged for its countdown, then for its run
    longest_hold_s = MAX_COUNTDOWN_S + time_limits(MAX_CHECK_S)["time_limit"]
    timeouts = stack.broker.consumer_timeouts_ms()
    assert set(timeouts) == set(QUEUES)
    assert min(timeouts.values()) > longest_hold_s * 1000


def test_it_verifies_scheduled_rules_once_per_due_time(stack: Stack) -> None:
    with Target() as target:
        ids = [
            stack.client.post(
                "/api/v1/rules", json=http_rule(target.url, name=f"sched {i}", interval_s=1)
            ).get_json()["id"]
            for i in range(5)
        ]
        from rulewatch.tasks import verify_all_rules

        def three_runs_each() -> list[list[dict[str, Any]]] | None:
            verify_all_rules.apply_async().get(timeout=20)  # a tick, as beat would send it
            counts = [_scheduled(stack, i) for i in ids]
            return counts if min(len(c) for c in counts) >= 3 else None

        counts = wait_for(three_runs_each, 30, "three scheduled runs of each rule", stack.log)
    for runs in counts:
        dues = [v["scheduled_for"] for v in runs]
        assert len(dues) >= 3
        assert len(dues) == len(set(dues)), "a due time was verified twice"


def _scheduled(stack: Stack, rule_id: int) -> list[dict[str, Any]]:
    body = stack.client.get(f"/api/v1/rules/{rule_id}/verifications?limit=100").get_json()
    return [v for v in body["verifications"] if v["trigger"] == "schedule"]


def test_it_renders_the_report_as_a_task_result_and_verifies_all_now(stack: Stack) -> None:
    with Target() as target:
        rule = stack.client.post(
            "/api/v1/rules", json=http_rule(target.url, name="all now")
        ).get_json()
        task_id = stack.client.post("/api/v1/verify-all").get_json()["task_id"]
        assert stack.wait_task(task_id)["result"]["dispatched"] >= 1
        wait_for(
            lambda: _has_manual(stack, rule["id"]), 30, "verify-all to reach the rule", stack.log
        )
    from rulewatch.tasks import get_stable_rates_html

    html = get_stable_rates_html.apply_async(args=("24h",)).get(timeout=20)
    assert "all now" in html and "rate-ok" in html


def _has_manual(stack: Stack, rule_id: int) -> bool:
    body = stack.client.get(f"/api/v1/rules/{rule_id}/verifications").get_json()
    return any(v["trigger"] == "manual" for v in body["verifications"])


def test_it_dispatches_again_a_run_whose_message_was_lost(stack: Stack) -> None:
    from sqlalchemy import update

    from rulewatch.db import transaction
    from rulewatch.models import Rule, utcnow
    from rulewatch.services.scheduling import claim_due_rules
    from rulewatch.tasks import verify_all_rules

    factory = stack.app.extensions["rulewatch"].factory
    with Target() as target:
        rule = stack.client.post(
            "/api/v1/rules", json=http_rule(target.url, name="lost", interval_s=3600)
        ).get_json()
        with transaction(factory) as session:
            session.execute(update(Rule).where(Rule.id == rule["id"]).values(next_due_at=utcnow()))
        with transaction(factory) as session:  # a dispatcher claims it, then its message is lost
            claims = claim_due_rules(session, utcnow(), limit=1000, ttl_s=3)
        [lost] = [c for c in claims if c.rule_id == rule["id"]]
        token_before = _claim_token(factory, rule["id"])
        verify_all_rules.apply_async().get(timeout=20)
        assert _claim_token(factory, rule["id"]) == token_before, "a live claim was taken again"

        def recovered() -> list[dict[str, Any]]:
            verify_all_rules.apply_async().get(timeout=20)
            return _scheduled(stack, rule["id"])

        [run] = wait_for(recovered, 30, "the lost run to be dispatched again", stack.log)
    assert run["status"] == "pass"
    assert run["scheduled_for"] == lost.due.isoformat()
    assert run["id"] != lost.verification_id


def _claim_token(factory: Any, rule_id: int) -> str | None:
    from rulewatch.models import Rule

    with factory() as session:
        token: str | None = session.get(Rule, rule_id).claim_token
        return token


def test_it_emails_the_digest_through_a_chain_of_report_and_send(stack: Stack) -> None:
    from sqlalchemy import select

    from rulewatch.models import Notification
    from rulewatch.tasks import digest

    stack.client.post("/api/v1/rules", json=http_rule("http://127.0.0.1:9/", name="in digest"))
    digest.apply_async(args=("24h",)).get(timeout=20)
    factory = stack.app.extensions["rulewatch"].factory

    def digest_row() -> Notification | None:
        with factory() as session:
            row = session.scalar(select(Notification).where(Notification.kind == "digest"))
            return row if row is not None and row.status != "pending" else None

    row = wait_for(digest_row, 30, "the digest to pass through the chain", stack.log)
    assert row.recipients == ["team@example.com"]
    assert row.subject == "rulewatch stability, last 24h"
    assert "in digest" in row.body_html and "<table" in row.body_html
    assert row.status == "unsent" and "RULEWATCH_SMTP_HOST" in (row.last_error or "")
