"""Drill (issue #12, item 4): RabbitMQ stopped and started again.

Real processes (web, scheduler, a worker, beat) on a private RabbitMQ node (results in the
database, as the README advises with RabbitMQ) and a private PostgreSQL. The node is stopped
(SIGTERM: a clean shutdown, durable queues and persistent messages kept) and started again on
the same ports. Beat, the scheduler and the worker must reconnect by themselves and stay up;
every rule is verified again within 60 s of the node's return, no due time twice, and the
logs go quiet again.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.drills.harness import ALERT, Drill, assert_quiet_since, assert_sound
from tests.drills.services import PostgresCluster, RabbitNode
from tests.integration.processes import wait_for
from tests.smtp_server import Inbox
from tests.targets import Target

RULES = 6
BEFORE_S = 8
DOWN_S = 10
AFTER_S = 10
RECOVERY_S = 60.0


def test_rabbitmq_stopped_and_started_again(
    private_rabbit: RabbitNode, private_postgres: tuple[PostgresCluster, str],
    drill_folder: Path, stacks: list[Drill], record_property: Any, inbox: Inbox, smtp_port: int,
) -> None:  # fmt: skip
    _, database_url = private_postgres
    drill = Drill("rabbitmq-restarted", drill_folder, database_url, private_rabbit.url,
                  f"db+{database_url}")  # fmt: skip
    stacks.append(drill)
    drill.alerts_to(smtp_port)
    drill.start_stack()
    with Target() as target, Target() as broken:
        broken.status = 500  # one rule fails: one alert before the outage, none after
        drill.add_rules(target.url, RULES - 1, alert=ALERT)
        drill.add_rules(broken.url, 1, alert=ALERT)
        wait_for(lambda: inbox.messages, 30, "the failing rule's alert", drill.logs["worker"])
        time.sleep(BEFORE_S)  # the drill's length before the outage: rules run meanwhile
        outage = drill.down("rabbitmq")
        private_rabbit.stop()
        time.sleep(DOWN_S)  # the outage's length
        private_rabbit.start()
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
