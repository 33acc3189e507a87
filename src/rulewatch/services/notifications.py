"""The outbox: a notification row is claimed by one sender, sent by its channel's
transport (`rulewatch.notifiers`), and marked.

Rows are written in the same transaction as whatever caused them, so nothing is lost; a
claim (a conditional UPDATE with a lease) keeps two workers from sending one row at once.
A sender that dies mid-send leaves its lease to expire and the row is sent again: delivery
is at least once, and each transport lets its receiver recognise a resend (email keeps the
Message-ID).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from rulewatch.db import lock_for_update, transaction
from rulewatch.models import Notification, utcnow
from rulewatch.notifiers import (
    NotConfigured,
    PermanentSendError,
    TransientSendError,
    Transport,
    TransportConfig,
    transport_for,
)
from rulewatch.shapes import NotificationOut, answer

log = logging.getLogger(__name__)


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

    Rows of one group (same channel and group key, e.g. one tick's alerts of one kind for
    one email recipient) are claimed under one token and sent as one message. None when
    the row is sent, failed, or held by another.
    The group's senders start together: the rows are locked in id order (PostgreSQL, MySQL),
    so the first takes the whole group and the others wait the few milliseconds of its claim,
    then find the rows taken and step aside; the same order means no deadlock. (SKIP LOCKED
    would let two senders split one group into two messages.)
    """
    mine = _with_group(session, notification_id)
    candidates = select(Notification.id).where(mine, _claimable(now)).order_by(Notification.id)
    ids = list(session.scalars(lock_for_update(candidates, session)))
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


def _with_group(session: Session, notification_id: int) -> Any:
    """The row, and the rows its transport sends with it: same channel, same group key."""
    row = session.execute(
        select(Notification.channel, Notification.group_key).where(
            Notification.id == notification_id
        )
    ).first()
    mine = Notification.id == notification_id
    if row is None or row.group_key is None:
        return mine
    return or_(
        mine, (Notification.channel == row.channel) & (Notification.group_key == row.group_key)
    )


def send(factory: sessionmaker[Session], config: TransportConfig, notification_id: int) -> str:
    """Send one outbox row (with its group) over its channel; returns the final status, or
    raises TransientSendError after putting the rows back to pending."""
    with transaction(factory) as session:
        channel = session.scalar(
            select(Notification.channel).where(Notification.id == notification_id)
        )
        if channel is None:
            return "missing"
        transport = transport_for(channel)
        token = claim(session, notification_id, utcnow(), transport.lease_s(config))
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
    return _send_claimed(factory, token, transport, rows, config)


def _send_claimed(
    factory: sessionmaker[Session], token: str, transport: Transport,
    rows: Sequence[Notification], config: TransportConfig,
) -> str:  # fmt: skip
    """Hand the claimed rows to the transport and record its answer under the claim."""
    try:
        transport.send(rows, config)
    except NotConfigured as exc:
        log.warning("notifications %s %s", [r.id for r in rows], exc)
        return _finish(factory, token, "unsent", str(exc))
    except TransientSendError as exc:
        _finish(factory, token, "pending", str(exc))
        raise
    except PermanentSendError as exc:
        return _finish(factory, token, "failed", str(exc))
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
        session.execute(
            update(Notification)
            .where(_with_group(session, notification_id), _claimable(utcnow()))
            .values(status="failed", last_error=f"gave up after retries: {reason}",
                    claimed_until=None, claim_token=None)
            .execution_options(synchronize_session=False)
        )  # fmt: skip
    return "failed"


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
    return answer(NotificationOut, **{f: getattr(n, f) for f in NotificationOut.model_fields})


def add_digest(session: Session, html: str, emails: Sequence[str], window: str) -> int:
    """An outbox row carrying the stability report as a digest email."""
    row = Notification(
        channel="email", kind="digest", recipients=list(emails),
        subject=f"rulewatch stability, last {window}",
        body_text=f"The rulewatch stability report for the last {window} is attached as HTML.",
        body_html=html, status="pending", attempts=0,
    )  # fmt: skip
    session.add(row)
    session.flush()
    return row.id
