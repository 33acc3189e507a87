"""Failed sign-in counts: shared by web processes through Redis, never a reason to fail."""

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
    for _ in range(5):
        assert first.retry_after("10.0.0.1", name) == 0
        second.failed("10.0.0.1", name)
    assert 1 <= first.retry_after("10.0.0.1", name) <= 60
    assert first.retry_after("10.0.0.2", name) == 0, "another address is not limited"
    assert first.retry_after("10.0.0.1", "someone-else") == 0


def test_it_lets_sign_ins_through_when_its_storage_is_down() -> None:
    throttle = LoginThrottle(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    throttle.failed("10.0.0.1", "sam")
    assert throttle.retry_after("10.0.0.1", "sam") == 0
