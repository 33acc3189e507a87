"""Drill (issue #12, item 6): two beats at once, then beat killed with -9 and started again.

Real processes (web, scheduler, a worker, two beats, each with its own home as on two
machines) on a private Redis and a private PostgreSQL. Both beats send every tick, so
`verify_all_rules` runs twice a second: the claims must still run each due time once, and
skip none. Then both beats are killed with -9 (no beat at all for a few seconds: every rule
falls due) and one is started again: every rule is verified again within 2 s of its return
(its "beat: Starting..." line), the due times of the gap skipped, none replayed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.drills.harness import Drill, assert_sound
from tests.drills.services import PostgresCluster, RedisServer
from tests.targets import Target

RULES = 6
TWO_BEATS_S = 60  # both beats tick this long
NO_BEAT_S = 5
AFTER_S = 10
RECOVERY_S = 2.0


def test_two_beats_then_beat_killed_and_restarted(
    private_redis: RedisServer, private_postgres: tuple[PostgresCluster, str],
    drill_folder: Path, stacks: list[Drill], record_property: Any,
) -> None:  # fmt: skip
    _, database_url = private_postgres
    drill = Drill("beat", drill_folder, database_url, private_redis.url, private_redis.url)
    stacks.append(drill)
    drill.start_stack("web", "scheduler", "worker", "beat", "beat2")
    with Target() as target:
        drill.add_rules(target.url, RULES)
        time.sleep(TWO_BEATS_S)  # the drill's duration: both beats tick meanwhile
        outage = drill.down("beat")
        drill.kill("beat")
        drill.kill("beat2")
        time.sleep(NO_BEAT_S)  # the outage's length, not a race: nothing runs without beat
        drill.start("beat")
        drill.up(outage, drill.ready("beat"))
        drill.wait_verified_after(outage.up or outage.down, 30)
        time.sleep(AFTER_S)
        figures = drill.figures()
    drill.report(figures, record_property)
    assert all(code is None for role, code in drill.alive().items() if role != "beat2")
    assert_sound(figures, RECOVERY_S)
