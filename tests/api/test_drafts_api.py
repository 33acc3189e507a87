"""The rule editor's endpoints: POST /api/v1/conditions/check and POST /api/v1/rules/try."""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import func, select

from rulewatch.celery_app import MAX_PRIORITY
from rulewatch.models import Rule
from tests.auth import token_for
from tests.targets import http_rule

CHECK = "/api/v1/conditions/check"
TRY = "/api/v1/rules/try"


def _queued(app: Flask) -> int:
    """Messages waiting on the interactive queue of the app's in-memory broker."""
    with app.extensions["celery"].connection_for_read() as conn:
        count: int = conn.default_channel.queue_declare("interactive").message_count
        return count


def _drain(app: Flask) -> list[Any]:
    """Take every message off the interactive queue (earlier tests' ones included)."""
    with app.extensions["celery"].connection_for_read() as conn:
        messages = []
        while (message := conn.default_channel.basic_get("interactive")) is not None:
            messages.append(message)
        return messages


def _rules(app: Flask) -> int:
    with app.extensions["rulewatch"].factory() as session:
        return int(session.scalar(select(func.count()).select_from(Rule)) or 0)


def test_it_checks_each_condition_with_its_error_and_position(app: Flask) -> None:
    texts = ["[STATUS] == 200", "[STATUS] ==", "[ROWS] > 0"]
    response = app.test_client().post(CHECK, json={"kind": "http", "conditions": texts})
    assert response.status_code == 200
    body = response.get_json()
    assert body["valid"] is False
    assert [c["condition"] for c in body["conditions"]] == texts
    assert body["conditions"][0] == {
        "condition": "[STATUS] == 200", "ok": True, "error": None, "position": None,
    }  # fmt: skip
    missing, elsewhere = body["conditions"][1:]
    assert (missing["ok"], missing["position"]) == (False, 11)
    assert missing["error"].startswith("missing value after '=='")
    assert (elsewhere["ok"], elsewhere["position"]) == (False, 0)
    assert "[ROWS] is not available for http rules" in elsewhere["error"]
    sql = app.test_client().post(CHECK, json={"kind": "sql", "conditions": ["[ROWS] > 0"]})
    assert sql.get_json() == {
        "valid": True,
        "conditions": [{"condition": "[ROWS] > 0", "ok": True, "error": None, "position": None}],
    }


def test_it_answers_a_condition_s_error_as_saving_the_rule_does(app: Flask) -> None:
    client = app.test_client()
    texts = ["[STATUS] == 200", "[BODY].items >= len(", "[STATUS] <> 200"]
    checked = client.post(CHECK, json={"kind": "http", "conditions": texts}).get_json()
    saved = client.post("/api/v1/rules", json={**http_rule("http://127.0.0.1:9/"),
                                               "conditions": texts})  # fmt: skip
    assert saved.status_code == 422
    assert [
        {"field": f"conditions[{i}]", "message": c["error"], "position": c["position"]}
        for i, c in enumerate(checked["conditions"]) if not c["ok"]
    ] == saved.get_json()["error"]["errors"]  # fmt: skip


def test_it_refuses_a_check_that_is_not_a_kind_and_condition_texts_naming_the_field(
    app: Flask,
) -> None:
    client = app.test_client()
    bad: list[tuple[dict[str, Any], str]] = [
        ({"kind": "ftp", "conditions": []}, "kind"),
        ({"kind": "http"}, "conditions"),
        ({"kind": "http", "conditions": "[STATUS] == 200"}, "conditions"),
        ({"kind": "http", "conditions": ["[STATUS] == 200", 200]}, "conditions[1]"),
        ({"kind": "http", "conditions": ["x" * 1001]}, "conditions[0]"),
        ({"kind": "http", "conditions": ["[STATUS] == 200"] * 101}, "conditions"),
        ({"kind": "http", "conditions": [], "name": "x"}, "name"),
    ]
    for body, field in bad:
        response = client.post(CHECK, json=body)
        assert response.status_code == 422, body
        error = response.get_json()["error"]
        assert error["code"] == "invalid_conditions_check"
        assert [e["field"] for e in error["errors"]] == [field], body
    not_an_object = client.post(CHECK, json=["[STATUS] == 200"])
    assert not_an_object.status_code == 400
    assert not_an_object.get_json()["error"]["code"] == "bad_json"
    full = client.post(CHECK, json={"kind": "tcp", "conditions": ["[CONNECTED] == true"] * 100})
    assert full.status_code == 200 and full.get_json()["valid"] is True


def test_it_refuses_a_viewer_checks_and_test_runs(app: Flask) -> None:
    viewer = app.test_client(token=token_for(app, "vera", "viewer"))
    check = viewer.post(CHECK, json={"kind": "http", "conditions": ["[STATUS] == 200"]})
    tried = viewer.post(TRY, json=http_rule("http://127.0.0.1:9/"))
    for response in (check, tried):
        assert response.status_code == 403
        assert response.get_json()["error"]["required_role"] == "editor"


def test_it_refuses_an_invalid_draft_as_saving_it_would_and_queues_nothing(app: Flask) -> None:
    client = app.test_client()
    draft = {**http_rule("ftp://nowhere"), "conditions": ["[STATUS] ==", "[ROWS] > 0"]}
    before = _queued(app)
    tried = client.post(TRY, json=draft)
    assert tried.status_code == 422
    saved = client.post("/api/v1/rules", json=draft)
    assert tried.get_json() == saved.get_json()
    fields = [e["field"] for e in tried.get_json()["error"]["errors"]]
    assert fields == ["target.url", "conditions[0]", "conditions[1]"]
    assert (_queued(app), _rules(app)) == (before, 0)


def test_it_queues_a_draft_named_like_a_rule_as_an_urgent_interactive_task(app: Flask) -> None:
    client = app.test_client()
    assert client.post("/api/v1/rules", json=http_rule("http://127.0.0.1:9/")).status_code == 201
    before = _queued(app)
    tried = client.post(TRY, json=http_rule("http://127.0.0.1:9/edited"))  # the same name
    assert tried.status_code == 202
    task_id = tried.get_json()["task_id"]
    assert _queued(app) == before + 1
    [message] = [m for m in _drain(app) if m.headers["id"] == task_id]
    assert message.headers["task"] == "rulewatch.try_rule"
    assert message.properties["priority"] == MAX_PRIORITY  # urgent, on a broker other than Redis
    assert message.headers["timelimit"] == [25.0, 15.0]  # the draft's 5 s timeout, + 20 / + 10
    assert _rules(app) == 1
    state = client.get(f"/api/v1/tasks/{task_id}").get_json()
    assert state == {"task_id": task_id, "state": "PENDING", "result": None}
