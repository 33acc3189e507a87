"""A tick's alert latch: its grouped alerts go as soon as its last batch reports, and the
group wait is only an upper bound, for a batch that never reports."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from rulewatch import create_app, dispatch
from rulewatch.config import AlertDefaults, Settings, SmtpSettings
from rulewatch.db import transaction
from rulewatch.models import Notification, Rule, TickLatch, utcnow
from rulewatch.probes import ProbeContext
from rulewatch.services import alert_latch
from rulewatch.services.notifications import send
from rulewatch.services.rules import create_rule
from rulewatch.services.verification import Alerting, Job, verify_jobs
from rulewatch.tasks import verify_all_rules
from tests.smtp_server import Inbox
from tests.targets import http_rule

CTX = ProbeContext(datasources={})
DOWN = "http://127.0.0.1:9/"  # nothing listens on the discard port
WAIT_S = 60.0
OPS, DEV = "ops@example.com", "dev@example.com"
Sends = list[tuple[list[int], float]]


@pytest.fixture
def sends(factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch) -> Sends:
    """The sends the outbox asks the broker for, as (ids, countdown), from the real hook."""
    calls: Sends = []
    monkeypatch.setattr(
        dispatch, "send_notifications", lambda ids, countdown_s=0: calls.append((ids, countdown_s))
    )
    dispatch.send_outbox_at_commit(factory)
    return calls


def _rules(factory: sessionmaker[Session], names: list[str], emails: list[str]) -> list[int]:
    alert = {"emails": emails, "failure_threshold": 1}
    with transaction(factory) as session:
        return [create_rule(session, http_rule(DOWN, name=n, alert=alert), utcnow()).id
                for n in names]  # fmt: skip


def _jobs(rule_ids: list[int], tick: str) -> list[Job]:
    return [Job(rid, str(uuid.uuid4()), None, tick) for rid in rule_ids]


def _open(factory: sessionmaker[Session], tick: str, batches: list[list[Job]]) -> None:
    """The tick's claim transaction: its batches join the latch, known by their first id."""
    with transaction(factory) as session:
        alert_latch.add_parties(session, tick, [b[0].verification_id for b in batches], first=True)


def _report(factory: sessionmaker[Session], tick: str, party: str) -> list[int]:
    return alert_latch.report(factory, tick, party, utcnow())


def _smtp(port: int) -> SmtpSettings:
    return SmtpSettings(host="127.0.0.1", port=port, sender="rw@example.com", timeout_s=5)


def _latch_rows(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(TickLatch)) or 0


def test_a_ticks_alerts_go_once_its_last_batch_reports_as_one_email_per_recipient(
    factory: sessionmaker[Session], sends: Sends, inbox: Inbox, smtp_port: int
) -> None:
    ops_only = _rules(factory, ["api a", "api b", "api c"], [OPS])
    shared = _rules(factory, ["db x", "db y"], [OPS, DEV])
    tick = str(uuid.uuid4())
    first, second = _jobs(ops_only[:2], tick), _jobs(ops_only[2:] + shared, tick)
    _open(factory, tick, [first, second])
    verify_jobs(factory, first, CTX, Alerting(AlertDefaults(), "http://rw.example"))
    assert _report(factory, tick, first[0].verification_id) == []
    assert _report(factory, tick, tick) == [], "the second batch has not reported"
    verify_jobs(factory, second, CTX, Alerting(AlertDefaults(), "http://rw.example"))
    assert sends == [], "while the latch is open, the tick's rows wait for it"
    released = _report(factory, tick, second[0].verification_id)
    assert len(released) == 2, "one send per recipient's group"
    assert _report(factory, tick, second[0].verification_id) == [], "a redelivery, counted once"
    assert _latch_rows(factory) == 0, "a released latch is deleted"
    for notification_id in released:
        assert send(factory, _smtp(smtp_port), notification_id) == "sent"
    by_to = {m["To"]: m["Subject"] for m in inbox.messages}
    assert len(inbox.messages) == 2
    assert by_to == {OPS: "[FIRING] 5 rules: api a, api b, api c and 2 more",
                     DEV: "[FIRING] 2 rules: db x, db y"}  # fmt: skip
    with factory() as session:
        assert {r.status for r in session.scalars(select(Notification))} == {"sent"}


def test_the_group_wait_still_sends_a_ticks_alerts_when_a_batch_never_reports(
    factory: sessionmaker[Session], sends: Sends, inbox: Inbox, smtp_port: int
) -> None:
    recorded, lost = _rules(factory, ["api a"], [OPS]), _rules(factory, ["api b"], [OPS])
    tick = str(uuid.uuid4())
    first, never = _jobs(recorded, tick), _jobs(lost, tick)
    _open(factory, tick, [first, never])
    verify_jobs(factory, first, CTX, Alerting(AlertDefaults(), "http://rw.example"))
    assert _report(factory, tick, first[0].verification_id) == []
    assert _report(factory, tick, tick) == [], "the lost batch holds the latch"
    assert sends == []
    assert alert_latch.expire(factory, utcnow(), WAIT_S) == [], "within the group wait"
    later = utcnow() + timedelta(seconds=WAIT_S + 1)  # beat's tick once the wait has run out
    [expired] = alert_latch.expire(factory, later, WAIT_S)
    assert alert_latch.expire(factory, later, WAIT_S) == [], "released once"
    assert _report(factory, tick, never[0].verification_id) == [], "the late batch: nothing"
    assert _latch_rows(factory) == 0
    assert send(factory, _smtp(smtp_port), expired) == "sent"
    assert [m["Subject"] for m in inbox.messages] == ["[FIRING] api a"]


def test_a_ticks_rows_committed_after_its_release_go_at_once(
    factory: sessionmaker[Session], sends: Sends
) -> None:
    early, late = _rules(factory, ["api a"], [OPS]), _rules(factory, ["slow b"], [OPS])
    tick = str(uuid.uuid4())
    batch = _jobs(early, tick)
    _open(factory, tick, [batch])
    verify_jobs(factory, batch, CTX, Alerting(AlertDefaults(), "http://rw.example"))
    assert _report(factory, tick, batch[0].verification_id) == []
    assert len(_report(factory, tick, tick)) == 1, "the tick sealed last: it releases"
    sends.clear()
    # a slow probe of the tick recorded after its batch returned alerts on its own, now
    verify_jobs(factory, _jobs(late, tick), CTX, Alerting(AlertDefaults(), "http://rw.example"))
    [(ids, countdown)] = sends
    assert countdown == 0 and len(ids) == 1


def test_a_manual_runs_alerts_go_at_commit(factory: sessionmaker[Session], sends: Sends) -> None:
    rule_ids = _rules(factory, ["api a", "api b"], [OPS])
    jobs = [Job(rid, str(uuid.uuid4())) for rid in rule_ids]
    verify_jobs(factory, jobs, CTX, Alerting(AlertDefaults(), "http://rw.example"))
    [(ids, countdown)] = sends
    assert countdown == 0 and len(ids) == 2, "not grouped: one send a row, now"
    with factory() as session:
        assert {r.tick for r in session.scalars(select(Notification))} == {None}


def test_of_the_last_parties_reporting_at_once_exactly_one_releases(
    factory: sessionmaker[Session],
) -> None:
    ticks = [str(uuid.uuid4()) for _ in range(20)]
    parties = {tick: [str(uuid.uuid4()), str(uuid.uuid4())] for tick in ticks}
    with transaction(factory) as session:
        for tick in ticks:
            alert_latch.add_parties(session, tick, parties[tick], first=True)
            session.add(_row(tick))
    for tick in ticks:
        assert _report(factory, tick, tick) == []
    start = threading.Barrier(2)

    def report(tick: str, party: str) -> list[int]:
        start.wait(10)
        return _report(factory, tick, party)

    released = []
    with ThreadPoolExecutor(2) as pool:
        for tick in ticks:  # each tick's two batches report together
            both = [pool.submit(report, tick, party) for party in parties[tick]]
            released.append([f.result() for f in both])
    assert all(sorted(map(len, pair)) == [0, 1] for pair in released), released
    assert _latch_rows(factory) == 0


def _row(tick: str) -> Notification:
    return Notification(kind="firing", recipients=[OPS], subject="s", body_text="s",
                        body_html="s", status="pending", attempts=0,
                        group_key=f"firing:{tick}:{OPS}", tick=tick)  # fmt: skip


def test_a_tick_adds_each_batch_it_sends_to_its_latch_and_seals_it_at_the_end(
    settings: Settings,
) -> None:
    app = create_app(replace(settings, chunk_size=2, claim_batch=3))  # 5 rules: 2+1, then 2
    factory = app.extensions["rulewatch"].factory
    now = utcnow()
    with transaction(factory) as session:
        for i in range(5):
            create_rule(session, http_rule(DOWN, name=f"r{i}"), now)
        session.execute(update(Rule).values(next_due_at=now - timedelta(seconds=1)))
    with app.app_context():
        answer = verify_all_rules.run()
    with app.extensions["celery"].connection_for_read() as conn:
        conn.SimpleQueue("checks").clear()  # the in-memory broker is the process's, not the test's
    with factory() as session:
        latch = session.execute(select(TickLatch.tick, TickLatch.party, TickLatch.reported_at))
        rows = [(tick, party, reported is not None) for tick, party, reported in latch]
    app.extensions["rulewatch"].engine.dispose()
    assert answer["dispatched"] == 5
    [tick] = {tick for tick, _, _ in rows}
    assert (tick, tick, True) in rows, "the tick itself, reported: the latch is sealed"
    assert sorted(done for _, party, done in rows if party != tick) == [False] * 3
