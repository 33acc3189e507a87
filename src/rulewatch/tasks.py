"""Celery tasks: thin adapters that call one service each. Names are explicit and stable."""

from __future__ import annotations

import logging
import math
import random
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, Concatenate, ParamSpec, TypeVar

from celery import Task, shared_task
from celery.exceptions import Retry, SoftTimeLimitExceeded
from celery.signals import worker_process_shutdown
from flask import current_app
from kombu.exceptions import OperationalError as BrokerError
from sqlalchemy.exc import InterfaceError, OperationalError

from rulewatch import dispatch
from rulewatch.db import transaction
from rulewatch.models import utcnow
from rulewatch.outage import database_unavailable
from rulewatch.probes.loop import close_probe_loop
from rulewatch.runtime import Runtime
from rulewatch.services import alert_latch, notifications
from rulewatch.services.reports import render_stability_html
from rulewatch.services.retention import prune_history
from rulewatch.services.rules import enabled_rule_ids
from rulewatch.services.scheduling import (
    Claim,
    claim_due_rules,
    give_back,
    hold_while_running,
)
from rulewatch.services.stability import stability_report
from rulewatch.services.verification import Alerting, Job, verify_draft, verify_jobs, verify_one

# database or broker trouble is retried; a target that is down is a result, never an exception
INFRA_ERRORS = (OperationalError, InterfaceError, BrokerError, ConnectionError)
log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")


RETRIES: dict[str, Any] = {
    "autoretry_for": INFRA_ERRORS, "retry_backoff": 2, "retry_backoff_max": 60,
    "retry_jitter": True, "max_retries": 5,
}  # fmt: skip
# verify tasks retry infrastructure errors (`claims_held`) at most this far apart, so checks
# resume within seconds of the database's or broker's return
VERIFY_RETRY_MAX_WAIT_S = 5.0


def _task(name: str) -> Callable[[Callable[P, R]], Task[P, R]]:
    """A shared task with an explicit name that retries infrastructure errors with backoff."""
    return shared_task(name=name, **RETRIES)


def _verify_task(name: str) -> Callable[[Callable[Concatenate[Task[P, R], P], R]], Task[P, R]]:
    """A task that gets itself as first argument: `claims_held` retries it."""
    return shared_task(name=name, bind=True)


def runtime() -> Runtime:
    """The Runtime of the Flask app the task runs in."""
    rt: Runtime = current_app.extensions["rulewatch"]
    return rt


@_verify_task("rulewatch.verify")
def verify(
    self: Task[Any, Any], rule_id: int, verification_id: str | None = None,
    due: str | None = None, tick: str | None = None,
) -> Any:  # fmt: skip
    """Verify one rule now (manual) or for one claimed due time of a beat tick (scheduled)."""
    rt = runtime()
    job = Job(rule_id, verification_id or str(uuid.uuid4()), _parse_time(due), tick)
    with counted_down(self, rt, [job]), claims_held(self, rt, [job]):
        return verify_one(rt.factory, job, rt.probe_context(), alerting(rt), leave_slow=True)


@_verify_task("rulewatch.verify_batch")
def verify_batch(
    self: Task[Any, Any], items: Sequence[Sequence[Any]], tick: str | None = None
) -> list[dict[str, Any]]:
    """Verify a chunk of rules concurrently, recorded in short flushes as targets answer; slow
    checks are left running in the background (recorded as they end, ``pending`` here), so
    the task returns once the rest is recorded."""
    rt = runtime()
    jobs = [Job(int(r), str(v), _parse_time(d), tick) for r, v, d in items]
    with counted_down(self, rt, jobs), claims_held(self, rt, jobs):
        results = verify_jobs(rt.factory, jobs, rt.probe_context(), alerting(rt), leave_slow=True)
    # the batch's end for its tick (what a latch of the tick's grouped alerts can count): all
    # but the left checks are recorded, and those alert on their own as they are recorded
    return [{k: r[k] for k in ("id", "rule_id", "status", "pending") if k in r} for r in results]


@worker_process_shutdown.connect
def _give_up_left_checks(**_: Any) -> None:
    """A pool process that ends (warm shutdown) gives back the claims of checks its batches
    left running, so the next tick dispatches them again: a forked child runs no atexit."""
    close_probe_loop()


@contextmanager
def claims_held(task: Task[Any, Any], rt: Runtime, jobs: Sequence[Job]) -> Iterator[None]:
    """Hold the started runs' claims as long as the task can run, and retry the task on
    infrastructure errors (a database outage, the broker gone) every few seconds for as long
    as its claims are worth holding (`retries_worth_it`); give them back if it gives up
    (a soft time limit, or the last try) so the next tick dispatches them again instead of
    waiting for the claim to expire."""
    try:
        with transaction(rt.factory) as session:
            hold_while_running(session, jobs, utcnow())
        yield
    except SoftTimeLimitExceeded:
        _give_back(rt, jobs)
        raise
    except INFRA_ERRORS as exc:
        if database_unavailable(exc):
            rt.outage.failed(exc)  # one line per outage, not one per try
        tries, most = task.request.retries, retries_worth_it(rt.settings.claim_ttl_s)
        if tries >= most:
            _give_back(rt, jobs)
            raise
        raise task.retry(exc=exc, countdown=retry_wait_s(tries), max_retries=most) from None


def retry_wait_s(tries: int) -> float:
    """How long a verify task waits before try ``tries + 1``: 1, 2, 4, then 5 s, jittered
    down by up to a fifth so that the batches of a tick do not come back at once."""
    wait = min(VERIFY_RETRY_MAX_WAIT_S, 2.0**tries)
    return wait * random.uniform(0.8, 1.0)


def retries_worth_it(claim_ttl_s: float) -> int:
    """How many times a verify task retries: about ``claim_ttl_s`` of tries (a minute by
    default). By then its runs' claims have expired (a claim is taken at dispatch, for
    ``claim_ttl_s``; or held from the task's start for timeout_s + 20 s), so the next tick
    dispatches the runs again whether or not the give-back could be written."""
    return max(3, math.ceil(claim_ttl_s / VERIFY_RETRY_MAX_WAIT_S))


@contextmanager
def counted_down(task: Task[Any, Any], rt: Runtime, jobs: Sequence[Job]) -> Iterator[None]:
    """Count a tick's batch down on the tick's alert latch once it is done: recorded, or given
    up for good; not when it is about to be retried (the retry reports)."""
    tick = jobs[0].tick if jobs else None
    if tick is None:  # a manual run: its alerts go at commit
        yield
        return
    party = jobs[0].verification_id  # the tick added the batch to its latch by its first id
    try:
        yield
    except Retry:  # claims_held retries the task: the retry reports
        raise
    except Exception:
        _report(rt, tick, party)
        raise
    _report(rt, tick, party)


def _report(rt: Runtime, tick: str, party: str) -> None:
    """Report ``party`` to ``tick``'s alert latch; send the tick's alerts if that released it."""
    try:
        release = alert_latch.report(rt.factory, tick, party, utcnow())
    except INFRA_ERRORS as exc:  # beat's tick releases the latch once the group wait is over
        log.warning("could not report to the alert latch of tick %s (%s)", tick, exc)
        return
    dispatch.send_notifications(release)


def _give_back(rt: Runtime, jobs: Sequence[Job], whose: str = "a run that gave up") -> None:
    try:
        with transaction(rt.factory) as session:
            given = give_back(session, jobs, utcnow())
        log.warning("gave back %d claims of %s", given, whose)
    except INFRA_ERRORS as exc:  # the claims then expire by themselves (retries_worth_it)
        log.warning("could not give back the claims of a run that gave up (%s)", exc)


@_task("rulewatch.try_rule")
def try_rule(spec: dict[str, Any]) -> dict[str, Any]:
    """The rule editor's test run: verify a draft rule once and record nothing."""
    return verify_draft(spec, runtime().probe_context())


# not retried: beat runs it again next tick, and claims make a rerun harmless
@shared_task(name="rulewatch.verify_all_rules")
def verify_all_rules(force: bool = False) -> dict[str, int]:
    """Beat tick: claim the due rules and fan their verifications out to the workers."""
    rt = runtime()
    try:
        if force:
            return {"dispatched": _dispatch_all_now(rt)}
        return _tick(rt)
    except INFRA_ERRORS as exc:
        if not database_unavailable(exc):
            raise
        rt.outage.failed(exc)  # one line per outage, not a traceback per tick
        return {"dispatched": 0, "database_unavailable": 1}


def _tick(rt: Runtime) -> dict[str, int]:
    dispatched, tick = 0, str(uuid.uuid4())  # the tick's alerts are emailed together
    while True:
        now = utcnow()
        with transaction(rt.factory) as session:
            claims = claim_due_rules(session, now, rt.settings.claim_batch, rt.settings.claim_ttl_s)
            # each batch joins the tick's alert latch before it is sent, known by its first id
            chunks = dispatch.claimed_chunks(rt.settings, claims)
            batches = [chunk[0].verification_id for chunk in chunks]
            alert_latch.add_parties(session, tick, batches, first=dispatched == 0)
        if claims:
            _dispatch_claimed(rt, claims, tick, now + timedelta(seconds=rt.settings.claim_ttl_s))
        dispatched += len(claims)
        if len(claims) < rt.settings.claim_batch:
            if dispatched:  # no batch joins any more: the tick seals its latch
                _report(rt, tick, tick)
            return {
                "dispatched": dispatched,
                "notifications_relayed": _relay_outbox(rt),
                "latches_expired": _expire_latches(rt),
            }


def _dispatch_claimed(rt: Runtime, claims: Sequence[Claim], tick: str, expires: datetime) -> None:
    """Queue the claimed runs, their messages expiring with their claims; if the broker
    refuses them, give their claims back so the next tick tries again instead of waiting for
    the claims to expire."""
    try:
        dispatch.claimed_runs(rt.settings, claims, tick, expires)
    except Exception:
        jobs = [Job(c.rule_id, c.verification_id, c.due) for c in claims]
        _give_back(rt, jobs, "a tick whose runs could not be queued")
        raise


def alerting(rt: Runtime) -> Alerting:
    """Alert defaults and links (the outbox rows recording writes are sent at commit)."""
    return Alerting(rt.settings.alerts, rt.settings.base_url)


def _relay_outbox(rt: Runtime) -> int:
    with transaction(rt.factory) as session:
        ids = notifications.due_for_relay(session, utcnow())
    dispatch.send_notifications(ids)  # lost enqueues, dead senders, and probes of a down channel
    return len(ids)


def _expire_latches(rt: Runtime) -> int:
    """Send the alerts of ticks whose latch a batch held longer than the group wait."""
    ids = alert_latch.expire(rt.factory, utcnow(), rt.settings.alerts.group_wait_s)
    dispatch.send_notifications(ids)
    return len(ids)


def _dispatch_all_now(rt: Runtime) -> int:
    with rt.factory() as session:
        rule_ids = enabled_rule_ids(session)
    return dispatch.unscheduled_runs(rt.settings, rule_ids)


@_task("rulewatch.get_stable_rates_html")
def get_stable_rates_html(window: str = "24h", tag: str | None = None) -> str:
    """Compute stability rates over ``window`` and render them as the HTML report."""
    with runtime().factory() as session:
        return render_stability_html(stability_report(session, window, utcnow(), tag))


@_task("rulewatch.send_notification")
def send_notification(notification_id: int) -> str:
    """Send one outbox row over its channel, then the rows that wait on that channel; a row
    that cannot go now waits for the next send that succeeds or for beat's relay."""
    rt = runtime()
    return notifications.send(rt.factory, rt.settings, notification_id)


@_task("rulewatch.digest")
def digest(window: str | None = None) -> str:
    """Beat's digest: a chain that renders the stability report, then emails it."""
    settings = runtime().settings
    window = window or settings.digest_window
    return dispatch.digest(settings.digest_emails, window)


@_task("rulewatch.queue_digest")
def queue_digest(html: str, emails: list[str], window: str) -> int | None:
    """Second link of the digest chain: the report HTML becomes an outbox row, sent at commit."""
    rt = runtime()
    if not emails:
        return None
    with transaction(rt.factory) as session:
        notification_id = notifications.add_digest(session, html, emails, window)
    return notification_id


@_task("rulewatch.ping")
def ping() -> str:
    """A task that does nothing: measures the bare broker round trip and worker liveness."""
    return "pong"


@_task("rulewatch.prune")
def prune() -> dict[str, int]:
    """Enforce retention on raw verifications and rollups, in small steps."""
    rt = runtime()
    return prune_history(rt.factory, rt.settings, utcnow())


def _parse_time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)
