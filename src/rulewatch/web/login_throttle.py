"""Sign-in attempts counted per address and name, and per address; refused past the limits.

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
    """Counts sign-in attempts; a storage outage lets sign-ins through rather than lock all out."""

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

    def attempt(self, address: str, name: str) -> int:
        """Count a sign-in attempt before the password is checked; return the seconds to
        wait when it is over a limit (refuse it then), 0 when it may go on.

        Counting first means a burst of guesses sent at once cannot all pass the check
        before any of them is counted.
        """
        try:
            for item, keys in self._limits(address, name):
                if not self._limiter.hit(item, *keys):
                    reset = self._limiter.get_window_stats(item, *keys).reset_time
                    return max(1, math.ceil(reset - time.time()))
        except StorageError as exc:
            log.warning("sign-in limits not checked, their storage failed: %s", exc)
        return 0

    def succeeded(self, address: str, name: str) -> None:
        """A right password: this name's attempts from this address start afresh (the
        address's own count stays, so one good account cannot reset guesses at others)."""
        item, keys = self._limits(address, name)[0]
        try:
            self._limiter.clear(item, *keys)
        except StorageError as exc:
            log.warning("sign-in count not cleared, its storage failed: %s", exc)
