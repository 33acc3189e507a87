"""verify_one and the batch path against a real HTTP target and real databases."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from rulewatch.db import transaction
from rulewatch.models import HourlyRollup, Rule, Verification, utcnow
from rulewatch.probes import ProbeContext
from rulewatch.services.rules import create_rule
from rulewatch.services.scheduling import claim_due_rules
from rulewatch.services.stability import stability_report
from rulewatch.services.verification import Job, verify_jobs, verify_one
from tests.targets import Target, http_rule

CTX = ProbeContext(datasources={})


def _rule(factory: sessionmaker[Session], url: str, name: str = "orders API") -> int:
    with transaction(factory) as session:
        return create_rule(session, http_rule(url, name=name), utcnow()).id


def test_it_records_a_passing_verification_with_resolved_conditions(
    factory: sessionmaker[Session],
) -> None:
    with Target() as target:
        rule_id = _rule(factory, target.url)
        result = verify_one(factory, Job(rule_id, str(uuid.uuid4())), CTX)
    assert result["status"] == "pass"
    assert result["conditions"][0] == {
        "condition": "[STATUS] == 200", "resolved": "[STATUS] (200) == 200", "ok": True,
    }  # fmt: skip
    with factory() as session:
        rule = session.get(Rule, rule_id)
        assert rule is not None and rule.last_status == "pass"
        stored = session.get(Verification, result["id"])
        assert stored is not None and stored.trigger == "manual"


def test_it_records_a_failing_target_as_fail_with_the_value_seen(
    factory: sessionmaker[Session],
) -> None:
    with Target() as target:
        target.status = 500
        target.body = {"status": "DOWN"}
        rule_id = _rule(factory, target.url)
        result = verify_one(factory, Job(rule_id, str(uuid.uuid4())), CTX)
    assert result["status"] == "fail"
    resolved = [c["resolved"] for c in result["conditions"]]
    assert "[STATUS] (500) == 200" in resolved
    assert "[BODY].status (DOWN) == UP" in resolved


def test_it_records_an_unreachable_target_as_fail(factory: sessionmaker[Session]) -> None:
    rule_id = _rule(factory, "http://127.0.0.1:9/health")
    result = verify_one(factory, Job(rule_id, str(uuid.uuid4())), CTX)
    assert result["status"] == "fail"
    assert result["error"]


def test_it_does_not_record_the_same_verification_id_twice(
    factory: sessionmaker[Session],
) -> None:
    with Target() as target:
        rule_id = _rule(factory, target.url)
        job = Job(rule_id, str(uuid.uuid4()))
        first = verify_one(factory, job, CTX)
        second = verify_one(factory, job, CTX)
        assert target.hits == 1
    assert second["id"] == first["id"]
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(Verification)) == 1
        assert session.scalar(select(func.sum(HourlyRollup.passed))) == 1


def test_it_advances_the_due_time_without_drift_and_releases_the_claim(
    factory: sessionmaker[Session],
) -> None:
    with Target() as target:
        rule_id = _rule(factory, target.url)
        due = utcnow().replace(microsecond=0) - timedelta(seconds=5)
        with transaction(factory) as session:
            session.execute(update(Rule).values(next_due_at=due))
        with transaction(factory) as session:
            [claim] = claim_due_rules(session, utcnow(), limit=10, ttl_s=60)
        result = verify_one(factory, Job(rule_id, claim.verification_id, claim.due), CTX)
    assert result["status"] == "pass"
    with factory() as session:
        rule = session.get(Rule, rule_id)
        assert rule is not None
        assert rule.next_due_at == due + timedelta(seconds=60)
        assert rule.claim_token is None and rule.claimed_until is None


def test_it_skips_a_superseded_claim_without_probing(factory: sessionmaker[Session]) -> None:
    with Target() as target:
        rule_id = _rule(factory, target.url)
        with transaction(factory) as session:
            session.execute(update(Rule).values(next_due_at=utcnow() - timedelta(seconds=1)))
        with transaction(factory) as session:
            [lost] = claim_due_rules(session, utcnow(), limit=10, ttl_s=1)
        with transaction(factory) as session:
            [again] = claim_due_rules(session, utcnow() + timedelta(minutes=5), 10, 1)
        stale = verify_one(factory, Job(rule_id, lost.verification_id, lost.due), CTX)
        fresh = verify_one(factory, Job(rule_id, again.verification_id, again.due), CTX)
        assert target.hits == 1
    assert "superseded" in stale["skipped"]
    assert fresh["status"] == "pass"


def test_it_computes_stability_equal_to_the_raw_verifications(
    factory: sessionmaker[Session],
) -> None:
    with Target() as target:
        ids = [_rule(factory, target.url, name=f"rule {i}") for i in range(3)]
        for status in (200, 200, 500, 200, 500):
            target.status = status
            verify_jobs(factory, [Job(i, str(uuid.uuid4())) for i in ids], CTX)
    with factory() as session:
        report = stability_report(session, "24h", utcnow())
        raw = dict(
            session.execute(
                select(Verification.status, func.count()).group_by(Verification.status)
            ).all()
        )
    assert (report.overall.counts.passed, report.overall.counts.failed) == (
        raw["pass"],
        raw["fail"],
    )
    assert report.overall.rate == raw["pass"] / (raw["pass"] + raw["fail"])
    assert all(r.rate == 3 / 5 for r in report.rules)


def _in_thread(fn: Any) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(fn()))
    thread.start()
    return thread, out


def test_it_records_nothing_for_a_run_whose_claim_was_taken_while_it_probed(
    factory: sessionmaker[Session],
) -> None:
    with Target() as target:
        rule_id = _rule(factory, target.url)
        with transaction(factory) as session:
            session.execute(update(Rule).values(next_due_at=utcnow() - timedelta(seconds=1)))
        with transaction(factory) as session:
            [slow] = claim_due_rules(session, utcnow(), limit=10, ttl_s=1)
        target.hold()
        thread, out = _in_thread(
            lambda: verify_one(factory, Job(rule_id, slow.verification_id, slow.due), CTX)
        )
        assert target.arrived.wait(10), "the slow run never probed"
        with transaction(factory) as session:  # its claim expires and is taken again
            [again] = claim_due_rules(session, utcnow() + timedelta(seconds=5), 10, ttl_s=60)
        target.release.set()
        thread.join()
        fresh = verify_one(factory, Job(rule_id, again.verification_id, again.due), CTX)
    assert "superseded while probing" in out[0]["skipped"]
    assert fresh["status"] == "pass"
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(Verification)) == 1


def test_it_skips_a_rule_deleted_while_it_was_probed(factory: sessionmaker[Session]) -> None:
    with Target() as target:
        rule_id = _rule(factory, target.url)
        target.hold()
        thread, out = _in_thread(lambda: verify_one(factory, Job(rule_id, str(uuid.uuid4())), CTX))
        assert target.arrived.wait(10), "the run never probed"
        with transaction(factory) as session:
            session.delete(session.get(Rule, rule_id))
        target.release.set()
        thread.join()
    assert out and out[0]["skipped"] == "rule deleted while being verified"
