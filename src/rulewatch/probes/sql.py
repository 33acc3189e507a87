"""The sql probe: one validated SELECT in a read-only, time-limited transaction."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import time
from collections.abc import Mapping, Sequence
from typing import Annotated, Any
from urllib.parse import unquote

from pydantic import StringConstraints, field_validator
from pydantic_core import PydanticCustomError
from sqlalchemy import Connection
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from rulewatch.domain.observation import Observation
from rulewatch.probes.context import ProbeContext, ms_since
from rulewatch.probes.kind import Kind, Target, Timeout
from rulewatch.probes.sql_sessions import (
    UnsupportedDataSource,
    connect_timeout,
    engine_for,
    read_only_transaction,
)
from rulewatch.probes.sql_validation import validate_select

__all__ = ["KIND", "SqlTarget", "probe_sql", "run_read_only", "validate_select"]

MAX_MESSAGE_CHARS = 500


class SqlTarget(Target):
    """One read-only SELECT against a named data source."""

    datasource: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)
    ]
    query: Annotated[str, StringConstraints(min_length=1, max_length=20000)]
    timeout_s: Timeout = 10.0

    @field_validator("query")
    @classmethod
    def _select_only(cls, query: str) -> str:
        try:
            validate_select(query)
        except ValueError as exc:  # the reason as it is, without pydantic's "Value error, "
            raise PydanticCustomError("select_only", "{reason}", {"reason": str(exc)}) from None
        return query


async def probe_sql(target: Mapping[str, Any], ctx: ProbeContext) -> Observation:
    """Validate the query, then run it against the named data source in a worker thread."""
    name, query = target.get("datasource"), target.get("query")
    if not isinstance(name, str) or not isinstance(query, str):
        return Observation(connected=False, fault="an sql target needs a datasource and a query")
    try:
        validate_select(query)
    except ValueError as exc:
        return Observation(connected=False, fault=f"query rejected: {exc}")
    unusable = ctx.datasource_faults.get(name)
    if unusable is not None:
        return Observation(connected=False, fault=unusable)
    dsn = ctx.datasources.get(name)
    if dsn is None:
        return Observation(connected=False, fault=f"unknown data source {name!r}")
    timeout_s = float(target.get("timeout_s", KIND.default_timeout_s))
    run = functools.partial(
        run_read_only, dsn, query, timeout_s=timeout_s, row_limit=ctx.sql_row_limit
    )
    if ctx.sql_executor is None:
        return await asyncio.to_thread(run)
    return await asyncio.get_running_loop().run_in_executor(ctx.sql_executor, run)


def run_read_only(dsn: str, query: str, *, timeout_s: float, row_limit: int) -> Observation:
    """Run ``query`` read-only and time-limited, always rolled back; it is NOT validated here."""
    started = time.perf_counter()
    # Leave a little of the budget so the database's own timeout, with its message, wins
    # the race against run_probe's overall asyncio timeout.
    deadline = time.monotonic() + timeout_s - min(0.25, timeout_s * 0.1)
    try:
        engine = engine_for(dsn)
    except (ArgumentError, NoSuchModuleError, ImportError, ValueError) as exc:
        return Observation(connected=False, fault=f"unusable data source URL: {_text(exc, dsn)}")
    try:
        with connect_timeout(timeout_s):
            conn = engine.connect()
    except SQLAlchemyError as exc:
        failure = f"cannot connect to the data source: {_text(exc, dsn)}"
        return Observation(connected=False, failure=failure, response_time_ms=ms_since(started))
    with conn:
        return _query(conn, dsn, query, deadline, row_limit, started)


def _query(
    conn: Connection, dsn: str, query: str, deadline: float, row_limit: int, started: float
) -> Observation:
    try:
        keys, rows = _fetch(conn, query, deadline, row_limit)
    except DBAPIError as exc:
        if exc.connection_invalidated:
            failure = f"lost the connection to the data source: {_text(exc, dsn)}"
            return Observation(connected=False, failure=failure, response_time_ms=ms_since(started))
        return _faulted(f"query failed: {_text(exc, dsn)}", started)
    except (SQLAlchemyError, UnsupportedDataSource) as exc:
        return _faulted(f"query failed: {_text(exc, dsn)}", started)
    finally:
        with contextlib.suppress(SQLAlchemyError):  # a dead connection is discarded anyway
            conn.rollback()
    return _observed(keys, rows, row_limit, started)


def _fetch(
    conn: Connection, query: str, deadline: float, row_limit: int
) -> tuple[list[str], Sequence[Sequence[Any]]]:
    """Column names and at most ``row_limit + 1`` rows, without loading the whole result."""
    # A server-side cursor keeps PostgreSQL from shipping every row to us; pysqlite is lazy
    # already, and a PyMySQL unbuffered cursor would drain all rows when closed.
    options = {"stream_results": True} if conn.dialect.name == "postgresql" else {}
    with read_only_transaction(conn, max(0.001, deadline - time.monotonic())):
        result = conn.exec_driver_sql(query, execution_options=options)
        if not result.returns_rows:
            return [], []
        keys = list(result.keys())
        rows = result.fetchmany(row_limit + 1)
        result.close()
    return keys, rows


def _observed(
    keys: list[str], rows: Sequence[Sequence[Any]], row_limit: int, started: float
) -> Observation:
    first = rows[0] if rows else None
    return Observation(
        connected=True,
        response_time_ms=ms_since(started),
        rows=min(len(rows), row_limit),
        value=first[0] if first else None,
        row=dict(zip(keys, first, strict=False)) if first is not None else None,
    )


def _faulted(fault: str, started: float) -> Observation:
    return Observation(connected=True, fault=fault, response_time_ms=ms_since(started))


def _text(exc: BaseException, dsn: str) -> str:
    """The database's own message, on one line, with the DSN and password scrubbed out."""
    message = _message_of(exc)
    for secret in sorted(_secrets_of(dsn), key=len, reverse=True):
        message = message.replace(secret, "***")
    message = re.sub(r"\s+", " ", message).strip()
    return message[:MAX_MESSAGE_CHARS]


def _message_of(exc: BaseException) -> str:
    orig = exc.orig if isinstance(exc, DBAPIError) else None
    if orig is None:
        # SQLAlchemy's own text appends the statement and a documentation link.
        return str(exc).split("\n[SQL:")[0].split("\n(Background")[0]
    args = orig.args
    if len(args) == 2 and isinstance(args[0], int) and isinstance(args[1], str):
        return f"{args[1]} (error {args[0]})"  # PyMySQL: (code, message)
    return str(orig) or type(orig).__name__


def _secrets_of(dsn: str) -> set[str]:
    secrets = {dsn, unquote(dsn)}
    with contextlib.suppress(ArgumentError, ValueError):
        url = make_url(dsn)
        secrets.add(url.render_as_string(hide_password=False))
        if url.password:
            secrets.add(str(url.password))
    return {s for s in secrets if s}


KIND = Kind(
    name="sql",
    probe=probe_sql,
    target=SqlTarget,
    placeholders=frozenset(
        {"VALUE", "ROWS", "ROW", "RESPONSE_TIME", "CONNECTED", "PREVIOUS_VALUE", "CHANGE_PERCENT"}
    ),
    example="[VALUE] > 0",
    blocking=True,
)
