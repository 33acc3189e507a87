"""A batch queued while the database is down: a real worker (Redis, PostgreSQL) keeps retrying
it through a 45 s outage instead of giving up (five retries gave up about 19 s into a 30 s
outage before), and verifies the rules within seconds of the database's return, each due
time once. The worker reaches PostgreSQL through a relay the test cuts and restores."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from rulewatch import create_app, dispatch
from rulewatch.config import load_settings
from rulewatch.db import transaction
from rulewatch.models import MonitorGap, Rule, Verification, utcnow
from rulewatch.services.rules import create_rule
from rulewatch.services.scheduling import claim_due_rules
from rulewatch.tasks import VERIFY_RETRY_MAX_WAIT_S
from tests.integration.brokers import broker
from tests.integration.processes import spawn, stop, wait_for
from tests.targets import Target, http_rule
from tests.tcp_cut import relay

REDIS_DB = 12
RULES = 3
OUTAGE_S = 45


def _scheduled(factory: sessionmaker[Session]) -> list[tuple[int, datetime, datetime]]:
    query = select(Verification.rule_id, Verification.scheduled_for, Verification.started_at)
    with factory() as session:
        rows = session.execute(query.where(Verification.trigger == "schedule")).all()
    return [(rid, due, started) for rid, due, started in rows]


def test_a_worker_verifies_a_batch_within_seconds_of_the_databases_return(
    database: tuple[str, sessionmaker[Session]], tmp_path: Path
) -> None:
    url, factory = database
    log = tmp_path / "worker.log"
    with Target() as target, broker("redis", REDIS_DB) as queues, relay(("127.0.0.1", 5432)) as cut:
        with transaction(factory) as session:
            for i in range(RULES):
                create_rule(session, http_rule(target.url, name=f"rule {i}", interval_s=300),
                            utcnow())  # fmt: skip
            session.execute(update(Rule).values(next_due_at=utcnow()))
        worker_url = url.replace("@127.0.0.1:5432/", f"@127.0.0.1:{cut.port}/")
        env = {
            "RULEWATCH_HOME": str(tmp_path),
            "RULEWATCH_DATABASE_URL": worker_url,
            "RULEWATCH_BROKER_URL": queues.url,
            "RULEWATCH_RESULT_BACKEND": queues.url,
        }
        worker = spawn(["worker", "-c", "2"], env, log)
        try:
            cut.cut()
            with transaction(factory) as session:  # a tick claimed them just before the outage
                claims = claim_due_rules(session, utcnow(), limit=10, ttl_s=300)
            settings = load_settings({"RULEWATCH_HOME": str(tmp_path / "sender")})
            sender = replace(settings, database_url=url, broker_url=queues.url,
                             result_backend=queues.url)  # fmt: skip
            with create_app(sender).app_context():
                dispatch.claimed_runs(sender, claims, "tick")
            wait_for(lambda: "Retry in" in log.read_text(), 60, "the batch's first retry", log)
            time.sleep(OUTAGE_S)  # the outage itself: the worker must not give up meanwhile
            assert not _scheduled(factory)
            cut.restore()
            back = time.monotonic()
            wait_for(lambda: len(_scheduled(factory)) >= RULES, 60, "the batch recorded", log)
            resumed_s = time.monotonic() - back
        finally:
            stop(worker)
    text = log.read_text()
    print(f"recorded {resumed_s:.1f} s after the database's return")
    assert resumed_s <= VERIFY_RETRY_MAX_WAIT_S + 5, text[-3000:]
    assert sorted(rid for rid, _, _ in _scheduled(factory)) == sorted(c.rule_id for c in claims)
    assert {due for _, due, _ in _scheduled(factory)} == {c.due for c in claims}
    assert "gave back" not in text and "Traceback" not in text, text[-3000:]
    assert 1 <= text.count("is unavailable") <= 2  # once per pool process that met it
    with factory() as session:  # the outage is a gap of each rule, never a failure
        gaps = session.execute(select(MonitorGap.rule_id, MonitorGap.seconds)).all()
        statuses = set(session.scalars(select(Verification.status)))
    assert sorted(rid for rid, _ in gaps) == sorted(c.rule_id for c in claims)
    assert all(seconds >= OUTAGE_S for _, seconds in gaps) and statuses == {"pass"}
