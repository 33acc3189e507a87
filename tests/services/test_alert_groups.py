"""Storm grouping: a tick's alerts reach each recipient as one email listing them all."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from rulewatch.config import AlertDefaults, SmtpSettings
from rulewatch.db import after_commit_of_new, transaction
from rulewatch.models import Notification, utcnow
from rulewatch.notifiers.email import render_group
from rulewatch.probes import ProbeContext
from rulewatch.services.notifications import send
from rulewatch.services.rules import create_rule
from rulewatch.services.verification import Alerting, Job, verify_jobs
from tests.smtp_server import Inbox
from tests.targets import http_rule

CTX = ProbeContext(datasources={})
DOWN = "http://127.0.0.1:9/"  # nothing listens on the discard port


def _rules(factory: sessionmaker[Session], names: list[str], emails: list[str]) -> list[int]:
    alert = {"emails": emails, "failure_threshold": 1}
    with transaction(factory) as session:
        return [create_rule(session, http_rule(DOWN, name=n, alert=alert), utcnow()).id
                for n in names]  # fmt: skip


def _collect(factory: sessionmaker[Session], calls: list[list[int]]) -> Alerting:
    """Alerting whose committed rows are noted, a list per commit (when their sends go:
    tests/services/test_alert_latch.py)."""
    after_commit_of_new(factory, Notification, lambda rows: calls.append([r.id for r in rows]))
    return Alerting(AlertDefaults(), "http://rw.example")


def _parts(message: Any) -> dict[str, str]:
    return {p.get_content_type(): p.get_payload(decode=True).decode() for p in message.walk()
            if not p.is_multipart()}  # fmt: skip


def test_it_sends_each_recipient_one_email_for_the_failures_of_a_tick(
    factory: sessionmaker[Session], inbox: Inbox, smtp_port: int
) -> None:
    ops_only = _rules(factory, ["api a", "api b", "api c"], ["ops@example.com"])
    shared = _rules(factory, ["db x", "db y"], ["ops@example.com", "dev@example.com"])
    calls: list[list[int]] = []
    alerting, tick = _collect(factory, calls), str(uuid.uuid4())
    # two chunks of one tick, recorded by different batches (workers) at different times
    for chunk in (ops_only[:2], ops_only[2:] + shared):
        jobs = [Job(rid, str(uuid.uuid4()), None, tick) for rid in chunk]
        verify_jobs(factory, jobs, CTX, alerting)
    ids = [nid for batch in calls for nid in batch]
    assert len(ids) == 3 + 2 * 2, "one row per rule and recipient"
    smtp = SmtpSettings(host="127.0.0.1", port=smtp_port, sender="rw@example.com", timeout_s=5)
    statuses = [send(factory, smtp, nid) for nid in ids]
    assert statuses[0] == "sent"
    by_to = {m["To"]: m for m in inbox.messages}
    assert len(inbox.messages) == 2 and set(by_to) == {"ops@example.com", "dev@example.com"}
    ops, dev = by_to["ops@example.com"], by_to["dev@example.com"]
    assert ops["Subject"] == "[FIRING] 5 rules: api a, api b, api c and 2 more"
    assert dev["Subject"] == "[FIRING] 2 rules: db x, db y"
    for name in ("api a", "api b", "api c", "db x", "db y"):
        assert name in _parts(ops)["text/plain"] and name in _parts(ops)["text/html"]
    assert "api a" not in _parts(dev)["text/plain"]
    assert (
        "unreachable" in _parts(ops)["text/plain"].lower()
        or "connect" in _parts(ops)["text/plain"].lower()
    ), "each rule's last error is listed"
    with factory() as session:
        rows = list(session.scalars(select(Notification)))
    assert {r.status for r in rows} == {"sent"} and {r.attempts for r in rows} == {1}


def test_it_sends_a_manual_verification_s_alert_alone_and_at_once(
    factory: sessionmaker[Session], inbox: Inbox, smtp_port: int
) -> None:
    ids = _rules(factory, ["api a", "api b"], ["ops@example.com"])
    calls: list[list[int]] = []
    verify_jobs(
        factory, [Job(rid, str(uuid.uuid4())) for rid in ids], CTX, _collect(factory, calls)
    )
    [sent_ids] = calls
    smtp = SmtpSettings(host="127.0.0.1", port=smtp_port, sender="rw@example.com", timeout_s=5)
    for nid in sent_ids:
        send(factory, smtp, nid)
    assert sorted(m["Subject"] for m in inbox.messages) == ["[FIRING] api a", "[FIRING] api b"]


def test_it_keeps_ticks_apart(factory: sessionmaker[Session], inbox: Inbox, smtp_port: int) -> None:
    first, second = _rules(factory, ["api a", "api b"], ["ops@example.com"])
    calls: list[list[int]] = []
    alerting = _collect(factory, calls)
    for rid in (first, second):  # the same recipient, two ticks
        verify_jobs(factory, [Job(rid, str(uuid.uuid4()), None, str(uuid.uuid4()))], CTX, alerting)
    smtp = SmtpSettings(host="127.0.0.1", port=smtp_port, sender="rw@example.com", timeout_s=5)
    for batch in calls:
        for nid in batch:
            send(factory, smtp, nid)
    assert sorted(m["Subject"] for m in inbox.messages) == ["[FIRING] api a", "[FIRING] api b"]


def test_senders_of_one_group_starting_together_send_it_once_without_deadlock(
    factory: sessionmaker[Session], inbox: Inbox, smtp_port: int
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    ids = _rules(factory, [f"api {i}" for i in range(6)], ["ops@example.com"])
    calls: list[list[int]] = []
    tick = str(uuid.uuid4())
    verify_jobs(
        factory, [Job(r, str(uuid.uuid4()), None, tick) for r in ids], CTX, _collect(factory, calls)
    )
    [rows] = calls
    smtp = SmtpSettings(host="127.0.0.1", port=smtp_port, sender="rw@example.com", timeout_s=5)
    with ThreadPoolExecutor(len(rows)) as pool:  # the group's tasks, released together
        statuses = list(pool.map(lambda nid: send(factory, smtp, nid), rows))
    assert "sent" in statuses and set(statuses) <= {"sent", "sending", "pending"}
    [message] = inbox.messages
    assert message["Subject"].startswith("[FIRING] 6 rules")
    with factory() as session:
        assert {r.status for r in session.scalars(select(Notification))} == {"sent"}


def test_a_group_lists_its_rules_by_name_whatever_order_their_batches_recorded_them() -> None:
    # a tick's rows are written by several batches, in whatever order their targets answered
    rows = [
        Notification(id=i, kind="firing", details={"headline": "FIRING", "rule_name": name})
        for i, name in enumerate(["storm 4", "api", "storm 3"])
    ]
    subject, text, _ = render_group(rows)
    assert subject == "[FIRING] 3 rules: api, storm 3, storm 4"
    assert text.index("api") < text.index("storm 3") < text.index("storm 4")
