"""The dashboard, the rule editor, a rule's page, the report page and the YAML import."""

from __future__ import annotations

import json
import uuid

from flask import Flask
from sqlalchemy import func, select, update

from rulewatch.db import transaction
from rulewatch.models import Rule
from rulewatch.services.verification import Job, verify_one
from tests.auth import token_for
from tests.targets import Target, http_rule
from tests.web.page_forms import csrf_token, row_ids, text_of

FORM = {
    "name": "shop health", "kind": "http", "url": "http://127.0.0.1:9/health", "method": "GET",
    "conditions": "[STATUS] == 200\n[RESPONSE_TIME] < 500", "interval_s": "30",
    "timezone": "UTC", "tags": "shop, prod", "stability_target": "99.5", "enabled": "y",
    "follow_redirects": "y", "verify_tls": "y",
}  # fmt: skip


def _rule_count(app: Flask) -> int:
    with app.extensions["rulewatch"].factory() as session:
        return session.scalar(select(func.count()).select_from(Rule)) or 0


def _add(app: Flask, name: str, status: str | None = None, **extra: object) -> int:
    answer = app.test_client().post(
        "/api/v1/rules", json=http_rule("http://127.0.0.1:9/", name, **extra)
    )
    assert answer.status_code == 201, answer.get_json()
    rule_id: int = answer.get_json()["id"]
    if status:
        with transaction(app.extensions["rulewatch"].factory) as session:
            session.execute(update(Rule).where(Rule.id == rule_id).values(last_status=status))
    return rule_id


def _verify(app: Flask, rule_id: int) -> None:
    rt = app.extensions["rulewatch"]
    verify_one(rt.factory, Job(rule_id, str(uuid.uuid4())), rt.probe_context())


def test_it_shows_an_empty_state_with_create_and_import_buttons(app: Flask) -> None:
    page = app.test_client().get("/").get_data(as_text=True)
    empty = text_of(page, "empty-state") or ""
    assert "No rules yet" in empty
    assert 'href="/rules/new" id="create-first-rule"' in page
    assert 'href="/rules/import" id="import-yaml"' in page


def test_it_lists_failing_rules_first_with_a_badge_for_each_status(app: Flask) -> None:
    ok = _add(app, "a passing", "pass")
    bad = _add(app, "z failing", "fail")
    broken = _add(app, "m erroring", "error")
    fresh = _add(app, "b never verified")
    paused = _add(app, "c paused", "fail", enabled=False)
    page = app.test_client().get("/").get_data(as_text=True)
    assert row_ids(page) == [bad, broken, fresh, ok, paused]
    for rule_id, status in ((ok, "pass"), (bad, "fail"), (broken, "error"), (fresh, "nodata"),
                            (paused, "paused")):  # fmt: skip
        row = page[page.index(f'data-rule-id="{rule_id}"') :]
        assert row.split("</tr>")[0].count(f'data-status="{status}"') == 1, status


def test_it_filters_the_dashboard_by_status_tag_and_text(app: Flask) -> None:
    shop = _add(app, "Shop checkout", "fail", tags=["shop"])
    _add(app, "Blog home", "pass", tags=["blog"])
    client = app.test_client()
    assert row_ids(client.get("/?status=fail").get_data(as_text=True)) == [shop]
    assert row_ids(client.get("/?tag=shop").get_data(as_text=True)) == [shop]
    assert row_ids(client.get("/?q=CHECK").get_data(as_text=True)) == [shop]
    nothing = client.get("/?q=nothing-like-this").get_data(as_text=True)
    assert row_ids(nothing) == [] and "No rule matches" in (text_of(nothing, "no-match") or "")


def test_it_pages_the_dashboard_fifty_rules_at_a_time(app: Flask) -> None:
    client = app.test_client()
    rules = [http_rule("http://127.0.0.1:9/", f"rule {i:02}") for i in range(51)]
    answer = client.post("/rules/import", data={
        "text": json.dumps(rules), "csrf_token": csrf_token(client, "/rules/import")})  # fmt: skip
    assert answer.status_code == 302
    first = client.get("/").get_data(as_text=True)
    second = client.get("/?page=2").get_data(as_text=True)
    assert len(row_ids(first)) == 50 and len(row_ids(second)) == 1
    assert "Page 1 of 2" in first and 'rel="next" href="?page=2"' in first


def test_it_creates_a_rule_from_the_editor_form(app: Flask) -> None:
    client = app.test_client()
    answer = client.post(
        "/rules/new", data={**FORM, "csrf_token": csrf_token(client, "/rules/new")}
    )
    assert answer.status_code == 302
    rule = client.get("/api/v1/rules?q=shop").get_json()["rules"][0]
    assert answer.headers["Location"] == f"/rules/{rule['id']}"
    assert rule["target"]["url"] == FORM["url"] and rule["interval_s"] == 30
    assert rule["conditions"] == ["[STATUS] == 200", "[RESPONSE_TIME] < 500"]
    assert rule["tags"] == ["prod", "shop"] and rule["stability_target"] == 0.995
    assert rule["alert"] is None


def test_it_shows_an_invalid_condition_next_to_the_field_and_saves_nothing(app: Flask) -> None:
    client = app.test_client()
    data = {
        **FORM,
        "conditions": "[STATUS] == 200\n[STATUS] ==",
        "csrf_token": csrf_token(client, "/rules/new"),
    }
    answer = client.post("/rules/new", data=data)
    assert answer.status_code == 422
    error = text_of(answer.get_data(as_text=True), "conditions-error") or ""
    assert error.startswith("line 2: ") and "position 11" in error
    assert _rule_count(app) == 0


def test_it_edits_a_rule_and_keeps_it_unchanged_on_an_error(app: Flask) -> None:
    rule_id = _add(app, "orders", tags=["shop"])
    client = app.test_client()
    form = client.get(f"/rules/{rule_id}/edit").get_data(as_text=True)
    assert 'value="orders"' in form and "[BODY].status == UP" in form
    token = csrf_token(client, f"/rules/{rule_id}/edit")
    bad = client.post(
        f"/rules/{rule_id}/edit",
        data={**FORM, "name": "orders", "url": "ftp://x", "csrf_token": token},
    )
    assert (
        bad.status_code == 422
        and "url" in (text_of(bad.get_data(as_text=True), "field-url") or "").lower()
    )
    assert (
        client.get(f"/api/v1/rules/{rule_id}").get_json()["target"]["url"] == "http://127.0.0.1:9/"
    )
    good = client.post(
        f"/rules/{rule_id}/edit", data={**FORM, "name": "orders v2", "csrf_token": token}
    )
    assert good.status_code == 302
    assert client.get(f"/api/v1/rules/{rule_id}").get_json()["name"] == "orders v2"


def test_it_puts_a_taken_name_on_the_name_field(app: Flask) -> None:
    _add(app, "shop health")
    client = app.test_client()
    answer = client.post(
        "/rules/new", data={**FORM, "csrf_token": csrf_token(client, "/rules/new")}
    )
    assert answer.status_code == 422
    assert "shop health" in (text_of(answer.get_data(as_text=True), "field-name") or "")
    assert _rule_count(app) == 1


def test_it_shows_a_rules_history_verifications_and_conditions(app: Flask) -> None:
    with Target() as target:
        rule_id = _add(app, "orders")
        with transaction(app.extensions["rulewatch"].factory) as session:
            rule = session.get(Rule, rule_id)
            assert rule is not None
            rule.target = {"url": target.url, "timeout_s": 5}
        _verify(app, rule_id)
        target.status = 500
        _verify(app, rule_id)
    page = app.test_client().get(f"/rules/{rule_id}").get_data(as_text=True)
    assert 'class="chart' in page and "<svg" in page
    recent = text_of(page, "verifications") or ""
    assert "[STATUS] (200) == 200" in recent and "[STATUS] (500) == 200" in recent
    status = text_of(page, "rule-status") or ""
    assert "fail" in status


def test_it_queues_verify_now_and_follows_the_task(app: Flask) -> None:
    rule_id = _add(app, "orders")
    client = app.test_client()
    token = csrf_token(client, f"/rules/{rule_id}")
    answer = client.post(f"/rules/{rule_id}/verify", data={"csrf_token": token})
    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert location.startswith(f"/rules/{rule_id}?task=")
    page = client.get(location).get_data(as_text=True)
    assert 'data-state="PENDING"' in page and "waiting for a worker" in page
    as_json = client.post(f"/rules/{rule_id}/verify", data={"csrf_token": token},
                          headers={"Accept": "application/json"})  # fmt: skip
    assert as_json.status_code == 202 and uuid.UUID(as_json.get_json()["task_id"])


def test_it_shows_a_finished_verify_now_task_s_outcome_or_why_it_failed(app: Flask) -> None:
    rule_id = _add(app, "orders")
    backend = app.extensions["celery"].backend
    done, failed = str(uuid.uuid4()), str(uuid.uuid4())
    backend.mark_as_done(done, {"status": "fail", "duration_ms": 12.0, "error": None})
    backend.mark_as_failure(failed, RuntimeError("database gone"))
    client = app.test_client()
    shown = client.get(f"/rules/{rule_id}?task={done}").get_data(as_text=True)
    assert 'data-state="SUCCESS"' in shown and 'data-status="fail"' in shown
    assert "in 12 ms" in shown and 'http-equiv="refresh"' not in shown  # ended: no reload
    broken = client.get(f"/rules/{rule_id}?task={failed}").get_data(as_text=True)
    assert "The verification task failed: RuntimeError(&#39;database gone&#39;)" in broken


def test_it_pauses_and_deletes_a_rule_from_its_page(app: Flask) -> None:
    rule_id = _add(app, "orders")
    client = app.test_client()
    token = csrf_token(client, f"/rules/{rule_id}")
    client.post(f"/rules/{rule_id}/enabled", data={"enabled": "0", "csrf_token": token})
    assert client.get(f"/api/v1/rules/{rule_id}").get_json()["enabled"] is False
    assert client.post(f"/rules/{rule_id}/delete", data={}).status_code == 400  # no token
    assert client.post(f"/rules/{rule_id}/delete", data={"csrf_token": token}).status_code == 302
    assert _rule_count(app) == 0


def test_it_shows_the_report_worst_first_and_offers_a_download(app: Flask) -> None:
    with Target() as target:
        good = _add(app, "good one")
        bad = _add(app, "bad one")
        with transaction(app.extensions["rulewatch"].factory) as session:
            for rule_id in (good, bad):
                rule = session.get(Rule, rule_id)
                assert rule is not None
                rule.target = {"url": target.url, "timeout_s": 5}
        _verify(app, good)
        target.status = 500
        _verify(app, bad)
    client = app.test_client()
    page = client.get("/report?window=24h").get_data(as_text=True)
    assert row_ids(page) == [bad, good]
    assert 'id="download-report" href="/report/download?window=24h"' in page
    download = client.get("/report/download?window=24h")
    assert download.headers["Content-Disposition"].startswith(
        'attachment; filename="rulewatch-stability-24h-'
    )
    assert "default-src 'none'" in download.headers["Content-Security-Policy"]
    assert download.get_data(as_text=True).startswith("<!doctype html>")
    assert row_ids(download.get_data(as_text=True)) == [bad, good]


def test_it_imports_yaml_all_or_nothing(app: Flask) -> None:
    client = app.test_client()
    token = csrf_token(client, "/rules/import")
    rule = "  - {name: %s, kind: tcp, target: {host: 127.0.0.1, port: %d}, interval_s: 60,"
    rule += " conditions: ['[CONNECTED] == true']}\n"
    text = "rules:\n" + rule % ("a", 9)
    bad = text + rule % ("b", 99999)
    refused = client.post("/rules/import", data={"text": bad, "csrf_token": token})
    assert refused.status_code == 422
    assert "rules[1].target.port" in (
        text_of(refused.get_data(as_text=True), "import-errors") or ""
    )
    assert _rule_count(app) == 0
    broken = client.post("/rules/import", data={"text": "rules: [", "csrf_token": token})
    assert broken.status_code == 422 and "not valid YAML" in broken.get_data(as_text=True)
    done = client.post("/rules/import", data={"text": text, "csrf_token": token})
    assert done.status_code == 302 and _rule_count(app) == 1


def test_it_hides_editing_from_a_viewer(app: Flask) -> None:
    rule_id = _add(app, "orders")
    viewer = app.test_client(token=token_for(app, "vic", "viewer"))
    page = viewer.get(f"/rules/{rule_id}").get_data(as_text=True)
    assert 'id="verify-now"' not in page and 'id="edit-rule"' not in page
    assert 'id="new-rule"' not in viewer.get("/").get_data(as_text=True)
    token = csrf_token(viewer, f"/rules/{rule_id}")
    assert viewer.post(f"/rules/{rule_id}/verify", data={"csrf_token": token}).status_code == 403


def test_it_answers_any_page_number_without_an_error(app: Flask) -> None:
    _add(app, "orders", "fail")
    client = app.test_client()
    for page in ("0", "000", "-1", "x", "99999999", "1"):
        answer = client.get(f"/?page={page}")
        assert answer.status_code == 200, page
        assert client.get(f"/report?page={page}").status_code == 200, page


def test_it_saves_an_unchanged_edit_form_as_the_same_rule(app: Flask) -> None:
    body = "line one\nline two\n"
    rule_id = _add(app, "orders", stability_target=0.9999999)
    with transaction(app.extensions["rulewatch"].factory) as session:
        rule = session.get(Rule, rule_id)
        assert rule is not None
        rule.target = {**rule.target, "body": body, "method": "POST", "headers": {"X-A": "b"}}
    client = app.test_client()
    before = client.get(f"/api/v1/rules/{rule_id}").get_json()
    page = client.get(f"/rules/{rule_id}/edit").get_data(as_text=True)
    form = _form_values(page)
    form["body"] = form["body"].replace("\n", "\r\n")  # as a browser sends a textarea
    assert client.post(f"/rules/{rule_id}/edit", data=form).status_code == 302
    after = client.get(f"/api/v1/rules/{rule_id}").get_json()
    assert {k: v for k, v in after.items() if k != "updated_at"} == {
        k: v for k, v in before.items() if k != "updated_at"
    }


def test_it_counts_blank_lines_when_it_names_a_conditions_line(app: Flask) -> None:
    client = app.test_client()
    data = {**FORM, "conditions": "[STATUS] == 200\n\n[STATUS] ==",
            "csrf_token": csrf_token(client, "/rules/new")}  # fmt: skip
    error = text_of(client.post("/rules/new", data=data).get_data(as_text=True), "conditions-error")
    assert (error or "").startswith("line 3: ")


def test_it_refuses_a_report_for_a_tag_no_rule_has(app: Flask) -> None:
    _add(app, "orders", tags=["shop"])
    client = app.test_client()
    assert client.get("/report?tag=shop").status_code == 200
    assert client.get("/report?tag=made-up").status_code == 404
    assert client.get("/report/download?tag=made-up").status_code == 404


def _form_values(page: str) -> dict[str, str]:
    """What a browser would send for the page's form: inputs, checked boxes, selects."""
    import html
    import re

    values: dict[str, str] = {}
    for tag in re.findall(r"<input[^>]*>", page):
        name = re.search(r'name="([^"]+)"', tag)
        if not name or ('type="checkbox"' in tag and "checked" not in tag):
            continue
        value = re.search(r'value="([^"]*)"', tag)
        values[name.group(1)] = html.unescape(value.group(1)) if value else (
            "y" if 'type="checkbox"' in tag else "")  # fmt: skip
    for name, text in re.findall(r'<textarea[^>]*name="([^"]+)"[^>]*>(.*?)</textarea>', page, re.S):
        values[name] = html.unescape(text.removeprefix("\n").removeprefix("\r\n"))
    for name, options in re.findall(r'<select[^>]*name="([^"]+)"[^>]*>(.*?)</select>', page, re.S):
        chosen = re.search(
            r'<option selected value="([^"]*)"|<option value="([^"]*)" selected', options
        )
        first = re.search(r'value="([^"]*)"', options)
        values[name] = (
            (chosen.group(1) or chosen.group(2)) if chosen else (first.group(1) if first else "")
        )
    return values
