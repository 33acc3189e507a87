"""The outbox: a notification row is claimed by one sender, sent over SMTP, and marked.

Rows are written in the same transaction as whatever caused them, so nothing is lost; a
claim (a conditional UPDATE with a lease) keeps two workers from sending one row at once.
A sender that dies mid-send leaves its lease to expire and the row is sent again, with the
same Message-ID, so mail clients can drop the rare duplicate: SMTP itself is at least once.
"""

from __future__ import annotations

import hashlib
import logging
import smtplib
import ssl
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from rulewatch.config import SmtpSettings
from rulewatch.db import lock_for_update, transaction
from rulewatch.models import Notification, utcnow
from rulewatch.services.reports import report_environment

log = logging.getLogger(__name__)


class TransientSendError(Exception):
    """SMTP could not take the message now (unreachable, 4xx); worth trying again later."""


def _claimable(now: datetime) -> Any:
    """Rows nobody is sending: pending, or held by a sender whose lease ran out."""
    return or_(
        Notification.status == "pending",
        (Notification.status == "sending") & (Notification.claimed_until < now),
    )


def claim(
    session: Session, notification_id: int, now: datetime, lease_s: float = 120.0
) -> str | None:
    """Take the row, and the unsent rows of its group, for sending; return the claim token.

    Rows of one group (one tick's alerts of one kind for one recipient) are claimed under
    one token and sent as one email. None when the row is sent, failed, or held by another.
    The group's senders start together: the rows are locked in id order with SKIP LOCKED
    (PostgreSQL, MySQL), so one takes the group and the others step aside, never deadlock.
    """
    group_key = session.scalar(
        select(Notification.group_key).where(Notification.id == notification_id)
    )
    mine = Notification.id == notification_id
    if group_key is not None:
        mine = or_(mine, Notification.group_key == group_key)
    candidates = select(Notification.id).where(mine, _claimable(now)).order_by(Notification.id)
    ids = list(session.scalars(lock_for_update(candidates, session, skip_locked=True)))
    if notification_id not in ids:
        return None
    token = str(uuid.uuid4())
    result = session.execute(
        update(Notification)
        .where(Notification.id.in_(ids), _claimable(now))
        .values(
            status="sending",
            claimed_until=now + timedelta(seconds=lease_s),
            claim_token=token,
            attempts=Notification.attempts + 1,
        )
        .execution_options(synchronize_session=False)
    )
    return token if getattr(result, "rowcount", 0) else None


def send(factory: sessionmaker[Session], smtp: SmtpSettings, notification_id: int) -> str:
    """Send one outbox row (with its group); returns the final status, or raises
    TransientSendError after putting the rows back to pending."""
    with transaction(factory) as session:
        token = claim(session, notification_id, utcnow(), smtp.lease_s)
        if token is None:
            status = session.scalar(
                select(Notification.status).where(Notification.id == notification_id)
            )
            return status or "missing"
        rows = list(
            session.scalars(
                select(Notification)
                .where(Notification.claim_token == token)
                .order_by(Notification.id)
            )
        )
        message = build_message(rows, smtp.sender)
    if not smtp.host:
        reason = "not sent: no SMTP server configured (set RULEWATCH_SMTP_HOST)"
        log.warning("notifications %s %s", [r.id for r in rows], reason)
        return _finish(factory, token, "unsent", reason)
    try:
        deliver(message, smtp)
    except TransientSendError as exc:
        _finish(factory, token, "pending", str(exc))
        raise
    except (smtplib.SMTPException, ValueError) as exc:
        return _finish(factory, token, "failed", f"SMTP refused it: {exc}")
    return _finish(factory, token, "sent", None)


RELAY_AFTER_S = 60
RELAY_LEASE_S = 300
# longest wait between two retries of send_notification (its retry_backoff_max), and some
RETRY_WAIT_S = 660


def due_for_relay(session: Session, now: datetime, limit: int = 500) -> list[int]:
    """Rows whose sending nobody is about to attempt: pending for a while with no enqueue
    in flight (a lost enqueue, a restart), or held by a sender that died (lease ran out).

    Each is leased for RELAY_LEASE_S so one beat tick enqueues it, not every tick.
    """
    stale = or_(
        (Notification.status == "pending")
        & (Notification.created_at < now - timedelta(seconds=RELAY_AFTER_S))
        & or_(Notification.claimed_until.is_(None), Notification.claimed_until < now),
        (Notification.status == "sending") & (Notification.claimed_until < now),
    )
    ids = list(session.scalars(select(Notification.id).where(stale).limit(limit)))
    if ids:
        session.execute(
            update(Notification)
            .where(Notification.id.in_(ids), stale)
            .values(status="pending", claimed_until=now + timedelta(seconds=RELAY_LEASE_S))
            .execution_options(synchronize_session=False)
        )
    return ids


def give_up(factory: sessionmaker[Session], notification_id: int, reason: str) -> str:
    """Mark a row, and the unsent rows of its group, failed after its last retry."""
    with transaction(factory) as session:
        group_key = session.scalar(
            select(Notification.group_key).where(Notification.id == notification_id)
        )
        same = Notification.id == notification_id
        if group_key is not None:
            same = or_(same, Notification.group_key == group_key)
        session.execute(
            update(Notification)
            .where(same, _claimable(utcnow()))
            .values(status="failed", last_error=f"gave up after retries: {reason}",
                    claimed_until=None, claim_token=None)
            .execution_options(synchronize_session=False)
        )  # fmt: skip
    return "failed"


def build_message(rows: Sequence[Notification], sender: str) -> EmailMessage:
    """A multipart (text and HTML) message for one row, or one listing a group's rows.

    The Message-ID is fixed by the rows' ids, so a resend after a crash can be
    recognised as the same message by mail clients.
    """
    first = rows[0]
    if len(rows) == 1 or any(r.details is None for r in rows):
        subject, text, html = first.subject, first.body_text, first.body_html
    else:
        subject, text, html = render_group(rows)
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(first.recipients)
    message["Subject"] = subject
    address = parseaddr(sender)[1]  # "rulewatch <rw@example.com>" -> rw@example.com
    domain = address.rsplit("@", 1)[-1] if "@" in address else "rulewatch.invalid"
    # the same rows give the same id (a resend after a crash); other rows, another id
    ids = "-".join(str(r.id) for r in sorted(rows, key=lambda r: r.id))
    idstring = f"rulewatch-notification-{ids if len(ids) <= 40 else _digest(ids)}"
    message["Message-ID"] = f"<{idstring}@{domain}>"  # not make_msgid: it adds time and chance
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def render_group(rows: Sequence[Notification]) -> tuple[str, str, str]:
    """Subject, text and HTML of one email that lists the alerts of several rules."""
    alerts = [row.details or {} for row in rows]
    headline = alerts[0].get("headline", rows[0].kind.upper())
    names = [str(a.get("rule_name")) for a in alerts]
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    subject = f"[{headline}] {len(rows)} rules: {shown}"
    context = {"headline": headline, "kind": rows[0].kind, "alerts": alerts, "count": len(rows)}
    env = report_environment()
    return (
        subject,
        env.get_template("email/group.txt").render(context),
        env.get_template("email/group.html").render(context),
    )


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


def _finish(factory: sessionmaker[Session], token: str, status: str, error: str | None) -> str:
    """Mark the rows still held under ``token``; a sender whose lease ran out and whose rows
    were claimed again by another marks nothing."""
    values: dict[str, Any] = {
        "status": status, "last_error": error, "claimed_until": None, "claim_token": None,
    }  # fmt: skip
    if status == "sent":
        values["sent_at"] = utcnow()
    elif status == "pending":  # the task's own retry comes next; the relay waits for it
        values["claimed_until"] = utcnow() + timedelta(seconds=RETRY_WAIT_S)
    with transaction(factory) as session:
        session.execute(
            update(Notification)
            .where(Notification.claim_token == token, Notification.status == "sending")
            .values(**values)
            .execution_options(synchronize_session=False)
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
        "group_key": n.group_key,
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
