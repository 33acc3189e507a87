"""How work is queued: queue, priority, time limits and countdown, decided here for every caller.

The web API, the pages, the CLI and the tasks ask this module to queue work, by task name
(`celery_app` declares the queues and routes those names to them once). Messages go through
Celery's current app: the one `create_app` made, or the worker's own.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from celery import Celery, Signature, chain, group, signature
from celery.result import AsyncResult
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from rulewatch.celery_app import MAX_PRIORITY
from rulewatch.config import Settings
from rulewatch.db import after_commit_of_new
from rulewatch.models import Notification
from rulewatch.runtime import Runtime
from rulewatch.schemas import RuleSpec
from rulewatch.services import alert_latch
from rulewatch.services.rules import get_rule
from rulewatch.services.scheduling import (
    HARD_LIMIT_AFTER_TIMEOUT_S,
    MAX_CHECK_S,
    SOFT_LIMIT_AFTER_TIMEOUT_S,
    Claim,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
ENDED = ("SUCCESS", "FAILURE", "REVOKED")
Item = tuple[int, str, str | None]  # rule id, verification id, due time (ISO) of a verify_batch


def priority(settings: Settings, urgent: bool) -> int:
    """Message priority: Redis serves 0 first, AMQP serves the highest number first."""
    if settings.broker_url.startswith(("redis", "rediss")):
        return 0 if urgent else 6
    return MAX_PRIORITY if urgent else 3


def time_limits(timeout_s: float) -> dict[str, Any]:
    """Celery time limits for checks that may take ``timeout_s``: soft first, then hard."""
    return {
        "soft_time_limit": timeout_s + SOFT_LIMIT_AFTER_TIMEOUT_S,
        "time_limit": timeout_s + HARD_LIMIT_AFTER_TIMEOUT_S,  # as long as a started claim holds
    }


def verify_now(runtime: Runtime, rule_id: int, countdown_s: float = 0) -> str:
    """Queue a manual verification of a rule, urgent, on the interactive queue; its task id.

    The task id is also the verification's id, so the result can be found either way.
    RuleNotFound if there is no such rule.
    """
    with runtime.factory() as session:
        timeout_s = float(get_rule(session, rule_id).target.get("timeout_s", 10))
    task_id = str(uuid.uuid4())
    task = _interactive(runtime.settings, "rulewatch.verify", (rule_id, task_id), timeout_s)
    task.apply_async(task_id=task_id, countdown=countdown_s)
    return task_id


def try_draft(settings: Settings, draft: RuleSpec) -> str:
    """Queue the test run of a valid draft rule, urgent, on the interactive queue; its task id."""
    spec = draft.model_dump(mode="json")
    task = _interactive(settings, "rulewatch.try_rule", (spec,), draft.timeout_s)
    return str(task.apply_async().id)


def _interactive(
    settings: Settings, name: str, args: tuple[Any, ...], timeout_s: float
) -> Signature[Any]:
    """Someone waits for it: the interactive queue, urgent, within the check's time limits."""
    urgent = priority(settings, urgent=True)
    options = {"queue": "interactive", "priority": urgent, **time_limits(timeout_s)}
    return signature(name, args=args, options=options)


def verify_every_rule() -> str:
    """Queue a verification of every enabled rule now, through the scheduler; its task id."""
    return str(signature("rulewatch.verify_all_rules", kwargs={"force": True}).apply_async().id)


def claimed_chunks(settings: Settings, claims: Sequence[Claim]) -> list[Sequence[Claim]]:
    """The chunks `claimed_runs` sends ``claims`` in, one task each."""
    return _chunks(claims, settings.chunk_size)


def claimed_runs(
    settings: Settings, claims: Sequence[Claim], tick: str | None = None,
    expires: datetime | None = None,
) -> None:  # fmt: skip
    """Send a tick's claimed runs as one group: single `verify` tasks, or `verify_batch` chunks.

    ``expires`` is when their claims expire: a message that has not started by then is
    discarded by the worker that receives it, at the moment the next tick may dispatch its
    runs again, so a message that waited out its claim never runs beside its re-dispatch.
    """
    options: dict[str, Any] = {"priority": priority(settings, urgent=False)}
    if expires is not None:
        options["expires"] = expires
    chunks = claimed_chunks(settings, claims)
    group(_claimed_chunk(chunk, tick).set(**options) for chunk in chunks).apply_async()


def _claimed_chunk(chunk: Sequence[Claim], tick: str | None) -> Signature[Any]:
    limits = time_limits(max(c.timeout_s for c in chunk))
    if len(chunk) == 1:
        c = chunk[0]
        args = (c.rule_id, c.verification_id, c.due.isoformat(), tick)
        return signature("rulewatch.verify", args=args).set(**limits)
    items = [(c.rule_id, c.verification_id, c.due.isoformat()) for c in chunk]
    return signature("rulewatch.verify_batch", args=(items, tick)).set(**limits)


def unscheduled_runs(settings: Settings, rule_ids: Iterable[int]) -> int:
    """Send runs of these rules now, outside their schedule, in `verify_batch` chunks; how many."""
    items: list[Item] = [(rule_id, str(uuid.uuid4()), None) for rule_id in rule_ids]
    limits = time_limits(MAX_CHECK_S)
    batches = [signature("rulewatch.verify_batch", args=(c,), options=limits)
               for c in _chunks(items, settings.chunk_size)]  # fmt: skip
    if batches:
        group(batches).apply_async()
    return len(items)


def _chunks(items: Sequence[T], size: int) -> list[Sequence[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def stability_report(task_id: str, window: str, tag: str | None) -> None:
    """Queue the stability report's HTML on the reports queue under ``task_id``."""
    signature("rulewatch.get_stable_rates_html", args=(window, tag)).apply_async(task_id=task_id)


def digest(emails: Sequence[str], window: str) -> str:
    """Queue the digest: render the report (reports queue), then email it (alerts queue)."""
    steps = chain(
        signature("rulewatch.get_stable_rates_html", args=(window,)),
        signature("rulewatch.queue_digest", args=(list(emails), window)),
    )
    return str(steps.apply_async().id)


def send_outbox_at_commit(factory: sessionmaker[Session]) -> None:
    """Make every transaction of ``factory`` that adds outbox rows enqueue them as it commits.

    Web, pages, CLI and workers share it through their Runtime, so no caller has to
    remember to send what it wrote.
    """
    after_commit_of_new(factory, Notification, lambda rows: new_notifications(factory, rows))


def new_notifications(factory: sessionmaker[Session], rows: Sequence[Notification]) -> None:
    """Enqueue committed outbox rows, one send per group; except the rows of a beat tick
    whose alert latch is still open: its release sends them, as soon as the tick's last
    batch reports or the group wait runs out (`services.alert_latch`)."""
    held = _held_ticks(factory, {row.tick for row in rows if row.tick is not None})
    firsts: dict[tuple[str, str] | int, Notification] = {}
    for row in sorted(rows, key=lambda r: r.id):
        firsts.setdefault(row.id if row.group_key is None else (row.channel, row.group_key), row)
    now = [row.id for row in firsts.values() if row.tick not in held]
    if now:
        send_notifications(now)


def _held_ticks(factory: sessionmaker[Session], ticks: set[str]) -> set[str]:
    """The ``ticks`` whose latch is open; all of them when the database cannot say (the
    latch's release, or beat's relay of rows nobody sent, sends them then)."""
    if not ticks:
        return set()
    try:
        return alert_latch.open_ticks(factory, ticks)
    except SQLAlchemyError as exc:  # the rows are committed: nothing is lost
        log.warning("could not read the alert latches of ticks %s (%s)", sorted(ticks), exc)
        return ticks


def send_notifications(ids: Sequence[int], countdown_s: float = 0) -> None:
    """Ask the alerts workers to send these outbox rows after ``countdown_s``.

    The rows are committed: if the broker cannot take the messages now, nothing is lost,
    beat's relay enqueues them later, so this never fails its caller.
    """
    try:
        for notification_id in ids:
            send = signature("rulewatch.send_notification", args=(notification_id,))
            send.apply_async(countdown=countdown_s)
    except Exception as exc:  # whatever the broker's trouble, the committed change stands
        log.warning("could not enqueue notifications %s now (%s); beat will relay them", ids, exc)


@dataclass(frozen=True)
class TaskState:
    """A queued task as the result backend knows it, under Celery's state names."""

    id: str
    state: str
    result: Any = None  # the task's return value, once SUCCESS
    problem: Any = None  # the exception of a FAILURE, or the one a RETRY waits out

    @property
    def ready(self) -> bool:
        """True once the task has ended (a result or a failure)."""
        return self.state in ENDED

    @property
    def error(self) -> str | None:
        """What went wrong, for a person: the problem's repr, if any."""
        return None if self.problem is None else repr(self.problem)


def task_state(app: Celery[Any], task_id: str) -> TaskState:
    """Task ``task_id``'s state (PENDING when the backend never heard of it) and outcome."""
    found: AsyncResult[Any] = AsyncResult(task_id, app=app)
    state = found.state
    if state == "SUCCESS":
        return TaskState(task_id, state, result=found.result)
    if state in ("FAILURE", "RETRY"):
        return TaskState(task_id, state, problem=found.result)
    return TaskState(task_id, state)
