"""The outbox: a notification row is claimed by one sender, sent by its channel's
transport (`rulewatch.notifiers`), and marked.

Rows are written in the same transaction as whatever caused them, so nothing is lost; a
claim (a conditional UPDATE with a lease) keeps two workers from sending one row at once.
A sender that dies mid-send leaves its lease to expire and the row is sent again: delivery
is at least once, and each transport lets its receiver recognise a resend (email keeps the
Message-ID).

A row that cannot go now (the channel is down) waits, and so does a row behind an earlier
unsent row of its stream (same channel, rule and recipients). The first send on the channel
that succeeds releases the waiting rows, in id order; while nothing succeeds, beat's relay
tries the channel with its first waiting row, every PROBE_EVERY_S at most. A row is given up
only GIVE_UP_AFTER_S after it was written, however many tries that took.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Text, and_, cast, func, literal, or_, select, update
from sqlalchemy.orm import Session, aliased, sessionmaker

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


def _waiting() -> Any:
    """Rows held back on their channel: tried and not sent (the channel was down), or behind an
    earlier row of their stream. A send on the channel that succeeds releases them; the relay
    probes the channel with the first of them."""
    return (Notification.status == "pending") & Notification.last_error.is_not(None)


def claim(
    session: Session, notification_id: int, now: datetime, lease_s: float = 120.0
) -> str | None:
    """Take the row, and the unsent rows of its group, for sending; return the claim token.

    Rows of one group (same channel and group key, e.g. one tick's alerts of one kind for
    one email recipient) are claimed under one token and sent as one message. None when
    the row is sent, failed, held by another, or must wait for an earlier row of its stream
    (`first_ahead`; it is then marked waiting, to be released after that row).
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
    ahead = first_ahead(session, ids)
    if ahead is not None:
        reason = f"waiting for notification {ahead} (same rule, same recipients) to go first"
        _hold(session, ids, reason, now + timedelta(seconds=PROBE_EVERY_S))
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


def first_ahead(session: Session, ids: Sequence[int]) -> int | None:
    """The first unsent row that must go before one of ``ids``: an earlier row of the same
    stream (channel, rule and recipients), so a rule's FIRING reaches a recipient before its
    RESOLVED.

    The rows found are then locked by id, re-checked as they are now: a sender about to mark
    one of them sent waits for this transaction, then finds the rows it held back marked
    waiting, and releases them. (Locking them in the join itself would lock the rows of a
    whole index range on MySQL, and two claims would deadlock.)
    """
    mine, earlier = aliased(Notification), aliased(Notification)
    same_stream = and_(
        earlier.channel == mine.channel,
        earlier.rule_id == mine.rule_id,
        cast(earlier.recipients, Text) == cast(mine.recipients, Text),
        earlier.id < mine.id,
    )
    found = (
        select(earlier.id)
        .join(mine, same_stream)
        .where(mine.id.in_(ids), earlier.id.not_in(ids), earlier.status.in_(UNSENT))
    )
    ahead = list(session.scalars(found.distinct()))
    if not ahead:
        return None
    still = select(Notification.id).where(
        Notification.id.in_(ahead), Notification.status.in_(UNSENT)
    )
    return next(
        iter(session.scalars(lock_for_update(still.order_by(Notification.id), session))), None
    )


def _hold(session: Session, ids: Sequence[int], reason: str, until: datetime) -> None:
    session.execute(
        update(Notification)
        .where(Notification.id.in_(ids), Notification.status == "pending")
        .values(last_error=reason, claimed_until=until)
        .execution_options(synchronize_session=False)
    )


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


Taken = tuple[str, Transport, list[Notification]]


def send(factory: sessionmaker[Session], config: TransportConfig, notification_id: int) -> str:
    """Send one outbox row (with its group) over its channel, then, if it went, the rows of
    the channel that wait (`release`); returns the row's status.

    A row that could not go now is ``pending`` with the reason in ``last_error``: it waits
    for the next send on its channel that succeeds, or for the relay's probe.
    """
    taken = _take(factory, config, notification_id)
    if isinstance(taken, str):
        return taken
    status = _send_claimed(factory, config, *taken)
    if status == "sent":
        release(factory, config, taken[2][0].channel)
    return status


def _take(
    factory: sessionmaker[Session], config: TransportConfig, notification_id: int
) -> Taken | str:
    """Claim the row with its group: the token, transport and rows; or, when it cannot be
    taken now, the row's status."""
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
    return token, transport, rows


def release(factory: sessionmaker[Session], config: TransportConfig, channel: str) -> int:
    """A send on ``channel`` just succeeded: send its waiting rows now, in id order, instead of
    leaving them to wait out their probe; how many went.

    Each row is claimed as any send claims it, so two workers releasing at once share the rows
    and never send one twice, and a row still behind an earlier one of its stream stays for
    whoever sends that one. Two tries in a row that do not go mean the channel is down again:
    the rest wait for the relay's probe. One row that does not go (a recipient deferred)
    holds back nobody else.
    """
    after, sent, misses = 0, 0, 0
    while misses < 2:
        with factory() as session:
            nid = session.scalar(
                select(func.min(Notification.id)).where(
                    _waiting(), Notification.channel == channel, Notification.id > after
                )
            )
        if nid is None:
            break
        after = nid
        taken = _take(factory, config, nid)
        if isinstance(taken, str):
            continue
        status = _send_claimed(factory, config, *taken)
        sent, misses = (sent + 1, 0) if status == "sent" else (sent, misses + (status == "pending"))
    return sent


def _send_claimed(
    factory: sessionmaker[Session], config: TransportConfig, token: str,
    transport: Transport, rows: Sequence[Notification],
) -> str:  # fmt: skip
    """Hand the claimed rows to the transport and record its answer under the claim."""
    ids = [r.id for r in rows]
    try:
        transport.send(rows, config)
    except NotConfigured as exc:
        log.warning("notifications %s %s", ids, exc)
        return _finish(factory, token, "unsent", str(exc))
    except TransientSendError as exc:
        wait_s = probe_wait_s(rows[0].attempts)
        log.warning("notifications %s not sent (%s); they wait for the next send on %s that "
                    "succeeds, or a try in %.0f s", ids, exc, rows[0].channel, wait_s)  # fmt: skip
        return _finish(factory, token, "pending", str(exc), wait_s)
    except PermanentSendError as exc:
        return _finish(factory, token, "failed", str(exc))
    return _finish(factory, token, "sent", None)


def probe_wait_s(attempts: int) -> float:
    """How long a row that did not go waits before the relay may try its channel with it
    again: 2, 4, 8 s after its first tries, then PROBE_EVERY_S for as long as it stays down."""
    return float(min(PROBE_EVERY_S, 2 ** max(attempts, 1)))


UNSENT = ("pending", "sending")
RELAY_AFTER_S = 60
RELAY_LEASE_S = 300
# a channel that is down is tried with one row every PROBE_EVERY_S at most, so its rows go
# within PROBE_EVERY_S + a tick of its return, however long it was down
PROBE_EVERY_S = 15
PROBE_LEASE_S = 60
# a row not delivered within a day of being written is marked failed, with its last error
GIVE_UP_AFTER_S = 24 * 3600


def due_for_relay(session: Session, now: datetime, limit: int = 500) -> list[int]:
    """Rows to enqueue again: pending for a while with no enqueue in flight (a lost enqueue, a
    restart), held by a sender that died (lease ran out), and, for each channel with rows
    waiting, the first of them once its wait is over: the probe, one row at a time, whose
    success releases the others. Rows older than GIVE_UP_AFTER_S are given up first.

    Each is leased (RELAY_LEASE_S, PROBE_LEASE_S) so one beat tick enqueues it, not every tick.
    """
    give_up_undelivered(session, now)
    expired = or_(Notification.claimed_until.is_(None), Notification.claimed_until < now)
    stale = or_(
        (Notification.status == "pending")
        & Notification.last_error.is_(None)
        & (Notification.created_at < now - timedelta(seconds=RELAY_AFTER_S))
        & expired,
        (Notification.status == "sending") & (Notification.claimed_until < now),
    )
    firsts = select(func.min(Notification.id)).where(_waiting()).group_by(Notification.channel)
    probes = list(
        session.scalars(select(Notification.id).where(Notification.id.in_(firsts), expired))
    )
    ids = list(session.scalars(select(Notification.id).where(stale).limit(limit)))
    for chosen, due, lease_s in ((ids, stale, RELAY_LEASE_S),
                                 (probes, _waiting() & expired, PROBE_LEASE_S)):  # fmt: skip
        if chosen:
            session.execute(
                update(Notification)
                .where(Notification.id.in_(chosen), due)
                .values(status="pending", claimed_until=now + timedelta(seconds=lease_s))
                .execution_options(synchronize_session=False)
            )
    return sorted(set(ids + probes))


def give_up_undelivered(session: Session, now: datetime) -> int:
    """Mark failed the rows not delivered within GIVE_UP_AFTER_S of being written, keeping
    their last error: however long a channel is down, the tries before that are not counted
    against a row."""
    too_old = (
        (Notification.status == "pending")
        & (Notification.created_at < now - timedelta(seconds=GIVE_UP_AFTER_S))
        & or_(Notification.claimed_until.is_(None), Notification.claimed_until < now)
    )
    ids = list(session.scalars(select(Notification.id).where(too_old).limit(500)))
    if not ids:  # the common case; and rows are then updated by id, locking only them
        return 0
    why = literal(f"not delivered within {GIVE_UP_AFTER_S // 3600} h; last error: ", Text)
    result = session.execute(
        update(Notification)
        .where(Notification.id.in_(ids), too_old)
        .values(status="failed", claimed_until=None, claim_token=None,
                last_error=why + func.coalesce(Notification.last_error, "none"))
        .execution_options(synchronize_session=False)
    )  # fmt: skip
    given: int = getattr(result, "rowcount", 0) or 0
    if given:
        log.warning("gave up %d notifications not delivered within %d h", given,
                    GIVE_UP_AFTER_S // 3600)  # fmt: skip
    return given


def _finish(
    factory: sessionmaker[Session], token: str, status: str, error: str | None,
    wait_s: float = PROBE_EVERY_S,
) -> str:  # fmt: skip
    """Mark the rows still held under ``token``; a sender whose lease ran out and whose rows
    were claimed again by another marks nothing. ``wait_s``: how long a row that did not go
    waits before the relay probes its channel with it."""
    values: dict[str, Any] = {
        "status": status, "last_error": error, "claimed_until": None, "claim_token": None,
    }  # fmt: skip
    if status == "sent":
        values["sent_at"] = utcnow()
    elif status == "pending":
        values["claimed_until"] = utcnow() + timedelta(seconds=wait_s)
    elif status == "unsent":  # nothing was tried: the claim's count is taken back
        values["attempts"] = Notification.attempts - 1
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
