"""Sign-in attempt counts: shared by web processes through Redis, never a reason to fail."""

from __future__ import annotations

import uuid

import redis

from rulewatch.web.login_throttle import LoginThrottle
from tests.conftest import REDIS_URL, require_service
from tests.integration.processes import free_port

REDIS_DB = 10


def test_web_processes_share_failed_sign_ins_through_redis() -> None:
    require_service("127.0.0.1", 6379, "Redis")
    url = f"{REDIS_URL}/{REDIS_DB}"
    redis.Redis.from_url(url).flushdb()
    first, second = LoginThrottle(url), LoginThrottle(url)  # as in two web processes
    name = f"user-{uuid.uuid4().hex[:6]}"
    for i in range(5):  # counted before the password is checked, alternately by each process
        assert (first if i % 2 else second).attempt("10.0.0.1", name) == 0
    assert 1 <= first.attempt("10.0.0.1", name) <= 60
    assert first.attempt("10.0.0.2", name) == 0, "another address is not limited"
    assert first.attempt("10.0.0.1", "someone-else") == 0
    second.succeeded("10.0.0.1", name)
    assert first.attempt("10.0.0.1", name) == 0, "a right password starts the name afresh"


def test_it_lets_sign_ins_through_when_its_storage_is_down() -> None:
    throttle = LoginThrottle(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    for _ in range(10):
        assert throttle.attempt("10.0.0.1", "sam") == 0
    throttle.succeeded("10.0.0.1", "sam")
