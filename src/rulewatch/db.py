"""Engine and session factory, shared by web, workers, beat and the CLI; and the SQL that
differs between SQLite, PostgreSQL and MySQL/MariaDB, so that services hold no dialect test."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC
from functools import lru_cache
from typing import Any, Literal, TypeVar, TypeVarTuple

from sqlalchemy import (
    Engine,
    Executable,
    Select,
    Table,
    bindparam,
    case,
    column,
    create_engine,
    event,
    func,
    select,
    update,
)
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.base import ReadOnlyColumnCollection

from rulewatch.models import UTCDateTime

Ts = TypeVarTuple("Ts")
CONNECT_TIMEOUT_S = 5
M = TypeVar("M")


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine; SQLite gets WAL and a busy timeout since processes write at once."""
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {"timeout": 30})
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)  # a connection the server dropped is replaced
    if url.startswith("postgresql") and "connect_timeout" not in url:
        # a server that does not answer (a host down, packets dropped) fails a request in
        # seconds, as a 503, instead of holding it for the system's TCP timeout (minutes)
        kwargs.setdefault("connect_args", {"connect_timeout": CONNECT_TIMEOUT_S})
    return create_engine(url, **kwargs)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory whose objects stay readable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on error."""
    with factory() as session, session.begin():
        yield session


def after_commit_of_new(
    factory: sessionmaker[Session], model: type[M], hook: Callable[[list[M]], None]
) -> None:
    """Hand ``hook`` the ``model`` rows each transaction of ``factory`` inserted, once it has
    committed (so they are there for whoever reads them next); a rollback forgets them.

    Whoever writes the rows, with `transaction` or a commit of their own, the hook runs:
    there is no follow-up call to remember. The rows stay readable (expire_on_commit=False).
    """
    key = ("inserted", model)

    def added(session: Session, instance: object) -> None:
        if isinstance(instance, model):
            session.info.setdefault(key, []).append(instance)

    def committed(session: Session) -> None:
        rows = session.info.pop(key, None)
        if rows:
            hook(rows)

    def rolled_back(session: Session) -> None:
        session.info.pop(key, None)

    event.listen(factory, "pending_to_persistent", added)
    event.listen(factory, "after_commit", committed)
    event.listen(factory, "after_rollback", rolled_back)


def lock_for_update(query: Select[*Ts], session: Session, skip_locked: bool = False) -> Select[*Ts]:
    """``query`` locking the rows it reads until commit (``skip_locked``: leaving out rows
    another transaction holds).

    SQLite has no row locks and is returned the query unchanged: its single writer lock
    serialises writers, so callers re-check their predicate in the UPDATE that follows.
    """
    if session.get_bind().dialect.name == "sqlite":
        return query
    return query.with_for_update(skip_locked=skip_locked)


Merge = Literal["add", "max"]


def upsert(
    session: Session,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
    merge: Mapping[str, Merge],
) -> None:
    """Insert ``rows``; where a row with the same ``keys`` exists, merge the new values into
    it instead: ``"add"`` sums the two, ``"max"`` keeps the greater (other columns stay).

    MySQL and MariaDB match on any unique key, so ``keys`` should be the table's only one.
    """
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":  # every row in one statement
        columns = tuple(rows[0])
        statement = _json_upsert(table, columns, tuple(keys), tuple(merge.items()))
        session.execute(statement, {"rows": _json_rows(table, columns, rows)})
        return
    session.execute(_upsert_statement(dialect, table, tuple(keys), tuple(merge.items())), rows)


def insert_many(session: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` (each with the same columns): on PostgreSQL as one statement reading
    the rows from one JSON parameter, elsewhere as one statement run per row."""
    if not rows:
        return
    if session.get_bind().dialect.name != "postgresql":
        session.execute(table.insert(), rows)
        return
    columns = tuple(rows[0])
    session.execute(_json_insert(table, columns), {"rows": _json_rows(table, columns, rows)})


def update_many(
    session: Session, table: Table, rows: Sequence[Mapping[str, Any]],
    constants: Mapping[str, Any] | None = None,
) -> None:  # fmt: skip
    """Set each row's columns (each row the same columns, its primary key "id" among them),
    and ``constants`` on every row: on PostgreSQL as one UPDATE ... FROM the rows read from
    one JSON parameter, elsewhere as one statement run per row."""
    if not rows:
        return
    columns = tuple(rows[0])
    if session.get_bind().dialect.name == "postgresql":
        statement = _json_update(table, columns, tuple((constants or {}).items()))
        session.execute(statement, {"rows": _json_rows(table, columns, rows)})
        return
    by_id = update(table).where(table.c.id == bindparam("b_id"))
    values: dict[str, Any] = {name: bindparam(f"b_{name}") for name in columns if name != "id"}
    session.execute(
        by_id.values(**values, **(constants or {})),
        [{f"b_{name}": value for name, value in row.items()} for row in rows],
    )


def _json_rows(
    table: Table, columns: tuple[str, ...], rows: Sequence[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    """The rows as the JSON document ``json_to_recordset`` reads: times as naive UTC text,
    the form the columns store (UTCDateTime), the rest as JSON has them. One parameter,
    serialised by the json module in C: column arrays (unnest) cost psycopg more per value
    than the statements they replaced saved."""
    times = [name for name in columns if isinstance(table.c[name].type, UTCDateTime)]
    if not times:
        return list(rows)
    out: list[Mapping[str, Any]] = []
    for row in rows:
        copy = dict(row)
        for name in times:
            if (value := copy[name]) is not None:
                copy[name] = value.astimezone(UTC).replace(tzinfo=None).isoformat()
        out.append(copy)
    return out


def _json_source(table: Table, columns: tuple[str, ...]) -> Any:
    """``json_to_recordset(:rows) AS incoming(column type, ...)``: the rows as a table."""
    typed = [column(name, table.c[name].type) for name in columns]
    rows = func.json_to_recordset(bindparam("rows", type_=postgresql.JSON))
    return rows.table_valued(*typed).render_derived(name="incoming", with_types=True)


@lru_cache(maxsize=64)
def _json_update(
    table: Table, columns: tuple[str, ...], constants: tuple[tuple[str, Any], ...]
) -> Executable:
    """``UPDATE table SET ... FROM json_to_recordset(:rows) AS incoming(...) WHERE id = ...``."""
    source = _json_source(table, columns)
    values = {name: source.c[name] for name in columns if name != "id"}
    return (
        update(table)
        .where(table.c.id == source.c.id)
        .values(**values, **dict(constants))
        .execution_options(synchronize_session=False)
    )


@lru_cache(maxsize=64)
def _json_insert(table: Table, columns: tuple[str, ...]) -> postgresql.Insert:
    """``INSERT INTO table (columns) SELECT ... FROM json_to_recordset(:rows)``, built once."""
    source = _json_source(table, columns)
    return postgresql.insert(table).from_select(list(columns), select(*source.c))


@lru_cache(maxsize=64)
def _json_upsert(
    table: Table, columns: tuple[str, ...], keys: tuple[str, ...],
    merge: tuple[tuple[str, Merge], ...],
) -> Executable:  # fmt: skip
    """PostgreSQL's upsert of many rows as one statement (``INSERT ... SELECT FROM
    json_to_recordset(...) ON CONFLICT``) instead of a statement run per row (each row cost
    the worker more than the database did)."""
    stmt = _json_insert(table, columns)
    return stmt.on_conflict_do_update(
        index_elements=keys, set_=_merged(table, stmt.excluded, merge)
    )


@lru_cache(maxsize=64)
def _upsert_statement(
    dialect: str, table: Table, keys: tuple[str, ...], merge: tuple[tuple[str, Merge], ...]
) -> Executable:
    """Built once per table and merge: it runs with every batch of verifications, and
    building the SET clause costs more than SQLAlchemy's cached compilation of it."""
    if dialect in ("mysql", "mariadb"):
        stmt_my = mysql.insert(table)
        return stmt_my.on_duplicate_key_update(_merged(table, stmt_my.inserted, merge))
    stmt: postgresql.Insert | sqlite.Insert = (
        postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    )
    return stmt.on_conflict_do_update(
        index_elements=keys, set_=_merged(table, stmt.excluded, merge)
    )


def _merged(
    table: Table, new: ReadOnlyColumnCollection[str, Any], merge: tuple[tuple[str, Merge], ...]
) -> dict[str, Any]:
    """The SET clause merging each column of ``merge`` with its incoming value ``new``."""
    return {
        name: table.c[name] + new[name]
        if how == "add"
        else case((table.c[name] >= new[name], table.c[name]), else_=new[name])
        for name, how in merge
    }
