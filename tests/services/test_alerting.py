"""Alert emails end to end: real HTTP target, real database, real SMTP server (aiosmtpd)."""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from rulewatch.config import AlertDefaults, SmtpSettings
from rulewatch.db import after_commit_of_new, transaction
from rulewatch.models import Notification, utcnow
from rulewatch.probes import ProbeContext
from rulewatch.services.notifications import send
from rulewatch.services.rules import create_rule
from rulewatch.services.verification import Alerting, Job, verify_one
from tests.smtp_server import Inbox
from tests.targets import Target, http_rule

CTX = ProbeContext(datasources={})
POLICY = {"emails": ["ops@example.com"], "failure_threshold": 3, "success_threshold": 2}


def _alerting(factory: sessionmaker[Session], port: int, **defaults: Any) -> Alerting:
    smtp = SmtpSettings(host="127.0.0.1", port=port, sender="rulewatch@example.com", timeout_s=5)

    def send_all(rows: list[Notification]) -> None:  # the alerts worker, as rows commit
        for row in rows:
            send(factory, smtp, row.id)

    after_commit_of_new(factory, Notification, send_all)
    return Alerting(AlertDefaults(**defaults), "http://rulewatch.example")


def _verify(factory: sessionmaker[Session], rule_id: int, alerting: Alerting, times: int) -> None:
    for _ in range(times):
        verify_one(factory, Job(rule_id, str(uuid.uuid4())), CTX, alerting)


def _parts(message: Any) -> dict[str, str]:
    return {p.get_content_type(): p.get_payload(decode=True).decode() for p in message.walk()
            if not p.is_multipart()}  # fmt: skip


def test_it_emails_once_when_a_rule_fails_and_once_when_it_recovers(
    factory: sessionmaker[Session],
    inbox: Inbox,
    smtp_port: int,
) -> None:
    alerting = _alerting(factory, smtp_port)
    with Target() as target:
        with transaction(factory) as session:
            rule_id = create_rule(session, http_rule(target.url, alert=POLICY), utcnow()).id
        target.status = 500
        _verify(factory, rule_id, alerting, 2)
        assert inbox.messages == [], "two failures are below the threshold of three"
        _verify(factory, rule_id, alerting, 4)
        [firing] = inbox.messages
        target.status = 200
        _verify(factory, rule_id, alerting, 1)
        assert len(inbox.messages) == 1, "one pass is below the success threshold of two"
        _verify(factory, rule_id, alerting, 3)
    [_, resolved] = inbox.messages
    assert firing["Subject"] == "[FIRING] orders API"
    assert firing["To"] == "ops@example.com"
    text, html = _parts(firing)["text/plain"], _parts(firing)["text/html"]
    assert "[STATUS] (500) == 200" in text and "[STATUS] (500) == 200" in html
    assert f"http://rulewatch.example/rules/{rule_id}" in text
    assert "since" in text
    assert resolved["Subject"] == "[RESOLVED] orders API"
    assert "recovered" in _parts(resolved)["text/plain"]


def test_it_escapes_rule_names_in_the_html_part(
    factory: sessionmaker[Session],
    inbox: Inbox,
    smtp_port: int,
) -> None:
    alerting = _alerting(factory, smtp_port)
    rule = http_rule(
        "http://127.0.0.1:9/", name="<b>evil</b>", alert={**POLICY, "failure_threshold": 1}
    )
    with transaction(factory) as session:
        rule_id = create_rule(session, rule, utcnow()).id
    _verify(factory, rule_id, alerting, 1)
    [message] = inbox.messages
    html = _parts(message)["text/html"]
    assert "&lt;b&gt;evil&lt;/b&gt;" in html and "<b>evil</b>" not in html
    assert "<b>evil</b>" in _parts(message)["text/plain"]


def test_it_uses_the_global_recipients_for_rules_without_a_policy(
    factory: sessionmaker[Session],
    inbox: Inbox,
    smtp_port: int,
) -> None:
    alerting = _alerting(factory, smtp_port, emails=("oncall@example.com",), failure_threshold=1)
    with transaction(factory) as session:
        rule_id = create_rule(session, http_rule("http://127.0.0.1:9/"), utcnow()).id
    _verify(factory, rule_id, alerting, 1)
    [message] = inbox.messages
    assert message["To"] == "oncall@example.com"


def test_it_records_no_notification_for_a_rule_nobody_is_told_about(
    factory: sessionmaker[Session],
) -> None:
    alerting = _alerting(factory, 9, failure_threshold=1)
    with transaction(factory) as session:
        rule_id = create_rule(session, http_rule("http://127.0.0.1:9/"), utcnow()).id
    _verify(factory, rule_id, alerting, 2)
    with factory() as session:
        assert list(session.scalars(select(Notification))) == []


def test_it_loses_nothing_when_smtp_is_down_as_an_incident_opens(
    factory: sessionmaker[Session], smtp_port: int
) -> None:
    from datetime import timedelta

    from aiosmtpd.controller import Controller

    from rulewatch.services.notifications import TransientSendError, due_for_relay

    smtp = SmtpSettings(host="127.0.0.1", port=smtp_port, sender="rulewatch@example.com")
    tried: list[int] = []

    def send_now(rows: list[Notification]) -> None:  # the alerts worker, SMTP down
        for row in rows:
            tried.append(row.id)
            with contextlib.suppress(TransientSendError):  # the task retries with backoff
                send(factory, smtp, row.id)

    after_commit_of_new(factory, Notification, send_now)
    alerting = Alerting(AlertDefaults(), "http://rulewatch.example")
    with transaction(factory) as session:
        rule = http_rule("http://127.0.0.1:9/", alert={**POLICY, "failure_threshold": 1})
        rule_id = create_rule(session, rule, utcnow()).id
    _verify(factory, rule_id, alerting, 1)
    [nid] = tried
    with factory() as session:
        row = session.get(Notification, nid)
        assert (
            row is not None and row.status == "pending" and "unreachable" in (row.last_error or "")
        )
    box = Inbox()
    controller = Controller(box, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    try:
        with transaction(factory) as session:  # the task's retry was lost: beat relays the row
            relayed = due_for_relay(session, utcnow() + timedelta(minutes=12))
        assert relayed == [nid]
        for relayed_id in relayed:
            assert send(factory, smtp, relayed_id) == "sent"
        assert send(factory, smtp, nid) == "sent"  # a duplicate enqueue sends nothing more
    finally:
        controller.stop()
    assert [m["Subject"] for m in box.messages] == ["[FIRING] orders API"]
