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
import time
from pathlib import Path
from typing import Any

import redis

from tests.drills.harness import ALERT, Drill, assert_quiet_since, assert_sound
from tests.drills.services import PostgresCluster, RedisServer
from tests.integration.processes import wait_for
from tests.smtp_server import Inbox
from tests.targets import Target

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
    with Target() as target, Target() as broken:
        broken.status = 500  # one rule fails: one alert before the outage, none after
        drill.add_rules(target.url, RULES - 1, alert=ALERT)
        drill.add_rules(broken.url, 1, alert=ALERT)
        wait_for(lambda: inbox.messages, 30, "the failing rule's alert", drill.logs["worker"])
        time.sleep(BEFORE_S)  # the drill's length before the outage: rules run meanwhile
        outage = drill.down("redis")  # from the worker's pause on
        drill.signal("worker", signal.SIGSTOP)
        wait_for(lambda: _queued(private_redis), 10, "a message waiting in Redis")
        private_redis.stop()
        drill.signal("worker", signal.SIGCONT)
        time.sleep(DOWN_S)  # the outage's length
        private_redis.start()
        drill.up(outage)
        recovered = drill.wait_verified_after(outage.up or outage.down, RECOVERY_S + 10)
        time.sleep(AFTER_S)
        figures = drill.figures()
    figures.emails_expected, figures.emails_sent = 1, len(inbox.messages)
    drill.report(figures, record_property)
    assert drill.alive() == dict.fromkeys(drill.processes), drill.alive()
    assert_sound(figures, RECOVERY_S)
    assert [m["Subject"][:8] for m in inbox.messages] == ["[FIRING]"], inbox.messages
    assert_quiet_since(drill, recovered)


def _queued(server: RedisServer) -> int:
    """How many messages wait in Redis's lists (the queues, one list per priority)."""
    client = redis.Redis.from_url(server.url)
    return sum(client.llen(key) for key in client.scan_iter(_type="list"))
