"""A beat tick's alert latch: the tick's grouped alerts are sent as soon as its last batch is
recorded, not after a fixed wait.

A latch is a countdown kept in the database (`TickLatch` rows), so it works on every engine
and broker, with or without a result backend. Its parties are the tick itself and each batch
(a `verify` or `verify_batch` task) the tick dispatched:

- the tick adds a row per batch in the transaction that claims the batch's rules, before it
  sends the batch, and one for itself with its first batch; a batch is known by its first
  verification id, which is fixed at dispatch, so a retried or redelivered message names the
  same row;
- a batch reports when it is done (recorded, or given up), and the tick when its claim loop
  ends (the latch is sealed: no batch can join it any more). Reporting marks the party's row
  once (a second report of the same party changes nothing), commits, and then looks whether
  any row of the tick is still unreported: of two last parties reporting at once, the one
  that commits last sees the other's report, so one of them always releases;
- releasing deletes the tick's rows (whoever deletes them releases; a second reporter finds
  none) and hands back the tick's grouped outbox rows that nobody tried to send yet.

A tick's outbox rows are not enqueued at their commit while its latch is open: the release
sends them. A batch that never reports (its worker killed, its message lost) would hold them
for ever, so beat's tick releases every latch older than RULEWATCH_ALERT_GROUP_WAIT_S
(`expire`): the wait is only an upper bound. Rows committed once the latch is gone go at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from rulewatch.db import transaction
from rulewatch.models import Notification, TickLatch


def add_parties(session: Session, tick: str, batches: Sequence[str], first: bool) -> None:
    """Add the tick's next ``batches`` (their first verification ids) to its latch, in the
    transaction that claims their rules; the ``first`` call adds the tick itself too."""
    if not batches:
        return
    parties = [tick, *batches] if first else list(batches)
    session.execute(insert(TickLatch), [{"tick": tick, "party": p} for p in parties])


def report(factory: sessionmaker[Session], tick: str, party: str, now: datetime) -> list[int]:
    """Count ``party`` down on ``tick``'s latch; if that released it, the ids of the tick's
    outbox rows to send now (one per group), else none."""
    with transaction(factory) as session:
        session.execute(
            update(TickLatch)
            .where(
                TickLatch.tick == tick, TickLatch.party == party, TickLatch.reported_at.is_(None)
            )
            .values(reported_at=now)
        )
    with factory() as session:  # after the commit: see every report committed before ours
        waiting = session.scalar(
            select(func.count())
            .select_from(TickLatch)
            .where(TickLatch.tick == tick, TickLatch.reported_at.is_(None))
        )
    return [] if waiting else _release(factory, tick)


def expire(factory: sessionmaker[Session], now: datetime, wait_s: float) -> list[int]:
    """Release the latches of ticks older than ``wait_s`` (a party never reported); the ids
    of their outbox rows to send now, one per group."""
    with factory() as session:
        old = session.scalars(
            select(TickLatch.tick).where(
                TickLatch.party == TickLatch.tick,
                TickLatch.created_at < now - timedelta(seconds=wait_s),
            )
        ).all()
    return [nid for tick in old for nid in _release(factory, tick)]


def _release(factory: sessionmaker[Session], tick: str) -> list[int]:
    """Delete the tick's latch; if this call deleted it, its unsent rows, one per group."""
    with transaction(factory) as session:
        released = session.execute(delete(TickLatch).where(TickLatch.tick == tick))
        if not getattr(released, "rowcount", 0):
            return []  # another party released it, or there was no latch
        return _unsent(session, tick)


def _unsent(session: Session, tick: str) -> list[int]:
    """One row of each of the tick's groups that nobody has tried to send yet."""
    query = (
        select(func.min(Notification.id))
        .where(
            Notification.tick == tick,
            Notification.status == "pending",
            Notification.claimed_until.is_(None),
        )
        .group_by(Notification.channel, Notification.group_key)
    )
    return sorted(session.scalars(query))


def open_ticks(factory: sessionmaker[Session], ticks: Iterable[str]) -> set[str]:
    """Which of ``ticks`` still have a latch (a party that has not reported)."""
    wanted = sorted(set(ticks))
    if not wanted:
        return set()
    with factory() as session:
        query = select(TickLatch.tick).where(TickLatch.tick.in_(wanted)).distinct()
        return set(session.scalars(query))
