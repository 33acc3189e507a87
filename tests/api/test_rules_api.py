"""The rules API: create, read, change, delete, and clear errors for bad input."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import pytest
from flask import Flask

from rulewatch import create_app
from rulewatch.config import Settings
from tests.auth import sign_in_test_clients
from tests.targets import http_rule


def _create(app: Flask, data: dict[str, Any]) -> Any:
    return app.test_client().post("/api/v1/rules", json=data)


def test_it_creates_a_rule_and_returns_it_with_an_id(app: Flask) -> None:
    response = _create(app, http_rule("http://127.0.0.1:8080/health", tags=["payments"]))
    assert response.status_code == 201
    body = response.get_json()
    assert isinstance(body["id"], int)
    assert body["tags"] == ["payments"]
    assert body["target"]["method"] == "GET"
    fetched = app.test_client().get(f"/api/v1/rules/{body['id']}").get_json()
    assert fetched["name"] == "orders API"


def test_it_rejects_a_bad_condition_naming_the_field_and_position(app: Flask) -> None:
    rule = http_rule("http://127.0.0.1:8080/health")
    rule["conditions"] = ["[STATUS] == 200", "[STATUS] = 200"]
    response = _create(app, rule)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "invalid_rule"
    [detail] = error["errors"]
    assert detail["field"] == "conditions[1]"
    assert isinstance(detail["position"], int)
    assert app.test_client().get("/api/v1/rules").get_json()["total"] == 0


def test_it_rejects_a_placeholder_of_another_kind(app: Flask) -> None:
    rule = http_rule("http://127.0.0.1:8080/health")
    rule["conditions"] = ["[ROWS] > 0"]
    response = _create(app, rule)
    assert response.status_code == 422
    assert response.get_json()["error"]["errors"][0]["field"] == "conditions[0]"


def test_it_refuses_a_sql_rule_that_drops_a_table(app: Flask) -> None:
    rule = {
        "name": "evil", "kind": "sql", "interval_s": 60, "conditions": ["[ROWS] > 0"],
        "target": {"datasource": "warehouse", "query": "DROP TABLE orders"},
    }  # fmt: skip
    response = _create(app, rule)
    assert response.status_code == 422
    assert response.get_json()["error"]["errors"][0]["field"] == "target.query"


def test_it_names_each_bad_field(app: Flask) -> None:
    rule = http_rule("ftp://example", interval_s=0, stability_target=2, colour="red")
    response = _create(app, rule)
    fields = {e["field"] for e in response.get_json()["error"]["errors"]}
    assert {"stability_target", "colour", "target.url", "interval_s"} <= fields


def test_it_reports_condition_and_schedule_errors_with_a_bad_base_field(app: Flask) -> None:
    rule = http_rule("http://127.0.0.1:8080/a", name="", interval_s=None, cron="61 * * * *")
    rule["conditions"] = ["[STATUS] == 200", "[STATUS] =="]
    response = _create(app, rule)
    fields = [e["field"] for e in response.get_json()["error"]["errors"]]
    assert fields == ["name", "conditions[1]", "cron"]


def test_it_checks_only_the_parts_whose_own_fields_are_sound(app: Flask) -> None:
    rule = http_rule("ftp://x", kind="smtp", interval_s="often")
    rule["conditions"] = [7, "[STATUS] =="]
    response = _create(app, rule)
    fields = [e["field"] for e in response.get_json()["error"]["errors"]]
    assert sorted(fields) == ["conditions[0]", "interval_s", "kind"]


# valid but longer than the columns (cron 120, timezone 64), so only the length can stop them
LONG_CRON = ",".join(str(m) for m in range(60)) + " * * * *"
LONG_ZONE = "America/Argentina/Buenos_Aires/" + "x" * 40


@pytest.mark.parametrize(("field", "value"), [("cron", LONG_CRON), ("timezone", LONG_ZONE)])
def test_it_rejects_a_schedule_field_longer_than_its_column(
    app: Flask, field: str, value: str
) -> None:
    rule = http_rule("http://127.0.0.1:8080/a", interval_s=None, cron="* * * * *")
    rule[field] = value
    response = _create(app, rule)
    assert response.status_code == 422
    assert [e["field"] for e in response.get_json()["error"]["errors"]] == [field]


def test_it_switches_an_interval_rule_to_cron_by_patching_cron_alone(app: Flask) -> None:
    rule_id = _create(app, http_rule("http://127.0.0.1:8080/a")).get_json()["id"]
    response = app.test_client().patch(f"/api/v1/rules/{rule_id}", json={"cron": "*/5 * * * *"})
    assert response.status_code == 200
    body = response.get_json()
    assert (body["interval_s"], body["cron"]) == (None, "*/5 * * * *")


def test_it_switches_a_cron_rule_to_an_interval_by_patching_interval_s_alone(app: Flask) -> None:
    rule = http_rule("http://127.0.0.1:8080/a", interval_s=None, cron="0 3 * * *")
    rule_id = _create(app, rule).get_json()["id"]
    response = app.test_client().patch(f"/api/v1/rules/{rule_id}", json={"interval_s": 300})
    assert response.status_code == 200
    body = response.get_json()
    assert (body["interval_s"], body["cron"]) == (300, None)


def test_it_still_refuses_a_patch_that_sets_both_interval_and_cron(app: Flask) -> None:
    rule_id = _create(app, http_rule("http://127.0.0.1:8080/a")).get_json()["id"]
    patch = {"interval_s": 30, "cron": "* * * * *"}
    response = app.test_client().patch(f"/api/v1/rules/{rule_id}", json=patch)
    assert response.status_code == 422
    assert "exactly one" in response.get_json()["error"]["message"]


def test_it_rejects_a_body_that_is_not_an_object(app: Flask) -> None:
    response = app.test_client().post("/api/v1/rules", data="[1,2", content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "bad_json"


def test_it_rejects_a_duplicate_name(app: Flask) -> None:
    assert _create(app, http_rule("http://127.0.0.1:8080/a")).status_code == 201
    response = _create(app, http_rule("http://127.0.0.1:8080/b"))
    assert response.status_code == 422
    assert response.get_json()["error"]["errors"][0]["field"] == "name"


def test_it_patches_a_rule_and_keeps_it_whole_when_the_patch_is_bad(app: Flask) -> None:
    client = app.test_client()
    rule_id = _create(app, http_rule("http://127.0.0.1:8080/a")).get_json()["id"]
    ok = client.patch(f"/api/v1/rules/{rule_id}", json={"enabled": False, "tags": ["x"]})
    assert ok.status_code == 200 and ok.get_json()["enabled"] is False
    bad = client.patch(f"/api/v1/rules/{rule_id}", json={"conditions": ["[STATUS] =="]})
    assert bad.status_code == 422
    after = client.get(f"/api/v1/rules/{rule_id}").get_json()
    assert after["conditions"] == http_rule("x")["conditions"]
    assert after["tags"] == ["x"]


def test_it_deletes_a_rule(app: Flask) -> None:
    client = app.test_client()
    rule_id = _create(app, http_rule("http://127.0.0.1:8080/a")).get_json()["id"]
    assert client.delete(f"/api/v1/rules/{rule_id}").status_code == 204
    response = client.get(f"/api/v1/rules/{rule_id}")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_it_filters_rules_by_tag_and_paginates(app: Flask) -> None:
    for i in range(5):
        _create(
            app,
            http_rule(
                "http://127.0.0.1:8080/a", name=f"r{i}", tags=["even" if i % 2 == 0 else "odd"]
            ),
        )
    client = app.test_client()
    even = client.get("/api/v1/rules?tag=even").get_json()
    assert even["total"] == 3
    page = client.get("/api/v1/rules?limit=2&offset=2").get_json()
    assert [r["name"] for r in page["rules"]] == ["r2", "r3"]
    assert client.get("/api/v1/rules?limit=0").status_code == 400


def test_it_reports_no_data_rather_than_a_perfect_rate(app: Flask) -> None:
    _create(app, http_rule("http://127.0.0.1:8080/a"))
    body = app.test_client().get("/api/v1/stability?window=24h").get_json()
    assert body["rules"][0]["rate"] is None
    assert body["overall"]["rate"] is None
    bad = app.test_client().get("/api/v1/stability?window=7x")
    assert bad.status_code == 400


def test_it_serves_the_report_page_and_health(app: Flask) -> None:
    _create(app, http_rule("http://127.0.0.1:8080/a", name="<script>x</script>"))
    client = app.test_client()
    assert client.get("/reports/stability?window=7d").headers["Location"] == "/report?window=7d"
    page = client.get("/report?window=7d")
    assert page.status_code == 200
    assert b"&lt;script&gt;x&lt;/script&gt;" in page.data
    assert b"no data" in page.data
    assert client.get("/healthz").get_json() == {"status": "ok", "database": "ok"}


def test_it_stores_an_alert_policy_with_its_defaults(app: Flask) -> None:
    rule = http_rule("http://127.0.0.1:8080/a", alert={"emails": ["ops@example.com"]})
    body = _create(app, rule).get_json()
    assert body["alert"] == {
        "emails": ["ops@example.com"], "failure_threshold": 3, "success_threshold": 2,
        "send_on_resolved": True, "reminder_interval_s": 0,
    }  # fmt: skip
    assert _create(app, http_rule("http://127.0.0.1:8080/b", name="b")).get_json()["alert"] is None


def test_it_rejects_a_bad_alert_policy_naming_each_field(app: Flask) -> None:
    rule = http_rule(
        "http://127.0.0.1:8080/a",
        alert={"emails": ["not-an-address"], "failure_threshold": 0, "reminder_interval_s": 30},
    )
    response = _create(app, rule)
    assert response.status_code == 422
    fields = {e["field"] for e in response.get_json()["error"]["errors"]}
    assert fields == {"alert.emails[0]", "alert.failure_threshold", "alert.reminder_interval_s"}


def test_it_lists_notifications_with_the_reason_they_were_not_sent(app: Flask) -> None:
    from rulewatch.services.notifications import send

    rule = http_rule("http://127.0.0.1:9/", alert={"emails": ["ops@example.com"],
                                                   "failure_threshold": 1})  # fmt: skip
    rule_id = _create(app, rule).get_json()["id"]
    runtime = app.extensions["rulewatch"]
    from rulewatch.services.verification import Alerting, Job, verify_one

    alerting = Alerting(runtime.settings.alerts, "http://x")
    verify_one(runtime.factory, Job(rule_id, "00000000-0000-4000-8000-000000000001"),
               runtime.probe_context(), alerting)  # fmt: skip
    [row] = app.test_client().get("/api/v1/notifications").get_json()["notifications"]
    assert (row["kind"], row["status"], row["rule_id"]) == ("firing", "pending", rule_id)
    send(runtime.factory, runtime.settings.smtp, row["id"])  # no SMTP host configured
    [row] = app.test_client().get("/api/v1/notifications?status=unsent").get_json()["notifications"]
    assert "RULEWATCH_SMTP_HOST" in row["last_error"]
    assert app.test_client().get("/api/v1/notifications?status=sent").get_json() == {
        "notifications": []
    }


def _firing_rule(app: Flask, name: str) -> int:
    from rulewatch.services.verification import Alerting, Job, verify_one

    rule = http_rule("http://127.0.0.1:9/", name=name,
                     alert={"emails": ["ops@example.com"], "failure_threshold": 1})  # fmt: skip
    rule_id: int = _create(app, rule).get_json()["id"]
    runtime = app.extensions["rulewatch"]
    alerting = Alerting(runtime.settings.alerts, "http://x")
    verify_one(runtime.factory, Job(rule_id, str(uuid.uuid4())), runtime.probe_context(), alerting)
    return rule_id


def _notifications(app: Flask) -> list[dict[str, Any]]:
    body = app.test_client().get("/api/v1/notifications").get_json()
    return list(reversed(body["notifications"]))


def test_it_resolves_an_open_incident_when_its_rule_is_disabled_or_deleted(app: Flask) -> None:
    disabled = _firing_rule(app, "disabled one")
    deleted = _firing_rule(app, "deleted one")
    assert disabled != deleted
    client = app.test_client()
    assert client.patch(f"/api/v1/rules/{disabled}", json={"enabled": False}).status_code == 200
    assert client.delete(f"/api/v1/rules/{deleted}").status_code == 204
    kinds = [(n["kind"], n["subject"], n["rule_id"]) for n in _notifications(app)]
    assert kinds == [
        ("firing", "[FIRING] disabled one", disabled),
        ("firing", "[FIRING] deleted one", None),  # the outbox outlives its rule
        ("resolved", "[RESOLVED] disabled one", disabled),
        ("resolved", "[RESOLVED] deleted one", None),
    ]
    runtime = app.extensions["rulewatch"]
    from rulewatch.models import Notification

    with runtime.factory() as session:
        bodies = [n.body_text for n in session.query(Notification).order_by(Notification.id)]
    assert "the rule was disabled" in bodies[2] and "the rule was deleted" in bodies[3]


def test_it_lists_open_and_resolved_incidents(app: Flask) -> None:
    first = _firing_rule(app, "first")
    second = _firing_rule(app, "second")
    client = app.test_client()
    assert {
        i["rule_id"] for i in client.get("/api/v1/incidents?state=open").get_json()["incidents"]
    } == {first, second}
    client.patch(f"/api/v1/rules/{first}", json={"enabled": False})
    [still_open] = client.get("/api/v1/incidents?state=open").get_json()["incidents"]
    assert still_open["rule_id"] == second
    [closed] = client.get(f"/api/v1/incidents?rule_id={first}").get_json()["incidents"]
    assert closed["state"] == "resolved"
    assert closed["resolve_reason"] == "the rule was disabled"
    assert client.get("/api/v1/incidents?state=closed").status_code == 400


def test_it_answers_a_pause_whose_email_cannot_be_enqueued_and_leaves_the_row_to_the_relay(
    settings: Settings,
) -> None:
    from rulewatch.models import Notification

    down = create_app(replace(settings, broker_url="redis://127.0.0.1:9/0"))  # nothing listens
    down.config["TESTING"] = True
    sign_in_test_clients(down)
    rule_id = _firing_rule(down, "paused one")
    response = down.test_client().patch(f"/api/v1/rules/{rule_id}", json={"enabled": False})
    assert response.status_code == 200 and response.get_json()["enabled"] is False
    with down.extensions["rulewatch"].factory() as session:
        rows = session.query(Notification).order_by(Notification.id).all()
    assert [(n.kind, n.status) for n in rows] == [("firing", "pending"), ("resolved", "pending")]
