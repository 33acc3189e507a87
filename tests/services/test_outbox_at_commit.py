"""The outbox sends itself: rows a transaction inserts are handed over once it commits."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy.orm import Session, sessionmaker

from rulewatch.config import AlertDefaults
from rulewatch.db import after_commit_of_new, transaction
from rulewatch.models import Notification, utcnow
from rulewatch.probes import ProbeContext
from rulewatch.services.rules import change_rule, create_rule, get_rule
from rulewatch.services.verification import Alerting, Job, verify_one
from tests.targets import http_rule

DEFAULTS = AlertDefaults()
ALERT = {"emails": ["ops@example.com"], "failure_threshold": 1}
DOWN = "http://127.0.0.1:9/"  # nothing listens on the discard port


def _row(subject: str, group_key: str | None = None) -> Notification:
    return Notification(kind="firing", recipients=["ops@example.com"], subject=subject,
                        body_text=subject, body_html=subject, group_key=group_key)  # fmt: skip


def _watch(factory: sessionmaker[Session]) -> list[list[tuple[int, str]]]:
    handed: list[list[tuple[int, str]]] = []
    after_commit_of_new(
        factory, Notification, lambda rows: handed.append([(r.id, r.subject) for r in rows])
    )
    return handed


def test_it_hands_over_the_rows_a_transaction_inserted_once_it_commits(
    factory: sessionmaker[Session],
) -> None:
    handed = _watch(factory)
    with transaction(factory) as session:
        session.add_all([_row("a"), _row("b")])
        session.flush()
        assert handed == [], "nothing is handed over before the commit"
    with factory() as session:  # a plain session committed by hand is covered too
        session.add(_row("c"))
        session.commit()
    assert [sorted(s for _, s in batch) for batch in handed] == [["a", "b"], ["c"]]
    assert all(isinstance(nid, int) for batch in handed for nid, _ in batch)


def test_it_forgets_the_rows_of_a_transaction_that_rolls_back(
    factory: sessionmaker[Session],
) -> None:
    handed = _watch(factory)
    with pytest.raises(RuntimeError), transaction(factory) as session:
        session.add(_row("lost"))
        session.flush()
        raise RuntimeError("the request failed after writing")
    with transaction(factory) as session:
        session.add(_row("kept"))
    assert [[s for _, s in batch] for batch in handed] == [["kept"]]


def test_it_hands_over_the_alerts_of_a_verification_and_of_pausing_its_rule(
    factory: sessionmaker[Session],
) -> None:
    with transaction(factory) as session:
        rule_id = create_rule(session, http_rule(DOWN, alert=ALERT), utcnow()).id
    handed = _watch(factory)
    alerting = Alerting(DEFAULTS, "http://rw.example")
    verify_one(factory, Job(rule_id, str(uuid.uuid4())), ProbeContext(datasources={}), alerting)
    with transaction(factory) as session:
        rule = get_rule(session, rule_id)
        change_rule(session, rule, {"enabled": False}, utcnow(), DEFAULTS, "http://rw.example")
    assert [[s for _, s in batch] for batch in handed] == [
        ["[FIRING] orders API"], ["[RESOLVED] orders API"],
    ]  # fmt: skip
