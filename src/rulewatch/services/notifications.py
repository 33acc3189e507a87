"""The outbox: a notification row is claimed by one sender, sent over SMTP, and marked.

Rows are written in the same transaction as whatever caused them, so nothing is lost; a
claim (a conditional UPDATE with a lease) keeps two workers from sending one row at once.
A sender that dies mid-send leaves its lease to expire and the row is sent again, with the
same Message-ID, so mail clients can drop the rare duplicate: SMTP itself is at least once.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Sequence
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from rulewatch.config import SmtpSettings
from rulewatch.db import transaction
from rulewatch.models import Notification, utcnow

log = logging.getLogger(__name__)
LEASE_S = 120


class TransientSendError(Exception):
    """SMTP could not take the message now (unreachable, 4xx); worth trying again later."""


def claim(session: Session, notification_id: int, now: datetime) -> bool:
    """Take the row for sending if it is pending or its last sender's lease expired."""
    result = session.execute(
        update(Notification)
        .where(
            Notification.id == notification_id,
            or_(
                Notification.status == "pending",
                (Notification.status == "sending") & (Notification.claimed_until < now),
            ),
        )
        .values(
            status="sending",
            claimed_until=now + timedelta(seconds=LEASE_S),
            attempts=Notification.attempts + 1,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


def send(factory: sessionmaker[Session], smtp: SmtpSettings, notification_id: int) -> str:
    """Send one outbox row; returns its final status, or raises TransientSendError."""
    with transaction(factory) as session:
        if not claim(session, notification_id, utcnow()):
            row = session.get(Notification, notification_id)
            return row.status if row else "missing"
        row = session.get(Notification, notification_id)
        assert row is not None
        message = build_message(row, smtp.sender)
    if not smtp.host:
        reason = "not sent: no SMTP server configured (set RULEWATCH_SMTP_HOST)"
        log.warning("notification %s %s", notification_id, reason)
        return _finish(factory, notification_id, "unsent", reason)
    try:
        deliver(message, smtp)
    except TransientSendError as exc:
        _finish(factory, notification_id, "pending", str(exc))
        raise
    except (smtplib.SMTPException, ValueError) as exc:
        return _finish(factory, notification_id, "failed", f"SMTP refused it: {exc}")
    return _finish(factory, notification_id, "sent", None)


RELAY_AFTER_S = 60
RELAY_LEASE_S = 300


def due_for_relay(session: Session, now: datetime, limit: int = 500) -> list[int]:
    """Pending rows nobody has been asked to send for a while (a lost enqueue, a restart).

    Each is leased for RELAY_LEASE_S so one beat tick enqueues it, not every tick.
    """
    stale = (
        (Notification.status == "pending")
        & (Notification.created_at < now - timedelta(seconds=RELAY_AFTER_S))
        & or_(Notification.claimed_until.is_(None), Notification.claimed_until < now)
    )
    ids = list(session.scalars(select(Notification.id).where(stale).limit(limit)))
    if ids:
        session.execute(
            update(Notification)
            .where(Notification.id.in_(ids), stale)
            .values(claimed_until=now + timedelta(seconds=RELAY_LEASE_S))
            .execution_options(synchronize_session=False)
        )
    return ids


def give_up(factory: sessionmaker[Session], notification_id: int, reason: str) -> str:
    """Mark a row failed after its last retry."""
    return _finish(factory, notification_id, "failed", f"gave up after retries: {reason}")


def build_message(row: Notification, sender: str) -> EmailMessage:
    """A multipart (text and HTML) message with a Message-ID fixed by the row's id."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(row.recipients)
    message["Subject"] = row.subject
    domain = sender.rsplit("@", 1)[-1] or "rulewatch"
    message["Message-ID"] = make_msgid(idstring=f"rulewatch-notification-{row.id}", domain=domain)
    message.set_content(row.body_text)
    message.add_alternative(row.body_html, subtype="html")
    return message


def deliver(message: EmailMessage, smtp: SmtpSettings) -> None:
    """Hand the message to the SMTP server; transient trouble raises TransientSendError."""
    try:
        with _connect(smtp) as client:
            if smtp.starttls and not smtp.ssl:
                client.starttls(context=ssl.create_default_context())
            if smtp.username:
                client.login(smtp.username, smtp.password)
            client.send_message(message)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        if all(400 <= code < 500 for code in codes):
            raise TransientSendError(f"recipients deferred: {exc.recipients!r}") from exc
        raise
    except smtplib.SMTPResponseException as exc:
        if 400 <= exc.smtp_code < 500:
            raise TransientSendError(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}") from exc
        raise
    except smtplib.SMTPServerDisconnected as exc:
        raise TransientSendError(f"SMTP server {smtp.host}:{smtp.port} hung up: {exc}") from exc
    except smtplib.SMTPException:
        raise  # permanent: the server said no (smtplib's errors are OSErrors too)
    except OSError as exc:
        where = f"{smtp.host}:{smtp.port}"
        raise TransientSendError(f"SMTP server {where} unreachable: {exc}") from exc


def _connect(smtp: SmtpSettings) -> Any:
    if smtp.ssl:
        context = ssl.create_default_context()
        return smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout_s, context=context)
    return smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_s)


def _finish(
    factory: sessionmaker[Session], notification_id: int, status: str, error: str | None
) -> str:
    values: dict[str, Any] = {"status": status, "last_error": error, "claimed_until": None}
    if status == "sent":
        values["sent_at"] = utcnow()
    with transaction(factory) as session:
        session.execute(
            update(Notification).where(Notification.id == notification_id).values(**values)
        )
    return status


def recent_notifications(session: Session, limit: int, status: str | None) -> list[Notification]:
    """The newest outbox rows, optionally of one status."""
    query = select(Notification).order_by(Notification.id.desc()).limit(limit)
    if status:
        query = query.where(Notification.status == status)
    return list(session.scalars(query))


def notification_to_dict(n: Notification) -> dict[str, Any]:
    """The API form of an outbox row (bodies left out)."""
    return {
        "id": n.id,
        "rule_id": n.rule_id,
        "kind": n.kind,
        "recipients": n.recipients,
        "subject": n.subject,
        "status": n.status,
        "attempts": n.attempts,
        "last_error": n.last_error,
        "created_at": n.created_at.isoformat(),
        "sent_at": n.sent_at.isoformat() if n.sent_at else None,
    }


def add_digest(session: Session, html: str, emails: Sequence[str], window: str) -> int:
    """An outbox row carrying the stability report as a digest email."""
    row = Notification(
        kind="digest", recipients=list(emails), subject=f"rulewatch stability, last {window}",
        body_text=f"The rulewatch stability report for the last {window} is attached as HTML.",
        body_html=html, status="pending", attempts=0,
    )  # fmt: skip
    session.add(row)
    session.flush()
    return row.id
