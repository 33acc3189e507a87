"""API errors are JSON with a code and a message, whatever went wrong and wherever."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event

from rulewatch.db import transaction
from rulewatch.models import Rule, utcnow
from rulewatch.services.rules import create_rule
from tests.targets import http_rule

RULE_WRITE = re.compile(r"\s*(INSERT INTO|UPDATE) rules\b", re.IGNORECASE)
HUGE_IDS = [str(2**31), "99999999999999999999"]


def _create(app: Flask, data: dict[str, Any]) -> Any:
    return app.test_client().post("/api/v1/rules", json=data)


@pytest.mark.parametrize("raw", ["²", "\uff11", "1e3", "-1", " 5", "9" * 5000])
def test_it_rejects_a_limit_that_is_not_plain_ascii_digits(app: Flask, raw: str) -> None:
    response = app.test_client().get("/api/v1/rules", query_string={"limit": raw})
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "bad_parameter"
    assert error["errors"][0]["field"] == "limit"


def test_it_rejects_an_offset_in_superscript_digits(app: Flask) -> None:
    response = app.test_client().get("/api/v1/rules?offset=³")
    assert response.status_code == 400
    assert response.get_json()["error"]["errors"][0]["field"] == "offset"


@pytest.mark.parametrize("rule_id", HUGE_IDS, ids=["2**31", "20 digits"])
@pytest.mark.parametrize(
    ("method", "suffix"),
    [("get", ""), ("patch", ""), ("delete", ""), ("post", "/verify"), ("get", "/verifications")],
)
def test_it_answers_not_found_for_an_id_beyond_the_id_column(
    app: Flask, rule_id: str, method: str, suffix: str
) -> None:
    send = getattr(app.test_client(), method)
    response = send(f"/api/v1/rules/{rule_id}{suffix}", json={})
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_it_answers_an_id_too_long_for_the_router_with_json(app: Flask) -> None:
    response = app.test_client().get(f"/api/v1/rules/{'9' * 5000}")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_it_answers_an_unknown_api_path_with_json(app: Flask) -> None:
    response = app.test_client().get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.is_json
    error = response.get_json()["error"]
    assert error["code"] == "not_found"
    assert error["message"]


def test_it_answers_a_wrong_method_on_an_api_path_with_json_and_allow(app: Flask) -> None:
    response = app.test_client().put("/api/v1/rules")
    assert response.status_code == 405
    assert response.get_json()["error"]["code"] == "method_not_allowed"
    assert {"GET", "POST"} <= set(response.allow)


def test_it_answers_a_rule_id_that_is_not_a_number_with_json(app: Flask) -> None:
    response = app.test_client().get("/api/v1/rules/abc")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_it_leaves_errors_outside_the_api_to_flask(app: Flask) -> None:
    response = app.test_client().get("/no-such-page")
    assert response.status_code == 404
    assert response.mimetype == "text/html"


@contextmanager
def _name_taken_meanwhile(app: Flask, name: str) -> Iterator[None]:
    """Another writer stores a rule named ``name`` (and commits) just before the request
    writes its rule: the request checked the name while it was still free."""
    engine = app.extensions["rulewatch"].engine
    taken = threading.Event()

    def take_it_first(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if taken.is_set() or not RULE_WRITE.match(statement):
            return
        taken.set()  # before the insert below, which passes here too
        with transaction(app.extensions["rulewatch"].factory) as other:
            create_rule(other, http_rule("http://127.0.0.1:8080/c", name=name), utcnow())

    event.listen(engine, "before_cursor_execute", take_it_first)
    try:
        yield
    finally:
        event.remove(engine, "before_cursor_execute", take_it_first)
    assert taken.is_set(), "the request never wrote its rule"


@pytest.mark.all_databases  # each engine reports the unique name clash its own way
def test_it_answers_a_name_taken_by_a_concurrent_create_as_invalid(app: Flask) -> None:
    with _name_taken_meanwhile(app, "orders API"):
        response = _create(app, http_rule("http://127.0.0.1:8080/b", name="orders API"))
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "invalid_rule"
    assert [e["field"] for e in error["errors"]] == ["name"]
    assert app.test_client().get("/api/v1/rules").get_json()["total"] == 1


@pytest.mark.all_databases
def test_it_answers_a_name_taken_by_a_concurrent_rename_as_invalid(app: Flask) -> None:
    second = _create(app, http_rule("http://127.0.0.1:8080/b", name="second")).get_json()["id"]
    with _name_taken_meanwhile(app, "first"):
        response = app.test_client().patch(f"/api/v1/rules/{second}", json={"name": "first"})
    assert response.status_code == 422
    assert response.get_json()["error"]["errors"][0]["field"] == "name"
    with transaction(app.extensions["rulewatch"].factory) as session:
        assert session.get(Rule, second).name == "second"  # type: ignore[union-attr]


# found by the OpenAPI fuzzing (tests/api/test_api_fuzz.py) and kept as plain tests


@pytest.mark.parametrize("window_id", [*HUGE_IDS, str(2**64)], ids=["2**31", "20 digits", "2**64"])
@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_it_answers_not_found_for_a_window_id_beyond_the_id_column(
    app: Flask, window_id: str, method: str
) -> None:
    response = getattr(app.test_client(), method)(f"/api/v1/maintenance/{window_id}", json={})
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("url", "field"),
    [("/api/v1/notifications?status=sent%00", "status"), ("/api/v1/tokens?user=%00", "user"),
     ("/api/v1/rules?tag=a%00b", "tag"), ("/api/v1/tasks/a%00b", "task_id")],
)  # fmt: skip
def test_it_refuses_a_nul_character_in_a_parameter_naming_it(
    app: Flask, url: str, field: str
) -> None:
    response = app.test_client().get(url)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "nul_character"
    assert "U+0000" in error["message"]
    assert [e["field"] for e in error["errors"]] == [field]


def test_it_refuses_a_nul_character_anywhere_in_a_body_naming_each_field(app: Flask) -> None:
    rule = http_rule("http://127.0.0.1:8080/a", name="orders\x00", tags=["ok", "a\x00"])
    response = _create(app, rule)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "nul_character"
    assert [e["field"] for e in error["errors"]] == ["name", "tags[1]"]
    assert app.test_client().post("/api/v1/tokens", json={"label": "\x00"}).status_code == 400
    assert app.test_client().get("/api/v1/rules").get_json()["total"] == 0


@pytest.mark.parametrize("depth", [990, 100_000])
def test_it_answers_a_body_nested_too_deeply_with_400(app: Flask, depth: int) -> None:
    body = "[" * depth + "]" * depth
    response = app.test_client().post("/api/v1/rules", data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "bad_json"
