"""A scheduled batch leaves its slow checks running and returns: they are recorded as they
end, under their claims, or their claims are given back."""

from __future__ import annotations

import multiprocessing
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from rulewatch.db import transaction
from rulewatch.models import Rule, Verification, utcnow
from rulewatch.probes import ProbeContext
from rulewatch.probes import runner as probe_runner
from rulewatch.probes.loop import ProbeLoop
from rulewatch.probes.runner import LEAVE_AFTER_S, Leave, ProbeCall, probe_all, probe_in_flushes
from rulewatch.services.rules import create_rule
from rulewatch.services.scheduling import claim_due_rules, hold_while_running
from rulewatch.services.verification import Job, verify_jobs
from tests.targets import Target, http_rule

CTX = ProbeContext(datasources={})


def _claimed_jobs(factory: sessionmaker[Session], urls: list[str]) -> list[Job]:
    """Due rules against ``urls``, claimed and started as a tick and its task would."""
    now = utcnow()
    with transaction(factory) as session:
        for i, url in enumerate(urls):
            create_rule(session, http_rule(url, name=f"rule {i}"), now)
        session.execute(update(Rule).values(next_due_at=now - timedelta(seconds=1)))
    with transaction(factory) as session:
        claims = claim_due_rules(session, utcnow(), limit=100, ttl_s=300)
        jobs = [Job(c.rule_id, c.verification_id, c.due, "tick") for c in claims]
        hold_while_running(session, jobs, utcnow())
    return jobs


def _recorded(factory: sessionmaker[Session]) -> dict[int, Verification]:
    with factory() as session:
        return {v.rule_id: v for v in session.scalars(select(Verification))}


def _wait_for(check: Callable[[], object], timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not check() and time.monotonic() < deadline:
        time.sleep(0.05)  # polls for an outcome, stages nothing


def test_it_returns_once_only_slow_checks_are_left_and_records_them_as_they_end(
    factory: sessionmaker[Session],
) -> None:
    with Target() as fast, Target() as slow:
        slow.hold()  # answers only once the batch has returned
        jobs = _claimed_jobs(factory, [fast.url] * 3 + [slow.url])
        slow_job = next(job for job in jobs if job.rule_id == max(j.rule_id for j in jobs))
        results = {r["rule_id"]: r for r in verify_jobs(factory, jobs, CTX, leave_slow=True)}
        recorded_at_return = set(_recorded(factory))
        with factory() as session:
            held_until = session.get_one(Rule, slow_job.rule_id).claimed_until
        slow.release.set()
        _wait_for(lambda: slow_job.rule_id in _recorded(factory))
    assert results[slow_job.rule_id]["status"] is None
    assert "recorded when the target answers" in results[slow_job.rule_id]["pending"]
    assert {r["status"] for rid, r in results.items() if rid != slow_job.rule_id} == {"pass"}
    assert recorded_at_return == {job.rule_id for job in jobs} - {slow_job.rule_id}
    assert held_until is not None and held_until > utcnow(), "the claim is held while it runs"
    left = _recorded(factory)[slow_job.rule_id]
    assert (left.id, left.status, left.scheduled_for) == (slow_job.verification_id, "pass",
                                                          slow_job.due)  # fmt: skip
    with factory() as session:
        rule = session.get_one(Rule, slow_job.rule_id)
        assert (rule.claim_token, rule.last_status) == (None, "pass")
        assert rule.next_due_at > slow_job.due


def test_it_waits_for_a_manual_run_however_slow(factory: sessionmaker[Session]) -> None:
    with Target() as slow:
        slow.delay_s = LEAVE_AFTER_S + 0.5  # still running when a scheduled one would leave
        with transaction(factory) as session:
            rule_id = create_rule(session, http_rule(slow.url), utcnow()).id
        [result] = verify_jobs(factory, [Job(rule_id, str(uuid.uuid4()))], CTX, leave_slow=True)
    assert result["status"] == "pass"
    assert "pending" not in result


@pytest.fixture
def loop(monkeypatch: pytest.MonkeyPatch) -> Iterator[ProbeLoop]:
    """A probe loop of the test's own, so closing it leaves the process's loop alone."""
    own = ProbeLoop()
    monkeypatch.setattr(probe_runner, "probe_loop", lambda: own)
    yield own
    own.close()


def _into(flushed: list[int]) -> Callable[[list[tuple[int, Any]]], None]:
    """A flush that notes the indexes it was given."""
    return lambda seen: flushed.extend(index for index, _ in seen)


def _held_calls(target: Target, count: int, timeout_s: float = 25) -> list[ProbeCall]:
    return [ProbeCall("http", {"url": target.url, "timeout_s": timeout_s})] * count


def test_it_gives_up_checks_left_running_past_their_limit(loop: ProbeLoop) -> None:
    given_up: list[list[int]] = []
    flushed: list[int] = []
    with Target() as slow:
        slow.hold()
        leave = Leave(limit_s=1.5, record=_into(flushed), give_up=given_up.append, after_s=0.2)
        left = probe_in_flushes(_held_calls(slow, 2), CTX, _into(flushed), leave=leave)
        _wait_for(lambda: given_up)
    assert left == [0, 1]
    assert given_up == [[0, 1]]
    assert flushed == []


def test_it_waits_for_slow_checks_when_the_process_has_left_too_many_running(
    loop: ProbeLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(probe_runner, "MAX_LEFT_RUNNING", 1)
    flushed: list[int] = []
    with Target() as slow:
        slow.delay_s = 1.0  # still running when the batch may leave, 0.2 s in
        leave = Leave(limit_s=30, record=_into(flushed), give_up=lambda _: None, after_s=0.2)
        left = probe_in_flushes(_held_calls(slow, 2), CTX, _into(flushed), leave=leave)
    assert left == []
    assert sorted(flushed) == [0, 1]


def test_it_gives_up_what_was_left_running_when_the_process_ends(loop: ProbeLoop) -> None:
    given_up: list[list[int]] = []
    with Target() as fast, Target() as slow:
        slow.hold()
        calls = [*_held_calls(slow, 1), ProbeCall("http", {"url": fast.url}), *_held_calls(slow, 1)]
        leave = Leave(limit_s=30, record=lambda _: None, give_up=given_up.append, after_s=0.2)
        left = probe_in_flushes(calls, CTX, lambda seen: None, leave=leave)
        loop.close()
    assert left == [0, 2]
    assert given_up == [[0, 2]]


def _status_in_a_child(url: str, answers: multiprocessing.Queue[int | None]) -> None:
    [seen] = probe_all([ProbeCall("http", {"url": url})], CTX)
    answers.put(seen.observation.status)


def test_a_forked_process_probes_on_a_loop_of_its_own() -> None:
    with Target() as target:
        probe_all([ProbeCall("http", {"url": target.url})], CTX)  # the parent's loop runs
        fork = multiprocessing.get_context("fork")  # as Celery's pool makes its children
        answers: multiprocessing.Queue[int | None] = fork.Queue()
        child = fork.Process(target=_status_in_a_child, args=(target.url, answers))
        child.start()
        status = answers.get(timeout=30)
        child.join(30)
    assert status == 200
