"""Beat's scheduler: Celery's own, that says once that it cannot reach the broker and once that
it can again, instead of a traceback at every tick of an outage (``beat_scheduler``)."""

from __future__ import annotations

import logging
import time
from typing import Any

from celery.beat import PersistentScheduler, ScheduleEntry
from kombu.exceptions import OperationalError as BrokerError

log = logging.getLogger(__name__)
# what a send raises when the broker (or a Redis result backend) cannot be reached
UNREACHABLE = (BrokerError, ConnectionError, OSError)


def broker_unreachable(exc: BaseException) -> bool:
    """True when ``exc``, or what it was raised from, says the broker could not be reached
    (beat wraps a send's error in a SchedulingError)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, UNREACHABLE):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class QuietScheduler(PersistentScheduler):
    """A PersistentScheduler whose sends, while the broker is away, fail with one log line."""

    _down_since: float | None = None

    def apply_entry(self, entry: ScheduleEntry, producer: Any = None) -> None:
        """Send ``entry``'s task; a send the broker cannot take is skipped (the next tick
        sends again: ticks claim what is due, so nothing is lost)."""
        log.info("Scheduler: Sending due task %s (%s)", entry.name, entry.task)
        try:
            self.apply_async(entry, producer=producer, advance=False)
        except Exception as exc:
            if not broker_unreachable(exc):
                log.error("Message Error: %s", exc, exc_info=True)
            elif self._down_since is None:
                self._down_since = time.monotonic()
                log.warning("beat cannot reach the broker (%s); sending again every tick", exc)
            return
        if self._down_since is not None:
            down_s, self._down_since = time.monotonic() - self._down_since, None
            log.warning("beat reaches the broker again (after %.1f s); sends resumed", down_s)
