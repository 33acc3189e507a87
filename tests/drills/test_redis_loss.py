"""Drill (issue #12, item 4): Redis, broker and result backend, killed and started again empty.

Real processes (web, scheduler, a worker, beat) on a private Redis and a private PostgreSQL.
The worker is paused (SIGSTOP) until a tick's message waits in Redis, then Redis is killed
with -9 and the worker resumed; Redis starts again, empty, on the same port: the queued
message and every result Redis held are gone. Beat, the scheduler and the worker must reconnect by
themselves and stay up; every rule is verified again within 60 s of Redis's return (a run
whose message was lost waits for its claim, `RULEWATCH_CLAIM_TTL_S` after it was claimed:
60 s by default, 30 s here to keep the drill short), no due time twice, and the logs go
quiet again.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import redis

from tests.drills.harness import Drill, assert_recovered_with_one_alert
from tests.drills.services import PostgresCluster, RedisServer
from tests.integration.processes import wait_for
from tests.smtp_server import Inbox

RULES = 6
BEFORE_S = 8
DOWN_S = 25  # longer than the 20 tries Celery's Redis result backend makes
AFTER_S = 10
CLAIM_TTL_S = 30
RECOVERY_S = 60.0


def test_redis_killed_and_started_again_empty(
    private_redis: RedisServer, private_postgres: tuple[PostgresCluster, str],
    drill_folder: Path, stacks: list[Drill], record_property: Any, inbox: Inbox, smtp_port: int,
) -> None:  # fmt: skip
    _, database_url = private_postgres
    drill = Drill("redis-restarted-empty", drill_folder, database_url, private_redis.url,
                  private_redis.url, {"RULEWATCH_CLAIM_TTL_S": str(CLAIM_TTL_S)})  # fmt: skip
    stacks.append(drill)
    drill.alerts_to(smtp_port)
    drill.start_stack()
    _, recovered, figures = drill.outage_with_alerts(
        inbox, "redis", lambda: _stop_with_a_message_queued(drill, private_redis),
        private_redis.start, rules=RULES, before_s=BEFORE_S, down_s=DOWN_S,
        verified_within_s=RECOVERY_S + 10, after_s=AFTER_S,
    )  # fmt: skip
    drill.report(figures, record_property)
    assert_recovered_with_one_alert(drill, figures, recovered, inbox, RECOVERY_S)


def _stop_with_a_message_queued(drill: Drill, server: RedisServer) -> None:
    """Kill Redis while a tick's message waits in it: the worker is paused until one does
    (the outage counts from the pause on)."""
    drill.signal("worker", signal.SIGSTOP)
    wait_for(lambda: _queued(server), 10, "a message waiting in Redis")
    server.stop()
    drill.signal("worker", signal.SIGCONT)


def _queued(server: RedisServer) -> int:
    """How many messages wait in Redis's lists (the queues, one list per priority)."""
    client = redis.Redis.from_url(server.url)
    return sum(client.llen(key) for key in client.scan_iter(_type="list"))
