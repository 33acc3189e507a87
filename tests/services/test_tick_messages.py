"""The messages a tick queues expire with their claims: a message that waited out its claim is
discarded by the worker that gets it, when the next tick may dispatch its runs again."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import Flask
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from rulewatch.db import transaction
from rulewatch.models import Rule, utcnow
from rulewatch.services.rules import create_rule
from rulewatch.tasks import verify_all_rules
from tests.targets import http_rule

RULES = 3


def _due_rules(factory: sessionmaker[Session]) -> list[int]:
    now = utcnow()
    with transaction(factory) as session:
        ids = [create_rule(session, http_rule("http://127.0.0.1:9/x", name=f"r{i}"), now).id
               for i in range(RULES)]  # fmt: skip
        session.execute(update(Rule).values(next_due_at=now - timedelta(seconds=1)))
    return sorted(ids)


def _claimed_until(factory: sessionmaker[Session]) -> dict[int, datetime | None]:
    with factory() as session:
        return {rid: until for rid, until in session.execute(select(Rule.id, Rule.claimed_until))}


def _aware(moment: datetime | None) -> datetime:
    assert moment is not None
    return moment if moment.tzinfo else moment.replace(tzinfo=utcnow().tzinfo)


def test_a_ticks_messages_expire_with_their_claims(
    app: Flask, factory: sessionmaker[Session]
) -> None:
    _due_rules(factory)
    ttl_s = app.extensions["rulewatch"].settings.claim_ttl_s
    with app.app_context():
        verify_all_rules.run()
    with app.extensions["celery"].connection_for_read() as conn:
        message = conn.SimpleQueue("checks").get(timeout=5)
    expires = datetime.fromisoformat(message.headers["expires"])
    assert {_aware(until) for until in _claimed_until(factory).values()} == {expires}
    assert expires - utcnow() <= timedelta(seconds=ttl_s)
