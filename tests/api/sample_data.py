"""One of each thing the API shows, made through the API and real verifications.

Answers with rows in them (a rule with its state, verifications, an incident, notifications,
maintenance windows, tokens) are what the OpenAPI test checks against the document.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from flask import Flask

from rulewatch.db import transaction
from rulewatch.domain.schedule import Schedule
from rulewatch.models import utcnow
from rulewatch.services.gaps import LateRun, record_gaps
from rulewatch.services.verification import Alerting, Job, verify_one
from tests.targets import Target, http_rule

POLICY = {"emails": ["ops@example.com"], "failure_threshold": 1, "success_threshold": 1}


@dataclass(frozen=True)
class Sample:
    """The ids of what ``make_sample`` made."""

    rule_id: int
    tcp_rule_id: int
    window_id: int
    token_id: int
    user_id: int


def make_sample(app: Flask) -> Sample:
    """A failing http rule with an alert policy (so an incident and its emails), verified
    twice; a tcp rule never verified; a one-off and a recurring maintenance window; a viewer
    with a token."""
    client = app.test_client()
    with Target() as target:
        target.status = 500
        rule = client.post("/api/v1/rules", json=http_rule(
            target.url, alert=POLICY, tags=["payments"]))  # fmt: skip
        assert rule.status_code == 201, rule.get_json()
        rule_id = rule.get_json()["id"]
        for _ in range(2):
            _verify(app, rule_id)
    tcp = client.post("/api/v1/rules", json={
        "name": "orders db port", "kind": "tcp", "target": {"host": "127.0.0.1", "port": 9},
        "conditions": ["[CONNECTED] == true"], "cron": "*/5 * * * *", "timezone": "Europe/Paris",
    })  # fmt: skip
    assert tcp.status_code == 201, tcp.get_json()
    start = (utcnow() - timedelta(minutes=5)).isoformat()
    window = client.post("/api/v1/maintenance", json={
        "name": "db upgrade", "starts_at": start, "duration_s": 3600, "scope": "tag",
        "tag": "payments", "comment": "planned",
    })  # fmt: skip
    assert window.status_code == 201, window.get_json()
    recurring = client.post("/api/v1/maintenance", json={
        "name": "nightly backup", "starts_at": start, "duration_s": 600, "cron": "0 2 * * *",
        "scope": "rule", "rule_id": tcp.get_json()["id"],
    })  # fmt: skip
    assert recurring.status_code == 201, recurring.get_json()
    user = client.post("/api/v1/users", json={"name": "sample-viewer", "role": "viewer"})
    assert user.status_code == 201, user.get_json()
    token = client.post("/api/v1/tokens", json={"label": "sample", "user": "sample-viewer"})
    assert token.status_code == 201, token.get_json()
    ids = (window.get_json()["id"], token.get_json()["id"], user.get_json()["id"])
    _monitor_gap(app, rule_id)
    return Sample(rule_id, tcp.get_json()["id"], *ids)


def _monitor_gap(app: Flask, rule_id: int) -> None:
    """A run a minute late that skipped due times: the monitor could not run the rule."""
    due = utcnow() - timedelta(minutes=2)
    late = LateRun(rule_id, due, due + timedelta(minutes=1), Schedule(interval_s=10), 5.0)
    with transaction(app.extensions["rulewatch"].factory) as session:
        assert record_gaps(session, [late]) == 1


def _verify(app: Flask, rule_id: int) -> None:
    runtime = app.extensions["rulewatch"]
    alerting = Alerting(runtime.settings.alerts, "http://x")
    verify_one(runtime.factory, Job(rule_id, str(uuid.uuid4())), runtime.probe_context(), alerting)
