"""The outbox against a real SMTP server (aiosmtpd): sent once, kept when SMTP is down."""

from __future__ import annotations

from datetime import timedelta

from aiosmtpd.controller import Controller
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from rulewatch.config import SmtpSettings
from rulewatch.db import transaction
from rulewatch.models import Notification, utcnow
from rulewatch.services.notifications import claim, send
from tests.smtp_server import Inbox


def _settings(port: int, host: str = "127.0.0.1") -> SmtpSettings:
    return SmtpSettings(host=host, port=port, sender="rulewatch@example.com", timeout_s=5)


def _pending(factory: sessionmaker[Session]) -> int:
    with transaction(factory) as session:
        row = Notification(
            kind="firing", recipients=["ops@example.com", "dev@example.com"],
            subject="[FIRING] orders API", body_text="orders API is failing",
            body_html="<p>orders API is <b>failing</b></p>", status="pending", attempts=0,
        )  # fmt: skip
        session.add(row)
        session.flush()
        return row.id


def _row(factory: sessionmaker[Session], nid: int) -> Notification:
    with factory() as session:
        row = session.get(Notification, nid)
        assert row is not None
        return row


def test_it_sends_a_notification_once_as_text_and_html(
    factory: sessionmaker[Session], inbox: Inbox, smtp_port: int
) -> None:
    nid = _pending(factory)
    assert send(factory, _settings(smtp_port), nid) == "sent"
    assert send(factory, _settings(smtp_port), nid) == "sent"
    [message] = inbox.messages
    assert message["Subject"] == "[FIRING] orders API"
    assert message["From"] == "rulewatch@example.com"
    assert message["To"] == "ops@example.com, dev@example.com"
    assert message["Message-ID"] == f"<rulewatch-notification-{nid}@example.com>"
    parts = {p.get_content_type(): p.get_payload(decode=True) for p in message.walk()}
    assert message.get_content_type() == "multipart/alternative"
    assert b"orders API is failing" in parts["text/plain"]
    assert b"<b>failing</b>" in parts["text/html"]
    row = _row(factory, nid)
    assert (row.status, row.attempts, row.last_error) == ("sent", 1, None)
    assert row.sent_at is not None


def test_it_keeps_the_notification_while_smtp_is_down_and_sends_it_once_after(
    factory: sessionmaker[Session], smtp_port: int
) -> None:
    nid = _pending(factory)
    assert send(factory, _settings(smtp_port), nid) == "pending"
    row = _row(factory, nid)
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.last_error and "unreachable" in row.last_error
    box = Inbox()
    controller = Controller(box, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    try:
        assert send(factory, _settings(smtp_port), nid) == "sent"
        assert send(factory, _settings(smtp_port), nid) == "sent"
    finally:
        controller.stop()
    assert len(box.messages) == 1
    assert _row(factory, nid).attempts == 2


def test_it_records_why_nothing_was_sent_without_an_smtp_server(
    factory: sessionmaker[Session],
) -> None:
    nid = _pending(factory)
    assert send(factory, SmtpSettings(host=""), nid) == "unsent"
    row = _row(factory, nid)
    assert row.status == "unsent"
    assert row.last_error and "RULEWATCH_SMTP_HOST" in row.last_error


def test_it_marks_a_refused_message_failed_with_the_reason(
    factory: sessionmaker[Session], inbox: Inbox, smtp_port: int
) -> None:
    inbox.refuse = True
    nid = _pending(factory)
    assert send(factory, _settings(smtp_port), nid) == "failed"
    row = _row(factory, nid)
    assert row.last_error and "550" in row.last_error
    assert inbox.messages == []


def test_it_leaves_a_row_to_the_sender_that_holds_it_until_its_lease_ends(
    factory: sessionmaker[Session], inbox: Inbox, smtp_port: int
) -> None:
    nid = _pending(factory)
    with transaction(factory) as session:
        assert claim(session, nid, utcnow())  # another worker is sending it
    assert send(factory, _settings(smtp_port), nid) == "sending"
    assert inbox.messages == []
    with transaction(factory) as session:  # that worker died; its lease ran out
        session.execute(
            update(Notification)
            .where(Notification.id == nid)
            .values(claimed_until=utcnow() - timedelta(seconds=1))
        )
    assert send(factory, _settings(smtp_port), nid) == "sent"
    assert len(inbox.messages) == 1


def test_it_relays_a_forgotten_pending_row_once_per_lease(factory: sessionmaker[Session]) -> None:
    from rulewatch.services.notifications import due_for_relay

    nid = _pending(factory)
    with transaction(factory) as session:
        assert due_for_relay(session, utcnow()) == [], "a fresh row is left to its own enqueue"
    later = utcnow() + timedelta(seconds=120)
    with transaction(factory) as session:
        assert due_for_relay(session, later) == [nid]
    with transaction(factory) as session:
        assert due_for_relay(session, later + timedelta(seconds=10)) == []
    with transaction(factory) as session:
        assert due_for_relay(session, later + timedelta(seconds=400)) == [nid]


def test_it_relays_a_row_whose_sender_died_once_its_lease_ran_out(
    factory: sessionmaker[Session], inbox: Inbox, smtp_port: int
) -> None:
    from rulewatch.services.notifications import due_for_relay

    nid = _pending(factory)
    with transaction(factory) as session:
        assert claim(session, nid, utcnow(), lease_s=30)  # a worker took it, then was killed
    with transaction(factory) as session:
        assert due_for_relay(session, utcnow() + timedelta(seconds=10)) == [], "lease still on"
    with transaction(factory) as session:
        assert due_for_relay(session, utcnow() + timedelta(seconds=31)) == [nid]
    assert _row(factory, nid).status == "pending"
    assert send(factory, _settings(smtp_port), nid) == "sent"
    assert len(inbox.messages) == 1 and _row(factory, nid).attempts == 2


def test_a_sender_whose_lease_ran_out_does_not_overwrite_the_next_sender(
    factory: sessionmaker[Session], inbox: Inbox, smtp_port: int
) -> None:
    from rulewatch.services.notifications import _finish

    nid = _pending(factory)
    with transaction(factory) as session:
        stale = claim(session, nid, utcnow() - timedelta(seconds=200), lease_s=120)
    assert stale is not None
    assert send(factory, _settings(smtp_port), nid) == "sent"  # the lease ran out: sent again
    assert _finish(factory, stale, "pending", "the first sender's late answer") == "pending"
    row = _row(factory, nid)
    assert (row.status, row.last_error) == ("sent", None), "the late answer changed nothing"


def test_a_row_that_did_not_go_is_tried_again_by_the_relay_once_its_wait_is_over(
    factory: sessionmaker[Session], smtp_port: int
) -> None:
    from rulewatch.services.notifications import PROBE_EVERY_S, due_for_relay

    nid = _pending(factory)
    assert send(factory, _settings(smtp_port), nid) == "pending"  # nothing listens
    with transaction(factory) as session:
        assert due_for_relay(session, utcnow()) == [], "still within its wait"
    later = utcnow() + timedelta(seconds=PROBE_EVERY_S + 1)
    with transaction(factory) as session:
        assert due_for_relay(session, later) == [nid]
    with transaction(factory) as session:
        assert due_for_relay(session, later + timedelta(seconds=10)) == [], "leased: once"
