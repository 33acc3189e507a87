"""Claiming due rules so that each due run is dispatched once, however many beats race."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from rulewatch.db import lock_for_update
from rulewatch.models import Rule

MAX_CHECK_S = 120.0


@dataclass(frozen=True)
class Claim:
    """One due run of one rule, owned by the dispatcher that claimed it."""

    rule_id: int
    verification_id: str
    due: datetime
    timeout_s: float


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
    candidates = select(Rule.id).where(*claimable).order_by(Rule.next_due_at).limit(limit)
    ids = list(session.scalars(lock_for_update(candidates, session, skip_locked=True)))
    if not ids:
        return []
    token = str(uuid.uuid4())
    session.execute(
        update(Rule)
        .where(Rule.id.in_(ids), *claimable)
        .values(claimed_until=now + timedelta(seconds=ttl_s), claim_token=token)
        .execution_options(synchronize_session=False)
    )
    rows = session.execute(
        select(Rule.id, Rule.next_due_at, Rule.target).where(Rule.claim_token == token)
    ).all()
    return [
        Claim(rid, verification_id_for(token, rid), due, float(target.get("timeout_s", 10)))
        for rid, due, target in rows
    ]
