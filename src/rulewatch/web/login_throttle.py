"""Failed sign-ins counted per address and name, and per address; refused past the limits.

Counts live in Redis when the broker is Redis, so every web process shares them; otherwise
in the memory of each web process (embedded mode: limits are per process).
"""

from __future__ import annotations

import logging
import math
import time

from limits import RateLimitItem, parse
from limits.errors import StorageError
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from rulewatch.config import Settings

log = logging.getLogger(__name__)
PER_NAME = parse("5/minute")  # guesses at one account from one address
PER_ADDRESS = parse("20/minute")  # guesses spread over many names from one address


def storage_uri(settings: Settings) -> str:
    """Where counts are kept: the Redis broker when there is one, else this process."""
    if settings.broker_url.startswith(("redis://", "rediss://")):
        return settings.broker_url
    return "memory://"


class LoginThrottle:
    """Counts failed sign-ins; a storage outage lets sign-ins through rather than lock all out."""

    def __init__(self, uri: str) -> None:
        storage = storage_from_string(
            uri, wrap_exceptions=True, socket_timeout=2, socket_connect_timeout=2
        )
        self._limiter = MovingWindowRateLimiter(storage)

    def _limits(self, address: str, name: str) -> list[tuple[RateLimitItem, tuple[str, ...]]]:
        return [
            (PER_NAME, ("login", address, name.lower()[:64])),
            (PER_ADDRESS, ("login", address)),
        ]

    def retry_after(self, address: str, name: str) -> int:
        """Seconds until this address may try this name again; 0 when it may now."""
        wait = 0.0
        try:
            for item, keys in self._limits(address, name):
                if not self._limiter.test(item, *keys):
                    reset = self._limiter.get_window_stats(item, *keys).reset_time
                    wait = max(wait, reset - time.time(), 1)
        except StorageError as exc:
            log.warning("sign-in limits not checked, their storage failed: %s", exc)
        return math.ceil(wait)

    def failed(self, address: str, name: str) -> None:
        """Count one failed sign-in."""
        try:
            for item, keys in self._limits(address, name):
                self._limiter.hit(item, *keys)
        except StorageError as exc:
            log.warning("a failed sign-in was not counted, its storage failed: %s", exc)
