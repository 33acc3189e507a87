"""verify_draft, the rule editor's test run: judged as a first run would be, kept nowhere."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from rulewatch.db import transaction
from rulewatch.models import (
    DailyRollup,
    HourlyRollup,
    Incident,
    Notification,
    Rule,
    Verification,
    utcnow,
)
from rulewatch.probes import ProbeContext
from rulewatch.services.rules import create_rule
from rulewatch.services.verification import verify_draft
from rulewatch.shapes import DraftVerification
from tests.targets import Target, closed_port, http_rule

NO_SOURCES = ProbeContext(datasources={})


def _resolved(result: dict[str, Any]) -> list[str]:
    return [c["resolved"] for c in result["conditions"]]


def _sql_draft(conditions: list[str], datasource: str) -> dict[str, Any]:
    target = {"datasource": datasource, "query": "SELECT count(*) FROM orders"}
    return {"name": "orders", "kind": "sql", "target": target, "conditions": conditions,
            "interval_s": 60}  # fmt: skip


def test_it_passes_a_draft_showing_each_condition_s_resolved_value() -> None:
    with Target() as target:
        result = verify_draft(http_rule(target.url), NO_SOURCES)
        assert target.hits == 1
    DraftVerification.model_validate(result)  # the shape the API promises
    assert (result["status"], result["error"]) == ("pass", None)
    assert result["conditions"][0] == {
        "condition": "[STATUS] == 200", "resolved": "[STATUS] (200) == 200", "ok": True,
    }  # fmt: skip
    assert "[BODY].status (UP) == UP" in _resolved(result)
    assert result["measured"]["status"] == 200
    assert set(result) == {"status", "started_at", "duration_ms", "conditions", "measured",
                           "error"}  # fmt: skip


def test_it_fails_a_draft_whose_target_answers_500_naming_the_condition_not_met() -> None:
    with Target() as target:
        target.status = 500
        result = verify_draft(http_rule(target.url), NO_SOURCES)
    assert result["status"] == "fail"
    assert result["error"] == "condition not met: [STATUS] (500) == 200"
    [failed] = [c for c in result["conditions"] if not c["ok"]]
    assert failed["resolved"] == "[STATUS] (500) == 200"


def test_it_fails_a_draft_whose_target_does_not_listen_with_the_connection_error() -> None:
    port = closed_port()
    result = verify_draft(http_rule(f"http://127.0.0.1:{port}/health"), NO_SOURCES)
    assert result["status"] == "fail"
    assert result["error"] == f"connection refused to 127.0.0.1:{port}"
    assert result["conditions"][0]["reason"] == f"[STATUS] unavailable: {result['error']}"
    assert result["measured"]["connected"] is False


def test_it_errors_a_sql_draft_whose_data_source_no_one_defined() -> None:
    result = verify_draft(_sql_draft(["[VALUE] > 0"], "nowhere"), NO_SOURCES)
    assert result["status"] == "error"
    assert result["error"] == "unknown data source 'nowhere'"


def test_it_reads_a_sql_draft_s_data_source_by_name_and_leaves_history_not_judged(
    tmp_path: Path,
) -> None:
    path = tmp_path / "warehouse.db"
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
        conn.executemany("INSERT INTO orders (id) VALUES (?)", [(1,), (2,), (3,)])
    ctx = ProbeContext(datasources={"warehouse": f"sqlite:///{path}"})
    result = verify_draft(_sql_draft(["[VALUE] == 3", "[CHANGE_PERCENT] > -50"], "warehouse"), ctx)
    assert result["status"] == "pass", result
    assert result["conditions"][0] == {
        "condition": "[VALUE] == 3", "resolved": "[VALUE] (3) == 3", "ok": True,
    }  # fmt: skip
    history = result["conditions"][1]
    assert history["ok"] is True and history["reason"].startswith("not judged: ")


def test_it_records_nothing_for_a_draft_of_an_existing_rule(
    factory: sessionmaker[Session],
) -> None:
    with Target() as target:
        with transaction(factory) as session:
            rule_id = create_rule(session, http_rule(target.url), utcnow()).id
        target.status = 503
        result = verify_draft(http_rule(target.url, tags=["edited"]), NO_SOURCES)
    assert result["status"] == "fail"
    with factory() as session:
        for table in (Verification, HourlyRollup, DailyRollup, Notification, Incident):
            count = session.scalar(select(func.count()).select_from(table))
            assert count == 0, table.__name__
        rule = session.get(Rule, rule_id)
        assert rule is not None
        assert (rule.last_status, rule.last_verified_at, rule.tag_names) == (None, None, [])
