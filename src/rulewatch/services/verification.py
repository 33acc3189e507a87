"""Running verifications: probe, judge, and record, in one transaction per batch."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import aiohttp
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from rulewatch.db import transaction
from rulewatch.domain.conditions import ConditionOutcome, evaluate_all, judge, parse_condition
from rulewatch.domain.observation import Observation
from rulewatch.domain.schedule import Schedule, next_due
from rulewatch.models import Rule, Verification, utcnow
from rulewatch.probes import ProbeContext, run_probe
from rulewatch.services.rollups import Sample, add_samples
from rulewatch.services.scheduling import verification_id_for

HISTORY_SIZE = 10
HISTORY_PLACEHOLDERS = ("[PREVIOUS_VALUE]", "[CHANGE_PERCENT]")


@dataclass(frozen=True)
class Job:
    """One verification to run: scheduled (``due`` set) or manual (``due`` None)."""

    rule_id: int
    verification_id: str
    due: datetime | None = None

    @property
    def trigger(self) -> str:
        """Why the verification runs: ``schedule`` or ``manual``."""
        return "manual" if self.due is None else "schedule"


@dataclass(frozen=True)
class _Prepared:
    job: Job
    name: str
    kind: str
    target: dict[str, Any]
    conditions: list[str]
    history: list[Any]


@dataclass(frozen=True)
class _Probed:
    prepared: _Prepared
    started_at: datetime
    duration_ms: float
    observation: Observation


def verify_jobs(
    factory: sessionmaker[Session], jobs: Sequence[Job], ctx: ProbeContext
) -> list[dict[str, Any]]:
    """Verify a batch of rules: probes run concurrently, results are written together."""
    results: dict[str, dict[str, Any]] = {}
    with factory() as session:
        ready = []
        for job in jobs:
            prepared, skipped = _prepare(session, job)
            if prepared is not None:
                ready.append(prepared)
            else:
                results[job.verification_id] = skipped
    probed = asyncio.run(_probe_all(ready, ctx)) if ready else []
    with transaction(factory) as session:
        for item in probed:
            results[item.prepared.job.verification_id] = _record(session, item)
    return [results[job.verification_id] for job in jobs]


def _do_verify(factory: sessionmaker[Session], job: Job, ctx: ProbeContext) -> dict[str, Any]:
    """Verify one rule: probe it, evaluate its conditions, and record the verification."""
    return verify_jobs(factory, [job], ctx)[0]


def _prepare(session: Session, job: Job) -> tuple[_Prepared | None, dict[str, Any]]:
    """Load what the probe needs, or say why this job must not run (stale or done)."""
    done = session.get(Verification, job.verification_id)
    if done is not None:
        return None, verification_to_dict(done, _rule_name(session, done.rule_id))
    rule = session.get(Rule, job.rule_id)
    if rule is None:
        return None, _skipped(job, "rule no longer exists")
    if job.due is not None and not _claim_is_current(rule, job):
        return None, _skipped(job, "claim superseded: this run was re-dispatched or done")
    history = _history(session, rule) if _wants_history(rule.conditions) else []
    return _Prepared(job, rule.name, rule.kind, rule.target, rule.conditions, history), {}


def _claim_is_current(rule: Rule, job: Job) -> bool:
    return (
        rule.claim_token is not None
        and rule.next_due_at == job.due
        and verification_id_for(rule.claim_token, rule.id) == job.verification_id
    )


def _wants_history(conditions: Sequence[str]) -> bool:
    return any(p in c for c in conditions for p in HISTORY_PLACEHOLDERS)


def _history(session: Session, rule: Rule) -> list[Any]:
    query = (
        select(Verification.measured)
        .where(Verification.rule_id == rule.id, Verification.status != "error")
        .order_by(Verification.started_at.desc())
        .limit(HISTORY_SIZE)
    )
    return [m["value"] for m in session.scalars(query) if m.get("value") is not None]


async def _probe_all(items: Sequence[_Prepared], ctx: ProbeContext) -> list[_Probed]:
    connector = aiohttp.TCPConnector(limit=200, limit_per_host=100)
    async with aiohttp.ClientSession(connector=connector) as http:
        shared = replace(ctx, http_session=http)
        return list(await asyncio.gather(*(_probe_one(item, shared) for item in items)))


async def _probe_one(item: _Prepared, ctx: ProbeContext) -> _Probed:
    started_at = utcnow()
    t0 = time.perf_counter()
    try:
        observation = await run_probe(item.kind, item.target, ctx)
    except Exception as exc:  # a probe bug is rulewatch's fault, recorded as an error
        observation = Observation(connected=False, fault=f"probe crashed: {exc!r}")
    duration_ms = (time.perf_counter() - t0) * 1000
    return _Probed(item, started_at, duration_ms, _with_history(observation, item.history))


def _with_history(observation: Observation, history: list[Any]) -> Observation:
    if not history:
        return observation
    numbers = [n for n in (_decimal(v) for v in history) if n is not None]
    average = float(sum(numbers) / len(numbers)) if numbers else None
    return replace(observation, previous_value=history[0], recent_average=average)


def _decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def _record(session: Session, item: _Probed) -> dict[str, Any]:
    job, obs = item.prepared.job, item.observation
    outcomes = evaluate_all([parse_condition(c) for c in item.prepared.conditions], obs)
    rule = session.get(Rule, job.rule_id, with_for_update=False)
    if rule is None:
        return _skipped(job, "rule deleted while it was being verified")
    verification = Verification(
        id=job.verification_id,
        rule_id=job.rule_id,
        scheduled_for=job.due,
        started_at=item.started_at,
        duration_ms=round(item.duration_ms, 3),
        status=judge(outcomes, obs),
        conditions=[_outcome_dict(o) for o in outcomes],
        measured=obs.measured(),
        error=obs.fault or obs.failure or _first_reason(outcomes),
        trigger=job.trigger,
    )
    session.add(verification)
    add_samples(session, [_sample(verification)])
    _advance(session, rule, job, verification)
    return verification_to_dict(verification, rule.name)


def _advance(session: Session, rule: Rule, job: Job, verification: Verification) -> None:
    """Store the rule's last status; a scheduled run also releases the claim and moves due."""
    values: dict[str, Any] = {
        "last_status": verification.status,
        "last_verified_at": verification.started_at,
    }
    where = [Rule.id == rule.id]
    if job.due is not None:
        schedule = Schedule(interval_s=rule.interval_s, cron=rule.cron, timezone=rule.timezone)
        values.update(
            next_due_at=next_due(schedule, job.due, utcnow()), claimed_until=None, claim_token=None
        )
        where.append(Rule.next_due_at == job.due)
    session.execute(update(Rule).where(*where).values(**values))


def _sample(v: Verification) -> Sample:
    return Sample(v.rule_id, v.started_at, v.status, v.duration_ms)


def _outcome_dict(o: ConditionOutcome) -> dict[str, Any]:
    out: dict[str, Any] = {"condition": o.condition, "resolved": o.resolved, "ok": o.ok}
    if o.reason:
        out["reason"] = o.reason
    return out


def _first_reason(outcomes: Sequence[ConditionOutcome]) -> str | None:
    return next(
        (o.reason or f"condition not met: {o.resolved}" for o in outcomes if not o.ok), None
    )


def _skipped(job: Job, reason: str) -> dict[str, Any]:
    return {"id": job.verification_id, "rule_id": job.rule_id, "status": None, "skipped": reason}


def _rule_name(session: Session, rule_id: int) -> str | None:
    return session.scalar(select(Rule.name).where(Rule.id == rule_id))


def verification_to_dict(v: Verification, rule_name: str | None = None) -> dict[str, Any]:
    """The API and task-result form of a verification."""
    return {
        "id": v.id,
        "rule_id": v.rule_id,
        "rule_name": rule_name,
        "status": v.status,
        "trigger": v.trigger,
        "scheduled_for": v.scheduled_for.isoformat() if v.scheduled_for else None,
        "started_at": v.started_at.isoformat(),
        "duration_ms": v.duration_ms,
        "conditions": v.conditions,
        "measured": v.measured,
        "error": v.error,
    }


def datasources_for(session: Session, configured: Mapping[str, str]) -> dict[str, str]:
    """Data sources from settings, overridden by those an admin stored."""
    from rulewatch.models import DataSource

    stored = {d.name: d.dsn for d in session.scalars(select(DataSource))}
    return {**configured, **stored}
