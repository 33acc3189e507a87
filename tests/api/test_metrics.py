"""GET /metrics: what real verifications recorded, read back through the Prometheus format."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select, update

from rulewatch import create_app
from rulewatch.config import SmtpSettings, load_settings
from rulewatch.db import transaction
from rulewatch.migrate import upgrade
from rulewatch.models import Notification, Rule, utcnow
from rulewatch.services.notifications import send
from rulewatch.services.rules import create_rule
from rulewatch.services.scheduling import claim_due_rules
from rulewatch.services.verification import Alerting, Job, verify_jobs
from tests.auth import sign_in_test_clients
from tests.targets import Target, http_rule

POLICY = {"emails": ["ops@example.com"], "failure_threshold": 1, "success_threshold": 1}
TOKEN = "s3cret-scrape-token"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _scrape(app: Flask, token: str | None = None) -> Samples:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = app.test_client(token=None).get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.content_type.startswith("text/plain; version=0.0.4")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def _rule(app: Flask, data: dict[str, Any]) -> int:
    with transaction(app.extensions["rulewatch"].factory) as session:
        return create_rule(session, data, utcnow()).id


def _verify(app: Flask, *rule_ids: int) -> list[dict[str, Any]]:
    runtime = app.extensions["rulewatch"]
    alerting = Alerting(runtime.settings.alerts, "http://x")
    jobs = [Job(rule_id, str(uuid.uuid4())) for rule_id in rule_ids]
    return verify_jobs(runtime.factory, jobs, runtime.probe_context(), alerting)


def _unknown_source_rule() -> dict[str, Any]:
    target = {"datasource": "nowhere", "query": "SELECT 1"}
    return {"name": "warehouse", "kind": "sql", "target": target, "conditions": ["[VALUE] > 0"],
            "interval_s": 60}  # fmt: skip


def test_it_counts_verifications_by_kind_and_status(app: Flask) -> None:
    client = app.test_client()
    with Target() as target:
        api = _rule(app, http_rule(target.url, name="api"))
        muted = _rule(app, http_rule(target.url, name="muted", tags=["db"]))
        sql = _rule(app, _unknown_source_rule())  # no such data source: an error
        start = (utcnow() - timedelta(minutes=5)).isoformat()
        window = {"name": "db work", "starts_at": start, "duration_s": 3600, "scope": "tag",
                  "tag": "db"}  # fmt: skip
        assert client.post("/api/v1/maintenance", json=window).status_code == 201
        statuses = [r["status"] for r in _verify(app, api, api, muted, sql)]
        target.status = 500
        statuses += [r["status"] for r in _verify(app, api)]
    assert statuses == ["pass", "pass", "pass", "error", "fail"]  # muted's pass: maintenance
    samples = _scrape(app)
    expected = {
        ("http", "pass"): 2, ("http", "fail"): 1, ("http", "maintenance"): 1, ("http", "error"): 0,
        ("sql", "error"): 1, ("sql", "pass"): 0, ("tcp", "pass"): 0,
    }  # fmt: skip
    for (kind, status), count in expected.items():
        assert _value(samples, "rulewatch_verifications_total", kind=kind, status=status) == count
    assert _value(samples, "rulewatch_check_duration_seconds_count", kind="http") == 4
    assert _value(samples, "rulewatch_rules", state="enabled") == 3


def test_it_puts_a_300_ms_check_in_the_half_second_bucket(app: Flask) -> None:
    with Target() as target:
        rule_id = _rule(app, http_rule(target.url))
        target.delay_s = 0.3
        [result] = _verify(app, rule_id)
    # a loaded machine may stretch the check past half a second: then it belongs one bucket up
    seconds = result["duration_ms"] / 1000
    assert seconds >= 0.3
    samples = _scrape(app)
    bucket = "rulewatch_check_duration_seconds_bucket"
    assert _value(samples, bucket, kind="http", le="0.25") == 0
    assert _value(samples, bucket, kind="http", le="0.5") == (1 if seconds <= 0.5 else 0)
    assert _value(samples, bucket, kind="http", le="+Inf") == 1
    total = _value(samples, "rulewatch_check_duration_seconds_sum", kind="http")
    assert total == pytest.approx(seconds, abs=0.001)


def test_it_measures_how_late_scheduled_runs_started_and_leaves_manual_runs_out(
    app: Flask,
) -> None:
    factory = app.extensions["rulewatch"].factory
    with Target() as target:
        rule_id = _rule(app, http_rule(target.url))
        with transaction(factory) as session:
            session.execute(update(Rule).values(next_due_at=utcnow() - timedelta(seconds=3)))
        with transaction(factory) as session:
            [claim] = claim_due_rules(session, utcnow(), limit=10, ttl_s=60)
        ctx = app.extensions["rulewatch"].probe_context()
        [late] = verify_jobs(factory, [Job(rule_id, claim.verification_id, claim.due)], ctx)
        _verify(app, rule_id)  # a manual run: no schedule to be late for
    assert late["status"] == "pass"
    samples = _scrape(app)
    bucket = "rulewatch_schedule_lag_seconds_bucket"
    assert _value(samples, bucket, kind="http", le="2.0") == 0
    assert _value(samples, bucket, kind="http", le="5.0") == 1
    assert _value(samples, "rulewatch_schedule_lag_seconds_count", kind="http") == 1
    assert 3 <= _value(samples, "rulewatch_schedule_lag_seconds_sum", kind="http") < 5
    assert _value(samples, "rulewatch_check_duration_seconds_count", kind="http") == 2


def test_it_counts_open_incidents_and_notifications_by_status(app: Flask) -> None:
    factory = app.extensions["rulewatch"].factory
    with Target() as target:
        flaky = _rule(app, http_rule(target.url, name="flaky", alert=POLICY))
        down = _rule(app, http_rule(target.url, name="down", alert=POLICY))
        target.status = 500
        _verify(app, flaky, down)  # two incidents open, two firing emails queued
        target.status = 200
        _verify(app, flaky)  # flaky resolves: one more email queued
    with factory() as session:
        first = session.scalars(select(Notification.id).order_by(Notification.id)).first()
    assert first is not None
    assert send(factory, SmtpSettings(), first) == "unsent"  # no SMTP host: unsent, with why
    samples = _scrape(app)
    assert _value(samples, "rulewatch_incidents_open") == 1
    assert _value(samples, "rulewatch_notifications", status="pending") == 2
    assert _value(samples, "rulewatch_notifications", status="unsent") == 1
    assert _value(samples, "rulewatch_notifications", status="sent") == 0


def test_it_counts_enabled_and_disabled_rules(app: Flask) -> None:
    ids = [_rule(app, http_rule("http://127.0.0.1:9/", name=f"rule {i}")) for i in range(3)]
    with transaction(app.extensions["rulewatch"].factory) as session:
        session.execute(update(Rule).where(Rule.id == ids[0]).values(enabled=False))
    samples = _scrape(app)
    assert _value(samples, "rulewatch_rules", state="enabled") == 2
    assert _value(samples, "rulewatch_rules", state="disabled") == 1


def test_it_counts_due_runs_dispatched_again_after_their_claim_expired(app: Flask) -> None:
    ids = [_rule(app, http_rule("http://127.0.0.1:9/", name=f"rule {i}")) for i in range(3)]
    factory = app.extensions["rulewatch"].factory
    now = utcnow()
    with transaction(factory) as session:
        session.execute(update(Rule).values(next_due_at=now - timedelta(seconds=1)))
        assert len(claim_due_rules(session, now, limit=10, ttl_s=1)) == 3
    with transaction(factory) as session:  # two of the three claims expire unrecorded
        session.execute(update(Rule).where(Rule.id != ids[0]).values(claimed_until=now))
        assert len(claim_due_rules(session, now + timedelta(seconds=0.5), 10, ttl_s=1)) == 2
    assert _value(_scrape(app), "rulewatch_redispatched_total") == 2


@pytest.fixture
def sqlite_app(tmp_path: Path) -> Flask:
    """An app on a migrated SQLite database, made by each test with its own settings."""
    url = f"sqlite:///{tmp_path / 'rulewatch.db'}"
    upgrade(url)
    base = load_settings({"RULEWATCH_HOME": str(tmp_path / "home")})
    settings = replace(base, database_url=url, broker_url="memory://",
                       result_backend="cache+memory://", metrics_token=TOKEN)  # fmt: skip
    app = create_app(settings)
    sign_in_test_clients(app)  # clients send a user's API token unless told token=None
    return app


@pytest.mark.parametrize(
    "header", [None, "Bearer wrong", "Bearer s3cret-scrape-tokenX", "s3cret-scrape-token",
               "Basic czNjcmV0LXNjcmFwZS10b2tlbg=="],
)  # fmt: skip
def test_it_refuses_a_scrape_without_the_metrics_token(
    sqlite_app: Flask, header: str | None
) -> None:
    headers = {"Authorization": header} if header else {}
    response = sqlite_app.test_client(token=None).get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert b"rulewatch_" not in response.data


def test_it_answers_a_scrape_with_the_metrics_token(sqlite_app: Flask) -> None:
    samples = _scrape(sqlite_app, token=TOKEN)
    assert _value(samples, "rulewatch_incidents_open") == 0


def test_it_does_not_take_a_users_api_token_for_the_metrics_token(sqlite_app: Flask) -> None:
    assert sqlite_app.test_client().get("/api/v1/me").status_code == 200
    assert sqlite_app.test_client().get("/metrics").status_code == 401


def test_it_is_open_when_no_metrics_token_is_set(app: Flask) -> None:
    response = app.test_client(token=None).get("/metrics")
    assert response.status_code == 200
    assert b"# TYPE rulewatch_verifications_total counter" in response.data


def test_it_serves_a_scrape_from_figures_read_a_few_seconds_ago(app: Flask) -> None:
    rule_id = _rule(app, http_rule("http://127.0.0.1:9/"))
    first = _scrape(app)
    _verify(app, rule_id)
    cached = _scrape(app)
    app.extensions["rulewatch_metrics"].ttl_s = 0
    fresh = _scrape(app)
    name = "rulewatch_verifications_total"
    assert _value(first, name, kind="http", status="fail") == 0
    assert _value(cached, name, kind="http", status="fail") == 0, "read again within CACHE_S"
    assert _value(fresh, name, kind="http", status="fail") == 1


def test_it_answers_503_when_the_database_does_not(tmp_path: Path) -> None:
    base = load_settings({"RULEWATCH_HOME": str(tmp_path / "home")})
    url = f"sqlite:///{tmp_path / 'no such folder' / 'rulewatch.db'}"
    app = create_app(replace(base, database_url=url, broker_url="memory://",
                             result_backend="cache+memory://"))  # fmt: skip
    response = app.test_client().get("/metrics")
    assert response.status_code == 503
    assert b"the database (sqlite rulewatch.db) is unavailable" in response.data
