"""The API's bulk path: POST /api/v1/rules/import does what `rulewatch rules import` does."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from tests.targets import http_rule

# the import's SQL (bulk reads, inserts, grouped updates) differs by engine
pytestmark = pytest.mark.all_databases


def _rules(count: int, **extra: Any) -> list[dict[str, Any]]:
    return [http_rule(f"http://127.0.0.1:9/{i}", name=f"page {i}", **extra) for i in range(count)]


def _import(app: Flask, body: Any) -> Any:
    return app.test_client().post("/api/v1/rules/import", json=body)


def test_it_creates_changes_and_counts_rules_by_name(app: Flask) -> None:
    first = _import(app, {"rules": _rules(3)})
    assert first.status_code == 200, first.get_json()
    assert first.get_json() == {"created": 3, "updated": 0, "unchanged": 0}
    again = _import(app, {"rules": [*_rules(2), {"name": "page 2", "interval_s": 300}]})
    assert again.get_json() == {"created": 0, "updated": 1, "unchanged": 2}
    listed = app.test_client().get("/api/v1/rules").get_json()
    assert {r["name"]: r["interval_s"] for r in listed["rules"]} == {
        "page 0": 60, "page 1": 60, "page 2": 300,
    }  # fmt: skip


def test_it_stores_nothing_when_one_rule_is_bad_and_names_each_problem(app: Flask) -> None:
    rules = _rules(3)
    rules[1]["conditions"] = ["[STATUS] = 200"]
    rules[2]["tags"] = ["not a tag"]
    response = _import(app, {"rules": rules})
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "invalid_rule"
    assert [(e["field"], e.get("position")) for e in error["errors"]] == [
        ("rules[1].conditions[0]", 9), ("rules[2].tags[0]", None),
    ]  # fmt: skip
    assert app.test_client().get("/api/v1/rules").get_json()["total"] == 0


@pytest.mark.parametrize(
    ("body", "fields"),
    [({"rules": {"name": "x"}}, ["rules"]), ({"rule": []}, ["rule", "rules"]), ({}, ["rules"])],
)
def test_it_refuses_a_body_that_is_not_a_list_of_rules(
    app: Flask, body: dict[str, Any], fields: list[str]
) -> None:
    response = _import(app, body)
    assert response.status_code == 422
    assert [e["field"] for e in response.get_json()["error"]["errors"]] == fields
