"""Drill (issue #12, item 4): RabbitMQ stopped and started again.

Real processes (web, scheduler, a worker, beat) on a private RabbitMQ node (results in the
database, as the README advises with RabbitMQ) and a private PostgreSQL. The node is stopped
(SIGTERM: a clean shutdown, durable queues and persistent messages kept) and started again on
the same ports. Beat, the scheduler and the worker must reconnect by themselves and stay up;
every rule is verified again within 60 s of the node's return, no due time twice, and the
logs go quiet again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.drills.harness import Drill, assert_recovered_with_one_alert
from tests.drills.services import PostgresCluster, RabbitNode
from tests.smtp_server import Inbox

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
    _, recovered, figures = drill.outage_with_alerts(
        inbox, "rabbitmq", private_rabbit.stop, private_rabbit.start, rules=RULES,
        before_s=BEFORE_S, down_s=DOWN_S, verified_within_s=RECOVERY_S + 10, after_s=AFTER_S,
    )  # fmt: skip
    drill.report(figures, record_property)
    assert_recovered_with_one_alert(drill, figures, recovered, inbox, RECOVERY_S)
