"""Reports through the API: POST starts the report task, GET answers its HTML once done."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from celery.signals import before_task_publish
from flask import Flask

from rulewatch.models import utcnow
from rulewatch.services.report_tasks import ReportTaskIds
from tests.auth import token_for
from tests.targets import http_rule


@pytest.fixture
def published() -> Iterator[list[dict[str, Any]]]:
    """The task messages sent to the broker while the test runs."""
    sent: list[dict[str, Any]] = []

    def record(sender: str, headers: dict[str, Any], body: Any, routing_key: str,
               **_: Any) -> None:  # fmt: skip
        sent.append(
            {"task": sender, "id": headers["id"], "args": list(body[0]), "queue": routing_key}
        )

    before_task_publish.connect(record, weak=False)
    yield sent
    before_task_publish.disconnect(record)


def _viewer(app: Flask) -> Any:
    return app.test_client(token=token_for(app, "vera", "viewer"))


def test_a_viewer_starts_a_report_on_the_reports_queue(
    app: Flask, published: list[dict[str, Any]]
) -> None:
    response = _viewer(app).post("/api/v1/reports", json={"window": "7d", "tag": "payments"})
    assert response.status_code == 202
    body = response.get_json()
    assert body == {"task_id": body["task_id"], "state": "PENDING"}
    assert response.headers["Location"] == f"/api/v1/reports/{body['task_id']}"
    assert published == [{"task": "rulewatch.get_stable_rates_html", "id": body["task_id"],
                          "args": ["7d", "payments"], "queue": "reports"}]  # fmt: skip


def test_it_starts_a_seven_day_report_without_a_body(
    app: Flask, published: list[dict[str, Any]]
) -> None:
    assert app.test_client().post("/api/v1/reports").status_code == 202
    assert published[0]["args"] == ["7d", None]


def test_it_answers_202_with_the_state_while_the_report_is_pending(app: Flask) -> None:
    task_id = (
        app.test_client().post("/api/v1/reports", json={"window": "24h"}).get_json()["task_id"]
    )
    response = _viewer(app).get(f"/api/v1/reports/{task_id}")
    assert response.status_code == 202
    assert response.get_json() == {"task_id": task_id, "state": "PENDING"}


def test_it_answers_the_report_html_once_the_task_is_done(app: Flask) -> None:
    app.test_client().post("/api/v1/rules", json=http_rule("http://127.0.0.1:9/", name="shop"))
    celery = app.extensions["celery"]
    celery.conf.update(task_always_eager=True, task_store_eager_result=True)
    task_id = (
        app.test_client().post("/api/v1/reports", json={"window": "24h"}).get_json()["task_id"]
    )
    response = _viewer(app).get(f"/api/v1/reports/{task_id}")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert html.lstrip().lower().startswith("<!doctype html") and "shop" in html


def test_it_answers_404_for_a_task_it_did_not_start(app: Flask) -> None:
    client = _viewer(app)
    issued = client.post("/api/v1/reports", json={}).get_json()["task_id"]
    other_key = ReportTaskIds.from_secret_keys("x" * 40).new(utcnow())
    forged = issued[:-1] + ("0" if issued[-1] != "0" else "1")
    for task_id in (str(uuid.uuid4()), other_key, forged, "report-1-2-3", issued + "0"):
        response = client.get(f"/api/v1/reports/{task_id}")
        assert response.status_code == 404, task_id
        assert response.get_json()["error"]["code"] == "not_found"
    assert client.get(f"/api/v1/reports/{issued}").status_code == 202


def test_it_answers_404_once_a_result_would_have_expired(app: Flask) -> None:
    ids = ReportTaskIds.from_secret_keys(app.config["SECRET_KEY"])
    lifetime = timedelta(seconds=app.extensions["celery"].conf.result_expires)
    old = ids.new(utcnow() - lifetime - timedelta(minutes=1))
    recent = ids.new(utcnow() - lifetime + timedelta(minutes=1))
    assert app.test_client().get(f"/api/v1/reports/{old}").status_code == 404
    assert app.test_client().get(f"/api/v1/reports/{recent}").status_code == 202


def test_it_says_when_a_report_task_failed(app: Flask) -> None:
    task_id = app.test_client().post("/api/v1/reports", json={}).get_json()["task_id"]
    app.extensions["celery"].backend.mark_as_failure(task_id, RuntimeError("database gone"))
    response = app.test_client().get(f"/api/v1/reports/{task_id}")
    assert response.status_code == 500
    error = response.get_json()["error"]
    assert error["code"] == "report_failed"
    assert "RuntimeError: database gone" in error["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [({"window": "7x"}, "window"), ({"window": "0h"}, "window"), ({"window": "401d"}, "window"),
     ({"window": 7}, "window"), ({"window": None}, "window"), ({"tag": "bad tag"}, "tag"),
     ({"tag": ["a"]}, "tag"), ({"window": "7d", "format": "pdf"}, "format")],
)  # fmt: skip
def test_it_refuses_a_bad_report_request_naming_the_field(
    app: Flask, published: list[dict[str, Any]], body: dict[str, Any], field: str
) -> None:
    response = app.test_client().post("/api/v1/reports", json=body)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "bad_parameter"
    assert [e["field"] for e in error["errors"]] == [field]
    assert published == []
