"""Drill (issue #12, item 1): the worker killed with -9 in the middle of checks.

Real processes (web, scheduler, a worker, beat) on a private Redis and a private PostgreSQL.
The target starts answering slowly (1.5 s), the worker's whole process group (main process
and pool) is killed with -9 while it checks, and a new worker is started at once. Every rule
is verified again within its `timeout_s` + 30 s of the kill, no due time twice, none
replayed. On Redis the dead worker's messages stay unacknowledged for the visibility timeout
(an hour): the rules it held come back through their claims, held `timeout_s` + 20 s from
the start of their task (`tests/integration/test_worker_crash.py` drills the same on
RabbitMQ, where the message comes back at once).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.drills.harness import Drill, assert_sound
from tests.drills.services import PostgresCluster, RedisServer
from tests.integration.processes import wait_for
from tests.targets import Target

RULES = 6
BEFORE_S = 6
TIMEOUT_S = 2  # the rules' timeout_s (harness default)
AFTER_S = 10


def test_worker_killed_mid_check_and_started_again(
    private_redis: RedisServer, private_postgres: tuple[PostgresCluster, str],
    drill_folder: Path, stacks: list[Drill], record_property: Any,
) -> None:  # fmt: skip
    _, database_url = private_postgres
    drill = Drill("worker-killed", drill_folder, database_url, private_redis.url,
                  private_redis.url)  # fmt: skip
    stacks.append(drill)
    drill.start_stack()
    with Target() as target:
        drill.add_rules(target.url, RULES)
        time.sleep(BEFORE_S)  # the drill's length before the crash: rules run meanwhile
        outage = drill.down("worker")  # from the slow answers on, runs may be late
        target.delay_s = 1.5
        hits = target.hits
        wait_for(lambda: target.hits > hits, 10, "a check in flight", drill.logs["worker"])
        drill.kill("worker")
        drill.up(outage)  # recovery counts from the kill: a new worker is started at once
        target.delay_s = 0
        drill.start("worker")
        drill.ready("worker")
        drill.wait_verified_after(outage.up or outage.down, TIMEOUT_S + 40)
        time.sleep(AFTER_S)
        figures = drill.figures()
    drill.report(figures, record_property)
    assert drill.alive() == dict.fromkeys(drill.processes), drill.alive()
    assert_sound(figures, TIMEOUT_S + 30)
