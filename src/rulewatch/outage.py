"""A database outage, told apart from a bug: which errors mean the database cannot be reached,
how to name the database to a person (never its password), and one log line when a process
meets the outage and one when it connects again, instead of a traceback per request or try."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import PurePath

from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

# connection refused or lost, server shutting down or starting, pool exhausted, SQLite locked
UNAVAILABLE_ERRORS = (OperationalError, InterfaceError, PoolTimeout)
RETRY_AFTER_S = 5  # what a 503 asks a client to wait
log = logging.getLogger(__name__)


def database_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` says the database could not be reached or answer, not that a
    statement was wrong: such errors end when the database is back."""
    if isinstance(exc, UNAVAILABLE_ERRORS):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def database_label(url: str) -> str:
    """The database as a person names it: ``postgresql 10.0.0.5:5432/rulewatch``, ``sqlite
    rulewatch.db``; no user name or password."""
    try:
        parts = make_url(url)
    except ArgumentError:
        return "(unreadable database URL)"
    backend = parts.get_backend_name()
    if backend == "sqlite":
        return f"sqlite {PurePath(parts.database or ':memory:').name}"
    host = parts.host or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"{backend} {host}{port}/{parts.database or ''}"


def reason(exc: BaseException) -> str:
    """The driver's first line for ``exc`` (what failed), short enough for a log or a page."""
    original = getattr(exc, "orig", None) or exc
    first = (str(original).strip().splitlines() or [""])[0]
    text = f"{type(original).__name__}: {first}" if first else type(original).__name__
    return text if len(text) <= 200 else text[:197] + "..."


class OutageLog:
    """Logs, for one process, that its database became unavailable (once, at the first error)
    and that it is back (once, at the first connection handed out after that)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._down_since: float | None = None
        self._lock = threading.Lock()

    @property
    def down(self) -> bool:
        """True from a failure until a connection is handed out again."""
        return self._down_since is not None

    def failed(self, exc: BaseException) -> None:
        """A query or connection failed because the database is unavailable."""
        with self._lock:
            if self._down_since is not None:
                return
            self._down_since = time.monotonic()
        log.warning("database %s is unavailable (%s); waiting for it", self.label, reason(exc))

    def connected(self) -> None:
        """A connection to the database was handed out: it answers."""
        if self._down_since is None:  # the usual case, without the lock
            return
        with self._lock:
            if self._down_since is None:
                return
            down_s, self._down_since = time.monotonic() - self._down_since, None
        log.warning("database %s is back (unavailable for %.1f s here)", self.label, down_s)

    def watch(self, engine: Engine) -> None:
        """Call ``connected`` whenever ``engine``'s pool hands out a connection (after its
        pre-ping, so one the server dropped does not count)."""
        event.listen(engine, "checkout", lambda _conn, _record, _proxy: self.connected())
