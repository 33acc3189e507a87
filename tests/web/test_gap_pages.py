"""The pages show monitor gaps: the rule page lists them and shades them on its chart, the
report gives each rule its unmonitored time."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask

from rulewatch.db import transaction
from rulewatch.domain.schedule import Schedule
from rulewatch.models import utcnow
from rulewatch.services.gaps import LateRun, record_gaps
from tests.targets import http_rule


def _rule_with_a_gap(app: Flask) -> int:
    created = app.test_client().post("/api/v1/rules", json=http_rule("http://127.0.0.1:9/x"))
    rule_id: int = created.get_json()["id"]
    due = utcnow() - timedelta(minutes=30)
    late = LateRun(rule_id, due, due + timedelta(seconds=150), Schedule(interval_s=10), 5.0)
    with transaction(app.extensions["rulewatch"].factory) as session:
        record_gaps(session, [late])
    return rule_id


def test_the_rule_page_lists_its_gaps_and_shades_them_on_the_chart(app: Flask) -> None:
    rule_id = _rule_with_a_gap(app)
    page = app.test_client().get(f"/rules/{rule_id}?window=1h").get_data(as_text=True)
    assert 'id="gaps"' in page and "(150 s): monitor could not run" in page
    assert '<path class="gap"' in page and "not verified in 1 gap (grey)" in page


def test_the_report_shows_each_rules_unmonitored_time(app: Flask) -> None:
    _rule_with_a_gap(app)
    page = app.test_client().get("/report?window=24h").get_data(as_text=True)
    assert "Unmonitored" in page and '<span class="gap">2 min</span>' in page
    assert "Missed due times are skipped, not replayed" in " ".join(page.split())


def test_metrics_count_the_gaps_and_their_seconds(app: Flask) -> None:
    _rule_with_a_gap(app)
    text = app.test_client().get("/metrics").get_data(as_text=True)
    assert "rulewatch_monitor_gaps_total 1.0" in text
    assert "rulewatch_monitor_gap_seconds_total 150.0" in text
