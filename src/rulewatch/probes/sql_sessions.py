"""Engines per data source and read-only, time-limited transactions for each SQL dialect."""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from typing import Any
from urllib.parse import quote

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url

_ENGINES: dict[str, Engine] = {}
_ENGINES_LOCK = threading.Lock()
# Engines are shared across targets with different timeouts, so the connect timeout of the
# call at hand travels in a context variable (asyncio.to_thread copies the context).
_CONNECT_TIMEOUT_S: ContextVar[float] = ContextVar("connect_timeout_s", default=10.0)
_SQLITE_PROGRESS_STEPS = 1000
_MYSQL_MULTI_STATEMENTS = 1 << 16  # CLIENT.MULTI_STATEMENTS in the MySQL protocol


class UnsupportedDataSource(Exception):
    """The data source's database cannot be queried with read-only guarantees."""


def engine_for(dsn: str) -> Engine:
    """The cached engine for a DSN, created on first use (SQLite files open read-only)."""
    with _ENGINES_LOCK:
        engine = _ENGINES.get(dsn)
        if engine is None:
            engine = create_engine(_read_only_url(make_url(dsn)), pool_pre_ping=True)
            event.listen(engine, "do_connect", _apply_connect_timeout)
            _ENGINES[dsn] = engine
        return engine


def dispose_engines() -> None:
    """Close every cached engine's pooled connections (at shutdown, or after a fork)."""
    with _ENGINES_LOCK:
        for engine in _ENGINES.values():
            engine.dispose()
        _ENGINES.clear()


@contextmanager
def connect_timeout(seconds: float) -> Iterator[None]:
    """Bound new connections made inside the block to ``seconds``."""
    token = _CONNECT_TIMEOUT_S.set(seconds)
    try:
        yield
    finally:
        _CONNECT_TIMEOUT_S.reset(token)


def read_only_transaction(conn: Connection, timeout_s: float) -> AbstractContextManager[None]:
    """Make the connection's transaction read-only, with a statement timeout of ``timeout_s``."""
    name = conn.dialect.name
    setup = _SETUPS.get(name)
    if setup is None:
        raise UnsupportedDataSource(
            f"the {name} dialect is not supported for sql rules: "
            "use PostgreSQL, MySQL/MariaDB or SQLite"
        )
    return setup(conn, timeout_s)


def _apply_connect_timeout(
    dialect: Any, conn_rec: Any, cargs: Any, cparams: dict[str, Any]
) -> None:
    if dialect.name in ("postgresql", "mysql", "mariadb"):
        cparams["connect_timeout"] = max(1, math.ceil(_CONNECT_TIMEOUT_S.get()))
    if dialect.name in ("mysql", "mariadb"):
        # One statement per call: a string the validator misread must not smuggle a second.
        cparams["client_flag"] = int(cparams.get("client_flag", 0)) & ~_MYSQL_MULTI_STATEMENTS


def _read_only_url(url: URL) -> URL:
    """SQLite files open in read-only URI mode, so a write is refused and no file is created."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return url
    if str(url.query.get("uri", "")).lower() in ("true", "1"):
        return url.update_query_dict({"mode": "ro"})
    path = "file:" + quote(os.path.abspath(url.database or ""))
    return url.set(database=path).update_query_dict({"uri": "true", "mode": "ro"})


@contextmanager
def _postgresql(conn: Connection, timeout_s: float) -> Iterator[None]:
    conn.exec_driver_sql("SET TRANSACTION READ ONLY")
    # SET takes no bind parameters; the value is an int we computed.
    conn.exec_driver_sql(f"SET LOCAL statement_timeout = {_ms(timeout_s)}")
    yield


@contextmanager
def _mysql(conn: Connection, timeout_s: float) -> Iterator[None]:
    if getattr(conn.dialect, "is_mariadb", False):
        conn.exec_driver_sql(f"SET SESSION max_statement_time = {timeout_s:.3f}")
    else:
        conn.exec_driver_sql(f"SET SESSION max_execution_time = {_ms(timeout_s)}")
    # The session setting is what keeps DDL out: DDL commits implicitly, ending a transaction
    # that only START TRANSACTION READ ONLY made read-only.
    conn.exec_driver_sql("SET SESSION TRANSACTION READ ONLY")
    conn.exec_driver_sql("START TRANSACTION READ ONLY")
    yield


@contextmanager
def _sqlite(conn: Connection, timeout_s: float) -> Iterator[None]:
    conn.exec_driver_sql("PRAGMA query_only = ON")
    raw: Any = conn.connection.dbapi_connection
    deadline = time.monotonic() + timeout_s
    # A non-zero return aborts the statement with "interrupted".
    raw.set_progress_handler(lambda: int(time.monotonic() > deadline), _SQLITE_PROGRESS_STEPS)
    try:
        yield
    finally:
        raw.set_progress_handler(None, _SQLITE_PROGRESS_STEPS)


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


_SETUPS: dict[str, Callable[[Connection, float], AbstractContextManager[None]]] = {
    "postgresql": _postgresql,
    "mysql": _mysql,
    "mariadb": _mysql,
    "sqlite": _sqlite,
}
