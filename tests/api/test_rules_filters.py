"""GET /api/v1/rules filters: status (pass, fail, error, paused, nodata) and q (name contains)."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import update

from rulewatch.db import transaction
from rulewatch.models import Rule, utcnow
from tests.targets import http_rule

# name search (LIKE, case folding) differs by engine
pytestmark = pytest.mark.all_databases


def _rule(app: Flask, name: str, last: str | None, enabled: bool = True, tag: str = "a") -> int:
    created = app.test_client().post("/api/v1/rules", json=http_rule(
        "http://127.0.0.1:9/", name=name, tags=[tag]))  # fmt: skip
    assert created.status_code == 201, created.get_json()
    rule_id: int = created.get_json()["id"]
    verified_at = utcnow() if last else None
    with transaction(app.extensions["rulewatch"].factory) as session:
        session.execute(update(Rule).where(Rule.id == rule_id).values(
            enabled=enabled, last_status=last, last_verified_at=verified_at))  # fmt: skip
    return rule_id


def _names(app: Flask, query: str) -> list[str]:
    response = app.test_client().get(f"/api/v1/rules?{query}")
    assert response.status_code == 200, response.get_json()
    return [r["name"] for r in response.get_json()["rules"]]


def _rules(app: Flask) -> None:
    _rule(app, "Orders API", "pass")
    _rule(app, "orders db", "fail", tag="b")
    _rule(app, "payments", "error")
    _rule(app, "paused orders", "fail", enabled=False)
    _rule(app, "new ORDERS feed", None)
    _rule(app, "100%_done", "pass", tag="b")


def test_it_filters_rules_by_status(app: Flask) -> None:
    _rules(app)
    assert set(_names(app, "status=pass")) == {"100%_done", "Orders API"}
    assert _names(app, "status=fail") == ["orders db"]
    assert _names(app, "status=error") == ["payments"]
    assert _names(app, "status=paused") == ["paused orders"]
    assert _names(app, "status=nodata") == ["new ORDERS feed"]
    assert len(_names(app, "status=all")) == len(_names(app, "")) == 6


def test_it_filters_rules_by_name_ignoring_case(app: Flask) -> None:
    _rules(app)
    # the order is the database's collation of names; the set is what the filter decides
    assert set(_names(app, "q=orders")) == {"new ORDERS feed", "Orders API", "orders db",
                                            "paused orders"}  # fmt: skip
    assert _names(app, "q=ORDERS+D") == ["orders db"]
    assert _names(app, "q=%25") == ["100%_done"], "% is a character, not a wildcard"
    assert _names(app, "q=_") == ["100%_done"], "_ is a character, not a wildcard"
    assert _names(app, "q=nothing") == []


def test_it_combines_filters_with_tag_and_pagination(app: Flask) -> None:
    _rules(app)
    assert _names(app, "q=orders&status=fail") == ["orders db"]
    assert _names(app, "q=orders&status=fail&tag=a") == []
    assert _names(app, "status=pass&tag=b") == ["100%_done"]
    everything = _names(app, "q=orders")
    page = app.test_client().get("/api/v1/rules?q=orders&limit=2&offset=1").get_json()
    assert [r["name"] for r in page["rules"]] == everything[1:3]
    assert (page["total"], page["limit"], page["offset"]) == (4, 2, 1)


def test_it_refuses_a_bad_status_or_q_naming_the_parameter(app: Flask) -> None:
    for query, field in [("status=passed", "status"), ("status=", "status"),
                         ("status=PASS", "status"), ("q=" + "x" * 201, "q")]:  # fmt: skip
        response = app.test_client().get(f"/api/v1/rules?{query}")
        assert response.status_code == 400, query
        error = response.get_json()["error"]
        assert error["code"] == "bad_parameter"
        assert error["errors"][0]["field"] == field
    assert app.test_client().get("/api/v1/rules?q=" + "x" * 200).status_code == 200
