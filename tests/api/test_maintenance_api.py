"""Maintenance windows: CRUD through the API, and what a window does to alerts and rates."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from flask import Flask

from rulewatch.models import utcnow
from rulewatch.services.verification import Alerting, Job, verify_one
from tests.targets import Target, http_rule

POLICY = {"emails": ["ops@example.com"], "failure_threshold": 1, "success_threshold": 1}


def _window(**fields: Any) -> dict[str, Any]:
    start = utcnow() - timedelta(minutes=5)
    return {"name": "db upgrade", "starts_at": start.isoformat(), "duration_s": 3600, **fields}


def _rule(app: Flask, url: str, name: str = "orders API", **extra: Any) -> int:
    body = http_rule(url, name=name, alert=POLICY, **extra)
    response = app.test_client().post("/api/v1/rules", json=body)
    assert response.status_code == 201, response.get_json()
    rule_id: int = response.get_json()["id"]
    return rule_id


def _verify(app: Flask, rule_id: int) -> dict[str, Any]:
    runtime = app.extensions["rulewatch"]
    alerting = Alerting(runtime.settings.alerts, "http://x")
    job = Job(rule_id, str(uuid.uuid4()))
    return verify_one(runtime.factory, job, runtime.probe_context(), alerting)


def _kinds(app: Flask) -> list[str]:
    rows = app.test_client().get("/api/v1/notifications").get_json()["notifications"]
    return [n["kind"] for n in reversed(rows)]


def test_it_creates_lists_changes_and_deletes_a_window(app: Flask) -> None:
    client = app.test_client()
    created = client.post("/api/v1/maintenance", json=_window(comment="planned"))
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert body["active"] is True and body["scope"] == "all" and body["comment"] == "planned"
    assert body["next"]["ends_at"] > body["next"]["starts_at"]
    [listed] = client.get("/api/v1/maintenance").get_json()["maintenance"]
    assert listed["id"] == body["id"]
    later = (utcnow() + timedelta(days=1)).isoformat()
    changed = client.patch(f"/api/v1/maintenance/{body['id']}", json={"starts_at": later})
    assert changed.status_code == 200 and changed.get_json()["active"] is False
    assert client.get(f"/api/v1/maintenance/{body['id']}").get_json()["starts_at"] == later
    assert client.delete(f"/api/v1/maintenance/{body['id']}").status_code == 204
    assert client.get(f"/api/v1/maintenance/{body['id']}").status_code == 404
    assert client.get("/api/v1/maintenance").get_json()["maintenance"] == []


def test_it_shows_a_recurring_window_s_next_occurrence(app: Flask) -> None:
    start = utcnow().replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    body = app.test_client().post(
        "/api/v1/maintenance",
        json=_window(starts_at=start.isoformat(), cron="0 3 * * 0", timezone="Europe/Berlin",
                     duration_s=7200),
    ).get_json()  # fmt: skip
    starts = body["next"]["starts_at"]
    assert body["cron"] == "0 3 * * 0"
    from datetime import datetime
    from zoneinfo import ZoneInfo

    local = datetime.fromisoformat(starts).astimezone(ZoneInfo("Europe/Berlin"))
    assert (local.weekday(), local.hour, local.minute) == (6, 3, 0)


def test_it_rejects_bad_windows_naming_the_field_and_keeps_the_stored_one(app: Flask) -> None:
    client = app.test_client()
    cases = [
        (_window(duration_s=10), "duration_s"),
        (_window(starts_at="2026-01-01T00:00:00"), "starts_at"),  # no time zone
        (_window(cron="0 0 30 2 *"), "cron"),  # never fires
        (_window(scope="rule"), "rule_id"),
        (_window(scope="rule", rule_id=999), "rule_id"),
        (_window(scope="tag", tag="bad tag!"), "tag"),
        (_window(timezone="Mars/Olympus"), "timezone"),
        (_window(surprise=1), "surprise"),
    ]
    for body, field in cases:
        response = client.post("/api/v1/maintenance", json=body)
        assert response.status_code == 422, (body, response.get_json())
        error = response.get_json()["error"]
        assert error["code"] == "invalid_maintenance_window"
        assert field in {e["field"] for e in error["errors"]}, (field, error)
    good = client.post("/api/v1/maintenance", json=_window()).get_json()
    bad = client.patch(f"/api/v1/maintenance/{good['id']}", json={"duration_s": -1})
    assert bad.status_code == 422
    assert client.get(f"/api/v1/maintenance/{good['id']}").get_json()["duration_s"] == 3600
    assert client.post("/api/v1/maintenance", data="[").status_code == 400


def test_a_window_mutes_alerts_and_leaves_its_runs_out_of_the_rate(app: Flask) -> None:
    client = app.test_client()
    with Target() as target:
        muted = _rule(app, target.url, "muted", tags=["db"])
        other = _rule(app, target.url, "other")
        window = client.post("/api/v1/maintenance", json=_window(scope="tag", tag="db"))
        assert window.status_code == 201
        target.status = 500
        during = _verify(app, muted)
        _verify(app, other)
        assert during["status"] == "fail" and during["in_maintenance"] is True
        assert _kinds(app) == ["firing"], "only the rule outside the window alerts"
        rates = {
            r["name"]: r for r in client.get("/api/v1/stability?window=1h").get_json()["rules"]
        }
        assert rates["muted"]["maintenance"] == 1 and rates["muted"]["fail"] == 0
        assert rates["muted"]["rate"] is None
        assert rates["other"]["fail"] == 1 and rates["other"]["rate"] == 0.0
        client.delete(f"/api/v1/maintenance/{window.get_json()['id']}")
        after = _verify(app, muted)
    assert after["in_maintenance"] is False
    assert _kinds(app) == ["firing", "firing"], "the window over, the failure alerts"
    history = client.get(f"/api/v1/rules/{muted}/verifications").get_json()["verifications"]
    assert [v["in_maintenance"] for v in history] == [False, True]


def test_an_incident_open_before_a_window_is_neither_resolved_nor_reminded_during_it(
    app: Flask,
) -> None:
    client = app.test_client()
    with Target() as target:
        rule_id = _rule(app, target.url)
        target.status = 500
        _verify(app, rule_id)
        assert _kinds(app) == ["firing"]
        window = client.post("/api/v1/maintenance", json=_window(scope="rule", rule_id=rule_id))
        target.status = 200
        _verify(app, rule_id)
        assert _kinds(app) == ["firing"], "a pass during maintenance resolves nothing"
        [incident] = client.get("/api/v1/incidents?state=open").get_json()["incidents"]
        client.delete(f"/api/v1/maintenance/{window.get_json()['id']}")
        _verify(app, rule_id)
    assert _kinds(app) == ["firing", "resolved"]
    assert client.get("/api/v1/incidents?state=open").get_json()["incidents"] == []
    assert incident["rule_id"] == rule_id


def test_deleting_a_rule_deletes_its_windows(app: Flask) -> None:
    client = app.test_client()
    rule_id = _rule(app, "http://127.0.0.1:9/")
    client.post("/api/v1/maintenance", json=_window(scope="rule", rule_id=rule_id))
    assert client.delete(f"/api/v1/rules/{rule_id}").status_code == 204
    assert client.get("/api/v1/maintenance").get_json()["maintenance"] == []
