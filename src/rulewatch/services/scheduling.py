"""Claiming due rules so that each due run is dispatched once, however many beats race."""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import case, or_, select, update
from sqlalchemy.orm import Session

from rulewatch.db import lock_for_update
from rulewatch.models import Rule

MAX_CHECK_S = 120.0
# Celery's time limits past a check's timeout_s (dispatch.time_limits): the soft limit
# raises in the task (which then gives its claims back), the hard one kills the pool
# process. A started claim holds until the hard limit, and a killed worker's rules must be
# verified again within timeout_s + 30 s: 20 s leaves 10 s for the next tick to claim them
# again and a worker to start the run.
SOFT_LIMIT_AFTER_TIMEOUT_S = 10.0
HARD_LIMIT_AFTER_TIMEOUT_S = 20.0
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claim:
    """One due run of one rule, owned by the dispatcher that claimed it."""

    rule_id: int
    verification_id: str
    due: datetime
    timeout_s: float


class ScheduledRun(Protocol):
    """A run a task was given: a claimed due time (``due`` set) or a manual run."""

    @property
    def rule_id(self) -> int: ...

    @property
    def due(self) -> datetime | None: ...

    def holds_claim(self, claim_token: str | None, next_due_at: datetime) -> bool:
        """True when the rule's current claim is this run's (always true for a manual run)."""
        ...


def timeout_s_of(target: Mapping[str, Any]) -> float:
    """How long a check of this target may take (its ``timeout_s``, 10 s by default)."""
    return float(target.get("timeout_s", 10))


def verification_id_for(claim_token: str, rule_id: int) -> str:
    """The verification id a claim fixes at dispatch, derivable from the rule's claim token."""
    return str(uuid.uuid5(uuid.UUID(claim_token), str(rule_id)))


def claim_due_rules(session: Session, now: datetime, limit: int, ttl_s: float) -> list[Claim]:
    """Claim up to ``limit`` due rules in the caller's transaction.

    A rule is claimable when enabled, due, and not claimed, or its claim expired (``ttl_s``
    after claiming) with no verification recorded: a lost message is dispatched again.
    The conditional UPDATE re-checks that predicate, so two dispatchers racing over the
    same rows claim each one once. On PostgreSQL and MySQL the candidates are locked with
    SKIP LOCKED, so racers take disjoint sets; on SQLite the UPDATE's write lock serialises
    racers, and its re-check leaves out the rows an earlier racer took.
    """
    claimable = (
        Rule.enabled.is_(True),
        Rule.next_due_at <= now,
        or_(Rule.claimed_until.is_(None), Rule.claimed_until < now),
    )
    candidates = (
        select(Rule.id, Rule.claimed_until)
        .where(*claimable)
        .order_by(Rule.next_due_at)
        .limit(limit)
    )
    found = session.execute(lock_for_update(candidates, session, skip_locked=True)).all()
    if not found:
        return []
    token = str(uuid.uuid4())
    session.execute(
        update(Rule)
        .where(Rule.id.in_([rid for rid, _ in found]), *claimable)
        # in this order: MySQL's SET reads the columns an earlier assignment has changed
        .ordered_values(
            (
                Rule.redispatches,
                Rule.redispatches + case((Rule.claimed_until.is_(None), 0), else_=1),
            ),
            (Rule.claimed_until, now + timedelta(seconds=ttl_s)),
            (Rule.claim_token, token),
        )
        .execution_options(synchronize_session=False)
    )
    rows = session.execute(
        select(Rule.id, Rule.next_due_at, Rule.target).where(Rule.claim_token == token)
    ).all()
    _log_redispatches(
        sorted({rid for rid, until in found if until is not None} & {r.id for r in rows})
    )
    return [
        Claim(rid, verification_id_for(token, rid), due, timeout_s_of(target))
        for rid, due, target in rows
    ]


def _log_redispatches(rule_ids: Sequence[int]) -> None:
    """One line per claiming round that dispatches due runs again (counted in /metrics)."""
    if rule_ids:
        shown = ", ".join(map(str, rule_ids[:20])) + (", ..." if len(rule_ids) > 20 else "")
        log.warning(
            "re-dispatching %d due runs whose claim expired or was given back unrecorded"
            " (rules %s)", len(rule_ids), shown,
        )  # fmt: skip


def hold_while_running(session: Session, runs: Sequence[ScheduledRun], now: datetime) -> int:
    """A task has started these runs: hold each still-current claim only as long as the task
    can run (until Celery's hard time limit, timeout_s + 20 s), not the queue-time TTL, so a
    worker killed mid-check frees its rules soon after; how many claims it holds."""
    return _set_claimed_until(session, runs, lambda timeout_s: now + _run_limit(timeout_s))


def give_back(session: Session, runs: Sequence[ScheduledRun], now: datetime) -> int:
    """A task gives these runs up: their still-current claims expire now, so the next tick
    dispatches them again; how many it gave back."""
    return _set_claimed_until(session, runs, lambda _: now)


def _run_limit(timeout_s: float) -> timedelta:
    return timedelta(seconds=timeout_s + HARD_LIMIT_AFTER_TIMEOUT_S)


def _set_claimed_until(
    session: Session, runs: Sequence[ScheduledRun], until: Callable[[float], datetime]
) -> int:
    """Move the claims the runs still hold; the token in the WHERE leaves alone a claim that
    changed since it was read (re-dispatched, or released by a recorded run). One UPDATE per
    (token, new expiry): a batch's claims share a token and mostly a timeout, so a 500-rule
    batch costs one or two statements, not 500."""
    scheduled = {run.rule_id for run in runs if run.due is not None}
    if not scheduled:  # manual runs hold no claim: no query for a "verify now"
        return 0
    query = select(Rule.id, Rule.claim_token, Rule.next_due_at, Rule.target).where(
        Rule.id.in_(scheduled), Rule.claim_token.is_not(None)
    )
    rows = {rid: (token, due, target) for rid, token, due, target in session.execute(query)}
    held: dict[tuple[str, datetime], list[int]] = defaultdict(list)
    for run in runs:
        row = rows.get(run.rule_id)
        if run.due is not None and row is not None and run.holds_claim(row[0], row[1]):
            held[(row[0], until(timeout_s_of(row[2])))].append(run.rule_id)
    for (token, expiry), rule_ids in held.items():
        session.execute(
            update(Rule)
            .where(Rule.id.in_(rule_ids), Rule.claim_token == token)
            .values(claimed_until=expiry)
            .execution_options(synchronize_session=False)
        )
    return sum(map(len, held.values()))
