"""The brokers worker-process tests run on: a Redis db, or a RabbitMQ vhost of their own.

A test module takes ``broker_kind`` from ``BROKERS`` (a parameter) and opens ``broker(...)``
around each stack it starts. Redis: the module's own db, emptied before and after (each
module names a db no other module uses, and ``--dist loadfile`` keeps a module on one xdist
worker). RabbitMQ: a vhost created for the stack and deleted after it, named after the xdist
worker and a random part, so parallel workers and parallel runs never share one and the
shared RabbitMQ is never restarted or reconfigured.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis

from rulewatch.config import QUEUES
from tests.conftest import REDIS_URL, require_service

AMQP_URL = os.environ.get("RULEWATCH_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672")
AMQP_USER = AMQP_URL.split("//", 1)[1].split(":", 1)[0]
BROKERS = ("redis", "rabbitmq")


@dataclass(frozen=True)
class Broker:
    """A broker a stack runs on, and what the tests may ask it about its messages."""

    kind: str
    url: str
    vhost: str = ""

    def result_backend(self, database_url: str) -> str:
        """Where task results go: Redis keeps them itself; RabbitMQ has no result store of its
        own, so they go to the database, as the README advises for production."""
        return self.url if self.kind == "redis" else f"db+{database_url}"

    def idle(self, stranded: frozenset[bytes] = frozenset()) -> bool:
        """True when no message waits in a queue or sits unacknowledged with a worker, apart
        from ``stranded`` ones (see unacknowledged). Tasks acknowledge late, after anything they
        queue themselves: work in progress (running, retrying, or held for its countdown)
        always shows here."""
        if self.kind == "rabbitmq":
            return not any(ready or unacked for ready, unacked in self._amqp_counts().values())
        client = redis.Redis.from_url(self.url)
        if self.unacknowledged() - stranded:
            return False
        return not any(client.llen(key) for key in client.scan_iter(_type="list"))

    def unacknowledged(self) -> frozenset[bytes]:
        """Delivery tags of the messages workers hold unacknowledged on Redis; those of a
        killed worker stay until the visibility timeout, so a test that kills one passes them
        as stranded. RabbitMQ gives a dead consumer's messages back at once: none strand."""
        if self.kind == "rabbitmq":
            return frozenset()
        return frozenset(redis.Redis.from_url(self.url).hkeys("unacked"))

    def consumer_timeouts_ms(self) -> dict[str, int]:
        """RabbitMQ: the ``x-consumer-timeout`` each rulewatch queue's consumers asked for."""
        lines = _rabbitmqctl("list_consumers", "-q", "--no-table-headers", "-p", self.vhost,
                             "queue_name", "arguments")  # fmt: skip
        found = {}
        for line in lines.splitlines():
            name, arguments = line.split(maxsplit=1)
            timeout = re.search(r'"x-consumer-timeout",(\d+)', arguments)
            if name in QUEUES and timeout:
                found[name] = int(timeout.group(1))
        return found

    def _amqp_counts(self) -> dict[str, tuple[int, int]]:
        # AMQP's passive queue_declare counts only ready messages; unacknowledged ones (a
        # countdown held by a worker, a task running) are known to the server's CLI alone
        columns = ["name", "messages_ready", "messages_unacknowledged"]
        lines = _rabbitmqctl("list_queues", "-q", "--no-table-headers", "-p", self.vhost, *columns)
        counts = {}
        for line in lines.splitlines():
            name, ready, unacked = line.split()
            if name in QUEUES:  # not a worker's pidbox (remote control) queue
                counts[name] = (int(ready), int(unacked))
        return counts


@contextlib.contextmanager
def broker(kind: str, redis_db: int) -> Iterator[Broker]:
    """An empty broker of ``kind`` for one stack: Redis db ``redis_db``, or a new vhost."""
    if kind == "redis":
        require_service("127.0.0.1", 6379, "Redis")
        url = f"{REDIS_URL}/{redis_db}"
        redis.Redis.from_url(url).flushdb()
        try:
            yield Broker(kind, url)
        finally:
            redis.Redis.from_url(url).flushdb()
        return
    require_service("127.0.0.1", 5672, "RabbitMQ")
    with rabbitmq_vhost() as vhost:
        yield Broker(kind, f"{AMQP_URL}/{vhost}", vhost)


@contextlib.contextmanager
def rabbitmq_vhost() -> Iterator[str]:
    """A RabbitMQ vhost nobody else uses, open to the test user, deleted on the way out."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    vhost = f"rulewatch_test_{worker}_{uuid.uuid4().hex[:10]}"
    _rabbitmqctl("add_vhost", vhost)
    try:
        _rabbitmqctl("set_permissions", "-p", vhost, AMQP_USER, ".*", ".*", ".*")
        yield vhost
    finally:
        _rabbitmqctl("delete_vhost", vhost)


def _rabbitmqctl(*args: str) -> str:
    if shutil.which("rabbitmqctl") is None:  # RabbitMQ answers, but runs elsewhere
        reason = "rabbitmqctl is not on PATH: the RabbitMQ tests make their vhosts with it"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    done = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {done.stderr or done.stdout}")
    return done.stdout
