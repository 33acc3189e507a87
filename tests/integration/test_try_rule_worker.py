"""A draft rule's test run through a real worker on the interactive queue (Redis, PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from rulewatch import create_app
from rulewatch.config import load_settings
from rulewatch.migrate import upgrade
from rulewatch.models import HourlyRollup, Rule, Verification
from rulewatch.shapes import DraftVerification
from tests.auth import sign_in_test_clients
from tests.conftest import REDIS_URL, drop_database, fresh_database, require_service
from tests.integration.processes import spawn, stop, wait_for
from tests.targets import Target, http_rule

REDIS_DB = 8


@dataclass
class Stack:
    app: Flask
    client: FlaskClient
    log: Path

    def tried(self, draft: dict[str, Any], timeout: float = 30) -> dict[str, Any]:
        """POST the draft to /rules/try, then poll its task until it is done."""
        accepted = self.client.post("/api/v1/rules/try", json=draft)
        assert accepted.status_code == 202, accepted.get_json()
        task_id = accepted.get_json()["task_id"]

        def done() -> dict[str, Any] | None:
            body: dict[str, Any] = self.client.get(f"/api/v1/tasks/{task_id}").get_json()
            return body if body["state"] in ("SUCCESS", "FAILURE") else None

        state: dict[str, Any] = wait_for(done, timeout, f"task {task_id}", self.log)
        return state

    def count(self, table: Any) -> int:
        with self.app.extensions["rulewatch"].factory() as session:
            return int(session.scalar(select(func.count()).select_from(table)) or 0)


@pytest.fixture(scope="module")
def stack(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A worker that consumes the interactive queue only, and an app on the same broker."""
    require_service("127.0.0.1", 6379, "Redis")
    broker = f"{REDIS_URL}/{REDIS_DB}"
    redis.Redis.from_url(broker).flushdb()
    url, name = fresh_database(pg_server)
    upgrade(url)
    home = tmp_path_factory.mktemp("home")
    env = {"RULEWATCH_HOME": str(home), "RULEWATCH_DATABASE_URL": url,
           "RULEWATCH_BROKER_URL": broker, "RULEWATCH_RESULT_BACKEND": broker}  # fmt: skip
    log = home / "worker.log"
    worker = spawn(["worker", "-Q", "interactive", "-c", "1"], env, log)
    app = create_app(load_settings(env))
    sign_in_test_clients(app)
    try:
        wait_for(lambda: b"ready." in log.read_bytes(), 60, "the worker to start", log)
        yield Stack(app, app.test_client(), log)
    finally:
        stop(worker)
        drop_database(pg_server, name)


def test_it_tries_a_draft_on_a_worker_and_answers_each_condition(stack: Stack) -> None:
    with Target() as target:
        saved = stack.client.post("/api/v1/rules", json=http_rule(target.url))
        assert saved.status_code == 201
        passed = stack.tried(http_rule(target.url))  # a draft of that rule: the same name
        target.status = 503
        failed = stack.tried(http_rule(target.url))
        assert target.hits == 2
    assert passed["state"] == "SUCCESS", passed
    result = DraftVerification.model_validate(passed["result"])
    assert (result.status, result.error) == ("pass", None)
    assert [c.resolved for c in result.conditions][:2] == [
        "[STATUS] (200) == 200", "[BODY].status (UP) == UP",
    ]  # fmt: skip
    assert failed["result"]["status"] == "fail"
    assert failed["result"]["error"] == "condition not met: [STATUS] (503) == 200"
    assert (stack.count(Verification), stack.count(HourlyRollup)) == (0, 0)
    with stack.app.extensions["rulewatch"].factory() as session:
        assert session.scalar(select(Rule.last_status)) is None
