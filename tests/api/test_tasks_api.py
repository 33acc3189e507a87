"""Task endpoints queue work on the broker and report task states (memory broker, no worker)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask import Flask

from rulewatch.celery_app import MAX_PRIORITY
from rulewatch.services.scheduling import HARD_LIMIT_AFTER_TIMEOUT_S, SOFT_LIMIT_AFTER_TIMEOUT_S
from tests.targets import http_rule


def _rule_id(app: Flask) -> int:
    response = app.test_client().post("/api/v1/rules", json=http_rule("http://127.0.0.1:9/a"))
    rule_id: int = response.get_json()["id"]
    return rule_id


def test_it_queues_a_manual_verification_and_returns_its_task_id(app: Flask) -> None:
    response = app.test_client().post(f"/api/v1/rules/{_rule_id(app)}/verify")
    assert response.status_code == 202
    body = response.get_json()
    assert uuid.UUID(body["task_id"])
    assert body["verification_id"] == body["task_id"]


def test_it_queues_a_manual_verification_after_a_countdown(app: Flask) -> None:
    url = f"/api/v1/rules/{_rule_id(app)}/verify"
    assert app.test_client().post(url, json={"countdown_s": 3300}).status_code == 202
    assert app.test_client().post(url, json={"countdown_s": 1.5}).status_code == 202


@pytest.mark.parametrize("countdown", [-1, True, "10", 3301, 86400, None, [5]])
def test_it_rejects_a_countdown_that_is_not_0_to_3300_seconds(app: Flask, countdown: Any) -> None:
    url = f"/api/v1/rules/{_rule_id(app)}/verify"
    response = app.test_client().post(url, json={"countdown_s": countdown})
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "bad_parameter"
    assert "from 0 to 3300" in error["message"]
    assert error["errors"][0]["field"] == "countdown_s"


def test_it_queues_a_verification_of_every_rule(app: Flask) -> None:
    response = app.test_client().post("/api/v1/verify-all")
    assert response.status_code == 202
    assert response.get_json()["task_id"]


def test_it_reports_an_unknown_task_as_pending(app: Flask) -> None:
    task_id = str(uuid.uuid4())
    response = app.test_client().get(f"/api/v1/tasks/{task_id}")
    assert response.status_code == 200
    assert response.get_json() == {"task_id": task_id, "state": "PENDING", "result": None}


def _drain(app: Flask, queue: str) -> list[Any]:
    """Take every message off ``queue`` of the app's in-memory broker."""
    with app.extensions["celery"].connection_for_read() as conn:
        messages = []
        while (message := conn.default_channel.basic_get(queue)) is not None:
            messages.append(message)
        return messages


def test_it_queues_verify_now_urgent_on_the_interactive_queue_within_the_rule_s_limits(
    app: Flask,
) -> None:
    rule_id = _rule_id(app)  # its target's timeout_s is 5
    body = app.test_client().post(f"/api/v1/rules/{rule_id}/verify").get_json()
    [message] = [m for m in _drain(app, "interactive") if m.headers["id"] == body["task_id"]]
    assert message.headers["task"] == "rulewatch.verify"
    assert message.headers["argsrepr"] == repr((rule_id, body["task_id"]))
    assert message.properties["priority"] == MAX_PRIORITY  # urgent, on a broker other than Redis
    # hard, then soft: the check's timeout_s plus the margins the started claim is held for
    assert message.headers["timelimit"] == [
        5 + HARD_LIMIT_AFTER_TIMEOUT_S,
        5 + SOFT_LIMIT_AFTER_TIMEOUT_S,
    ]


def test_it_reports_a_task_s_result_and_a_failed_or_retried_task_s_error(app: Flask) -> None:
    backend = app.extensions["celery"].backend
    done, failed, retried = (str(uuid.uuid4()) for _ in range(3))
    backend.mark_as_done(done, {"status": "pass"})
    backend.mark_as_failure(failed, RuntimeError("database gone"))
    backend.mark_as_retry(retried, ConnectionError("broker away"))
    client = app.test_client()
    states = [client.get(f"/api/v1/tasks/{t}").get_json() for t in (done, failed, retried)]
    assert [(s["state"], s["result"]) for s in states] == [
        ("SUCCESS", {"status": "pass"}),
        ("FAILURE", {"error": "RuntimeError('database gone')"}),
        ("RETRY", {"error": "ConnectionError('broker away')"}),
    ]
