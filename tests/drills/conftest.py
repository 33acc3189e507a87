"""Fixtures of the drills: private services each drill may take away, and its stack.

Every drill file holds one drill (or a few short ones), so ``-n 3 --dist loadfile``
spreads the drills over the xdist workers and they run beside the rest of the suite.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from rulewatch.migrate import upgrade
from tests.drills.harness import Drill
from tests.drills.services import PostgresCluster, RabbitNode, RedisServer, running


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, running; ``stop``/``start`` bring it back empty."""
    server = RedisServer(tmp_path / "redis")
    with running(server):
        yield server


@pytest.fixture
def private_postgres() -> Iterator[tuple[PostgresCluster, str]]:
    """A PostgreSQL cluster of the test's own, running, and the URL of a database in it
    with rulewatch's schema."""
    cluster = PostgresCluster()
    with running(cluster):
        engine = create_engine(cluster.admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        with engine.connect() as conn:
            conn.execute(text('CREATE DATABASE "rulewatch"'))
        url = cluster.admin_url.rsplit("/", 1)[0] + "/rulewatch"
        upgrade(url)
        yield cluster, url


@pytest.fixture
def private_rabbit(tmp_path: Path) -> Iterator[RabbitNode]:
    """A RabbitMQ node of the test's own, running; ``stop``/``start`` restart it."""
    node = RabbitNode(tmp_path / "rabbit")
    with running(node):
        yield node


@pytest.fixture
def drill_folder(tmp_path: Path) -> Path:
    """Where a drill keeps its processes' homes and logs."""
    folder = tmp_path / "drill"
    folder.mkdir()
    return folder


@pytest.fixture
def stacks() -> Iterator[list[Drill]]:
    """Drills a test makes; every process they started is stopped after the test."""
    made: list[Drill] = []
    yield made
    for drill in made:
        drill.stop_all()
