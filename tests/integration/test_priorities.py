"""Message priorities on Redis and RabbitMQ: an urgent verification overtakes queued routine ones.

Redis emulates priorities with one list per step (0 first); RabbitMQ orders a queue declared
with ``x-max-priority`` itself (highest first). `dispatch.priority` picks the number for each.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from rulewatch import create_app
from rulewatch.config import load_settings
from rulewatch.db import transaction
from rulewatch.dispatch import priority
from rulewatch.migrate import upgrade
from rulewatch.models import Verification, utcnow
from rulewatch.services.rules import create_rule
from rulewatch.tasks import verify
from tests.integration.brokers import BROKERS, broker
from tests.integration.processes import spawn, stop, wait_for
from tests.targets import Target, http_rule

REDIS_DB = 11


@pytest.mark.parametrize("broker_kind", BROKERS)
def test_it_serves_an_urgent_verification_before_queued_routine_ones(
    tmp_path: Path, broker_kind: str
) -> None:
    with broker(broker_kind, REDIS_DB) as queues:
        _urgent_overtakes_routine(tmp_path, queues.url)


def _urgent_overtakes_routine(tmp_path: Path, broker_url: str) -> None:
    # no result is read here: the default backend (Redis itself, or SQLite in the home) will do
    env = {"RULEWATCH_HOME": str(tmp_path), "RULEWATCH_BROKER_URL": broker_url}
    settings = load_settings(env)
    upgrade(settings.database_url)
    app = create_app(settings)
    runtime = app.extensions["rulewatch"]
    with Target() as target:
        with transaction(runtime.factory) as session:
            routine = create_rule(session, http_rule(target.url, name="routine"), utcnow()).id
            urgent = create_rule(session, http_rule(target.url, name="urgent"), utcnow()).id
        for _ in range(6):
            verify.apply_async(args=(routine, str(uuid.uuid4())), queue="interactive",
                               priority=priority(settings, urgent=False))  # fmt: skip
        verify.apply_async(args=(urgent, str(uuid.uuid4())), queue="interactive",
                           priority=priority(settings, urgent=True))  # fmt: skip
        log = tmp_path / "worker.log"
        worker = spawn(["worker", "-Q", "interactive", "-c", "1"], env, log)
        try:
            wait_for(lambda: _count(runtime.factory) == 7, 60, "all seven verifications", log)
        finally:
            stop(worker)
    with runtime.factory() as session:
        order = list(
            session.scalars(select(Verification.rule_id).order_by(Verification.started_at))
        )
    assert order[0] == urgent, f"urgent ran at position {order.index(urgent)}"


def _count(factory: object) -> int:
    with factory() as session:  # type: ignore[operator]
        return len(list(session.scalars(select(Verification.id))))
