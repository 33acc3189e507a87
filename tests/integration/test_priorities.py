"""Message priorities on Redis: an urgent verification overtakes queued routine ones."""

from __future__ import annotations

import uuid
from pathlib import Path

import redis
from sqlalchemy import select

from rulewatch import create_app
from rulewatch.config import load_settings
from rulewatch.db import transaction
from rulewatch.dispatch import priority
from rulewatch.migrate import upgrade
from rulewatch.models import Verification, utcnow
from rulewatch.services.rules import create_rule
from rulewatch.tasks import verify
from tests.conftest import REDIS_URL, require_service
from tests.integration.processes import spawn, stop, wait_for
from tests.targets import Target, http_rule

REDIS_DB = 11


def test_it_serves_an_urgent_verification_before_queued_routine_ones(tmp_path: Path) -> None:
    require_service("127.0.0.1", 6379, "Redis")
    broker = f"{REDIS_URL}/{REDIS_DB}"
    redis.Redis.from_url(broker).flushdb()
    env = {"RULEWATCH_HOME": str(tmp_path), "RULEWATCH_BROKER_URL": broker,
           "RULEWATCH_RESULT_BACKEND": broker}  # fmt: skip
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
