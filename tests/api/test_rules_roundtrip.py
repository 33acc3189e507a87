"""One rule schema everywhere: what the YAML export writes, the API returns, field for field."""

from __future__ import annotations

import pytest
import yaml
from flask import Flask

from rulewatch.db import transaction
from rulewatch.models import utcnow
from rulewatch.services.rule_import import ImportCounts, import_rules
from rulewatch.services.rules import export_rules

# JSON columns, tags and time zones are stored differently by each engine
pytestmark = pytest.mark.all_databases

RULES = """\
- name: orders API
  kind: http
  target: {url: "http://127.0.0.1:9/health", method: HEAD, timeout_s: 5,
           headers: {X-Probe: rulewatch}}
  conditions: ["[STATUS] == 200", "[RESPONSE_TIME] < 500"]
  interval_s: 60
  tags: [shop, api]
  alert: {emails: [ops@example.com], failure_threshold: 2, reminder_interval_s: 3600}
- name: nightly orders
  kind: sql
  target: {datasource: warehouse, query: "SELECT count(*) FROM orders"}
  conditions: ["[VALUE] > 0"]
  cron: "0 3 * * *"
  timezone: Europe/Paris
  stability_target: 0.95
  enabled: false
- name: postgres port
  kind: tcp
  target: {host: 127.0.0.1, port: 5432}
  conditions: ["[CONNECTED] == true"]
  interval_s: 30
"""


def test_the_api_returns_every_field_the_export_writes(app: Flask) -> None:
    factory = app.extensions["rulewatch"].factory
    with transaction(factory) as session:
        assert import_rules(session, yaml.safe_load(RULES), utcnow()) == ImportCounts(3, 0, 0)
    with factory() as session:
        exported = export_rules(session)
    listed = app.test_client().get("/api/v1/rules").get_json()["rules"]
    by_name = {r["name"]: r for r in listed}
    assert sorted(by_name) == sorted(r["name"] for r in exported)
    for rule in exported:
        api = by_name[rule["name"]]
        assert {k: api[k] for k in rule} == rule, rule["name"]
        one = app.test_client().get(f"/api/v1/rules/{api['id']}").get_json()
        assert {k: one[k] for k in rule} == rule


def test_a_rule_posted_to_the_api_exports_as_it_was_posted(app: Flask) -> None:
    factory = app.extensions["rulewatch"].factory
    [rule] = [r for r in yaml.safe_load(RULES) if r["kind"] == "tcp"]
    created = app.test_client().post("/api/v1/rules", json=rule)
    assert created.status_code == 201
    with factory() as session:
        [exported] = export_rules(session)
    target = rule.pop("target")
    assert {k: exported[k] for k in rule} == rule
    assert target.items() <= exported["target"].items(), "defaults fill the rest of the target"
