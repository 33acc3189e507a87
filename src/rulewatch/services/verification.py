"""Running verifications: prepare, probe (the probe runner), judge (the domain), and record,
in short set-based flushes as the targets answer."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session, sessionmaker

from rulewatch.config import AlertDefaults
from rulewatch.db import insert_many, lock_for_update, transaction, update_many
from rulewatch.domain.conditions import Condition, parse_condition
from rulewatch.domain.judging import judged, needs_history, with_history
from rulewatch.domain.observation import Observation
from rulewatch.domain.schedule import Schedule, lateness_s, next_due
from rulewatch.models import Rule, Verification, utcnow
from rulewatch.probes import ProbeContext
from rulewatch.probes.runner import Leave, ProbeCall, Seen, probe_all, probe_in_flushes
from rulewatch.schemas import validate_rule
from rulewatch.services.alerts import Outcome, record_alerts
from rulewatch.services.gaps import LateRun, record_gaps
from rulewatch.services.maintenance import maintenance_of
from rulewatch.services.rollups import Sample, add_samples
from rulewatch.services.scheduling import (
    SOFT_LIMIT_AFTER_TIMEOUT_S,
    give_back,
    timeout_s_of,
    verification_id_for,
)
from rulewatch.shapes import DraftVerification, answer

HISTORY_SIZE = 10
PENDING = "still probing after its batch returned: recorded when the target answers or times out"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """One verification to run: scheduled (``due`` set) or manual (``due`` None)."""

    rule_id: int
    verification_id: str
    due: datetime | None = None
    tick: str | None = None  # the verify_all_rules tick that dispatched it, if any

    @property
    def trigger(self) -> str:
        """Why the verification runs: ``schedule`` or ``manual``."""
        return "manual" if self.due is None else "schedule"

    def holds_claim(self, claim_token: str | None, next_due_at: datetime) -> bool:
        """True for a manual run, or for the scheduled run the rule's current claim dispatched."""
        return self.due is None or (
            claim_token is not None
            and next_due_at == self.due
            and verification_id_for(claim_token, self.rule_id) == self.verification_id
        )


@dataclass(frozen=True)
class _Check:
    """What probing and judging read: the probe call, the parsed conditions, their history."""

    call: ProbeCall
    conditions: Sequence[Condition]
    history: list[Any]


@dataclass(frozen=True)
class _Prepared:
    job: Job
    name: str
    schedule: Schedule
    check: _Check


@dataclass(frozen=True)
class _Probed:
    prepared: _Prepared
    seen: Seen


@dataclass(frozen=True)
class Alerting:
    """What recording needs to alert: defaults and links (outbox rows are sent at commit)."""

    defaults: AlertDefaults
    base_url: str


def verify_jobs(
    factory: sessionmaker[Session],
    jobs: Sequence[Job],
    ctx: ProbeContext,
    alerting: Alerting | None = None,
    leave_slow: bool = False,
) -> list[dict[str, Any]]:
    """Verify a batch of rules: probes run concurrently, and results are written set-based in
    short flushes as they come, so a target that never answers delays only its own rule.

    With ``leave_slow``, scheduled runs still probing after about a second are left to run in
    the background and recorded as they end, under the claims their task holds; their results
    here say ``pending``. A manual run always waits for its result.
    """
    with factory() as session:
        ready, results = _prepare_all(session, jobs)
    if ready:
        calls = [item.check.call for item in ready]
        leave = _leave(factory, ready, alerting) if leave_slow else None
        left = probe_in_flushes(
            calls, ctx, lambda seen: results.update(_record(factory, ready, seen, alerting)),
            leave=leave,
        )  # fmt: skip
        _note_left(results, [ready[index].job for index in left])
    return [results[job.verification_id] for job in jobs]


def _leave(
    factory: sessionmaker[Session], ready: Sequence[_Prepared], alerting: Alerting | None
) -> Leave | None:
    """How scheduled runs may leave their slow probes behind: recorded as they end, bounded
    as Celery's soft time limit would have bounded their task, then their claims given back."""
    if any(item.job.due is None for item in ready):
        return None
    timeout_s = max(timeout_s_of(item.check.call.target) for item in ready)
    jobs = [item.job for item in ready]
    return Leave(
        timeout_s + SOFT_LIMIT_AFTER_TIMEOUT_S,
        lambda seen: _record(factory, ready, seen, alerting),
        lambda indexes: _give_back_left(factory, [jobs[index] for index in indexes]),
    )


def _note_left(results: dict[str, dict[str, Any]], left: Sequence[Job]) -> None:
    """Answer ``pending`` for the runs left probing (unless one was recorded meanwhile)."""
    for job in left:
        results.setdefault(job.verification_id, _pending(job))
    if left:
        log.info(
            "a batch returned with %d slow checks still running (rules %s): recorded as they end",
            len(left), ", ".join(str(job.rule_id) for job in left[:20]),
        )  # fmt: skip


def _give_back_left(factory: sessionmaker[Session], jobs: Sequence[Job]) -> None:
    """Runs left probing that will not be recorded (past their limit, a failed write, the
    process ending): their claims go back, so the next tick dispatches them again."""
    with transaction(factory) as session:
        given = give_back(session, jobs, utcnow())
    log.warning("gave back %d claims of checks left running that will not be recorded", given)


def verify_draft(spec: Mapping[str, Any], ctx: ProbeContext) -> dict[str, Any]:
    """Verify a draft rule once, as its first run would go, and record nothing."""
    draft = validate_rule(spec)
    check = _check(draft.kind, draft.target, draft.conditions, list)  # no history: none judged
    [seen] = probe_all([check.call], ctx)
    return answer(
        DraftVerification, started_at=seen.started_at, duration_ms=round(seen.duration_ms, 3),
        **judged(check.conditions, seen.observation),
    )  # fmt: skip


def verify_one(
    factory: sessionmaker[Session],
    job: Job,
    ctx: ProbeContext,
    alerting: Alerting | None = None,
    leave_slow: bool = False,
) -> dict[str, Any]:
    """Verify one rule: probe it, evaluate its conditions, and record the verification."""
    return verify_jobs(factory, [job], ctx, alerting, leave_slow)[0]


def _prepare_all(
    session: Session, jobs: Sequence[Job]
) -> tuple[list[_Prepared], dict[str, dict[str, Any]]]:
    """Load what the probes need, and say why the jobs that must not run are skipped."""
    ids = [job.verification_id for job in jobs]
    done = {v.id: v for v in session.scalars(select(Verification).where(Verification.id.in_(ids)))}
    rule_ids = {job.rule_id for job in jobs}
    rows = session.execute(select(*_RULE_FIELDS).where(Rule.id.in_(rule_ids)))
    rules = {row.id: _RuleState(*row) for row in rows}
    ready: list[_Prepared] = []
    skipped: dict[str, dict[str, Any]] = {}
    for job in jobs:
        rule = rules.get(job.rule_id)
        if job.verification_id in done:  # a redelivered message: answer what was recorded
            name = rule.name if rule else None
            skipped[job.verification_id] = verification_to_dict(done[job.verification_id], name)
        elif rule is None:
            skipped[job.verification_id] = _skipped(job, "rule no longer exists")
        elif not job.holds_claim(rule.claim_token, rule.next_due_at):
            reason = "claim superseded: this run was re-dispatched or done"
            skipped[job.verification_id] = _skipped(job, reason)
        else:
            ready.append(_prepared(session, job, rule))
    return ready, skipped


@lru_cache(maxsize=65536)
def _parsed(texts: tuple[str, ...]) -> tuple[tuple[Condition, ...], bool]:
    """A rule's parsed conditions, and whether they read history: parsing is pure and
    rules repeat every interval, so each rule's conditions are parsed once."""
    conditions = tuple(parse_condition(text) for text in texts)
    return conditions, needs_history(conditions)


@dataclass(frozen=True)
class _RuleState:
    """The columns of a rule that a verification reads."""

    id: int
    name: str
    kind: str
    target: dict[str, Any]
    conditions: list[str]
    interval_s: int | None
    cron: str | None
    timezone: str
    claim_token: str | None
    next_due_at: datetime


_RULE_FIELDS = tuple(getattr(Rule, f.name) for f in fields(_RuleState))


def _prepared(session: Session, job: Job, rule: _RuleState) -> _Prepared:
    schedule = Schedule(interval_s=rule.interval_s, cron=rule.cron, timezone=rule.timezone)
    check = _check(rule.kind, rule.target, rule.conditions, lambda: _history(session, rule))
    return _Prepared(job, rule.name, schedule, check)


def _check(
    kind: str, target: dict[str, Any], texts: Sequence[str], history: Callable[[], list[Any]]
) -> _Check:
    """Parse the conditions; read the history (recent values) only when one needs it."""
    try:
        conditions, wants_history = _parsed(tuple(texts))
    except ValueError as exc:  # stored before a stricter parser: an error, not a crash
        fault = f"stored condition cannot be parsed: {exc}"
        return _Check(ProbeCall(kind, target, fault), [], [])
    return _Check(ProbeCall(kind, target), conditions, history() if wants_history else [])


def _history(session: Session, rule: _RuleState) -> list[Any]:
    query = (
        select(Verification.measured)
        .where(Verification.rule_id == rule.id, Verification.status != "error")
        .order_by(Verification.started_at.desc())
        .limit(HISTORY_SIZE)
    )
    return [m["value"] for m in session.scalars(query) if m.get("value") is not None]


def _record(
    factory: sessionmaker[Session],
    ready: Sequence[_Prepared],
    seen: Sequence[tuple[int, Seen]],
    alerting: Alerting | None,
) -> dict[str, dict[str, Any]]:
    """Record one flush of probe results (indexes into ``ready``) in one transaction."""
    probed = [_Probed(ready[index], one) for index, one in seen]
    with transaction(factory) as session:
        return _record_all(session, probed, alerting)[1]


def _record_all(
    session: Session, probed: Sequence[_Probed], alerting: Alerting | None
) -> tuple[list[int], dict[str, dict[str, Any]]]:
    """Insert the verifications, rollups, rule state and any notifications in one go.

    The rules are locked first and each scheduled run's claim checked again: a run that
    outlived its claim, while another dispatch of the same due time ran, records nothing.
    """
    claims, alerts = _lock_rules(session, {item.prepared.job.rule_id for item in probed})
    muted = maintenance_of(session, [(i.prepared.job.rule_id, i.seen.started_at) for i in probed])
    results: dict[str, dict[str, Any]] = {}
    recorded: list[tuple[_Probed, dict[str, Any]]] = []
    for item in probed:
        job = item.prepared.job
        if job.rule_id not in claims:
            results[job.verification_id] = _skipped(job, "rule deleted while being verified")
        elif not job.holds_claim(*claims[job.rule_id]):
            reason = "claim superseded while probing: another run records this due time"
            results[job.verification_id] = _skipped(job, reason)
        else:
            row = _verification_row(item, (job.rule_id, item.seen.started_at) in muted)
            recorded.append((item, row))
            results[job.verification_id] = verification_to_dict(row, item.prepared.name)
    notification_ids: list[int] = []
    if recorded:
        insert_many(session, _VERIFICATIONS, [row for _, row in recorded])
        add_samples(session, [_sample(row) for _, row in recorded])
        _advance(session, recorded)
        record_gaps(session, _late_runs(recorded))
        if alerting is not None:
            outcomes = [_outcome(item, row, alerts[row["rule_id"]]) for item, row in recorded]
            notification_ids = record_alerts(
                session, outcomes, alerting.defaults, alerting.base_url
            )
    return notification_ids, results


def _late_runs(recorded: Sequence[tuple[_Probed, dict[str, Any]]]) -> Iterator[LateRun]:
    """The scheduled runs being recorded, as candidates for a monitor gap."""
    for item, row in recorded:
        due, prepared = item.prepared.job.due, item.prepared
        if due is not None:
            timeout_s = timeout_s_of(prepared.check.call.target)
            yield LateRun(row["rule_id"], due, row["started_at"], prepared.schedule, timeout_s)


def _outcome(item: _Probed, row: Mapping[str, Any], alert: tuple[Any, Any]) -> Outcome:
    return Outcome(
        rule_id=row["rule_id"], rule_name=item.prepared.name, alert=alert[0],
        alert_state=alert[1], status=row["status"], started_at=row["started_at"],
        conditions=row["conditions"], error=row["error"], tick=item.prepared.job.tick,
        in_maintenance=row["in_maintenance"],
    )  # fmt: skip


def _lock_rules(
    session: Session, rule_ids: set[int]
) -> tuple[dict[int, tuple[str | None, datetime]], dict[int, tuple[Any, Any]]]:
    """Claim and alert state of the rules that still exist, locked (in id order) until commit."""
    query = (
        select(Rule.id, Rule.claim_token, Rule.next_due_at, Rule.alert, Rule.alert_state)
        .where(Rule.id.in_(rule_ids))
        .order_by(Rule.id)
    )
    rows = session.execute(lock_for_update(query, session)).all()
    claims = {rid: (token, due) for rid, token, due, _, _ in rows}
    return claims, {rid: (alert, state) for rid, _, _, alert, state in rows}


def _verification_row(item: _Probed, in_maintenance: bool) -> dict[str, Any]:
    job, seen = item.prepared.job, item.seen
    return {
        "id": job.verification_id,
        "rule_id": job.rule_id,
        "scheduled_for": job.due,
        "started_at": seen.started_at,
        "duration_ms": round(seen.duration_ms, 3),
        **_judgement(item.prepared.check, seen.observation),
        "trigger": job.trigger,
        "in_maintenance": in_maintenance,
    }


def _judgement(check: _Check, observation: Observation) -> dict[str, Any]:
    return judged(check.conditions, with_history(observation, check.history))


def _advance(session: Session, recorded: Sequence[tuple[_Probed, dict[str, Any]]]) -> None:
    """Store each rule's last status; scheduled runs also release the claim and move due."""
    table: Table = Rule.__table__  # type: ignore[assignment]
    now = utcnow()
    manual, scheduled = [], []
    for item, row in recorded:
        values = {"id": row["rule_id"], "last_status": row["status"],
                  "last_verified_at": row["started_at"]}  # fmt: skip
        due = item.prepared.job.due
        if due is None:
            manual.append(values)
        else:  # the claim was checked under lock in _record_all: this run owns the due time
            scheduled.append({**values, "next_due_at": next_due(item.prepared.schedule, due, now)})
    update_many(session, table, manual)
    update_many(session, table, scheduled, {"claimed_until": None, "claim_token": None})


def _sample(v: Mapping[str, Any]) -> Sample:
    due = v["scheduled_for"]
    lag_ms = None if due is None else lateness_s(due, v["started_at"]) * 1000
    return Sample(
        v["rule_id"], v["started_at"], v["status"], v["duration_ms"], v["in_maintenance"], lag_ms
    )


def _skipped(job: Job, reason: str) -> dict[str, Any]:
    return {"id": job.verification_id, "rule_id": job.rule_id, "status": None, "skipped": reason}


def _pending(job: Job) -> dict[str, Any]:
    return {"id": job.verification_id, "rule_id": job.rule_id, "status": None, "pending": PENDING}


def verification_to_dict(
    v: Verification | Mapping[str, Any], rule_name: str | None = None
) -> dict[str, Any]:
    """The API and task-result form of a verification (a model or an inserted row)."""
    row = v if isinstance(v, Mapping) else {c: getattr(v, c) for c in _COLUMNS}
    scheduled = row["scheduled_for"]
    return {
        "id": row["id"],
        "rule_id": row["rule_id"],
        "rule_name": rule_name,
        "status": row["status"],
        "trigger": row["trigger"],
        "scheduled_for": scheduled.isoformat() if scheduled else None,
        "started_at": row["started_at"].isoformat(),
        "duration_ms": row["duration_ms"],
        "conditions": row["conditions"],
        "measured": row["measured"],
        "error": row["error"],
        "in_maintenance": bool(row["in_maintenance"]),
    }


_COLUMNS = tuple(c.key for c in Verification.__table__.columns)
_VERIFICATIONS = cast(Table, Verification.__table__)
