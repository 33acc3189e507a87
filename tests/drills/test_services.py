"""The drills' private services behave as the drills assume: Redis comes back empty, the
PostgreSQL cluster refuses connections while stopped and keeps its data, RabbitMQ keeps a
durable queue's persistent message across a restart."""

from __future__ import annotations

import pytest
import redis
from kombu import Connection, Queue
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from tests.drills.services import PostgresCluster, RabbitNode, RedisServer


def test_private_redis_restarts_empty(private_redis: RedisServer) -> None:
    redis.Redis.from_url(private_redis.url).rpush("checks", b"message")
    private_redis.stop()
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(private_redis.url).ping()
    private_redis.start()
    assert redis.Redis.from_url(private_redis.url).llen("checks") == 0


def test_private_postgres_stops_and_keeps_its_data(
    private_postgres: tuple[PostgresCluster, str],
) -> None:
    cluster, url = private_postgres
    engine = create_engine(url, poolclass=NullPool)
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM rules")) == 0  # migrated
        assert conn.scalar(text("SELECT current_user")) == "postgres"
    cluster.stop()
    with pytest.raises(OperationalError), engine.connect():
        pass
    cluster.start()
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM alembic_version")) == 1


def test_private_rabbitmq_keeps_a_durable_message_across_a_restart(
    private_rabbit: RabbitNode,
) -> None:
    queue = Queue("drill-check", durable=True)
    with Connection(private_rabbit.url) as conn:
        conn.Producer().publish({"n": 1}, routing_key="drill-check", declare=[queue])
    private_rabbit.stop()
    private_rabbit.start()
    with Connection(private_rabbit.url) as conn:
        message = conn.SimpleQueue(queue).get(timeout=10)
        assert message.payload == {"n": 1}
        message.ack()
