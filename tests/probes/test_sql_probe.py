"""The sql probe: validation alone, then real PostgreSQL, MariaDB and SQLite databases."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import closed_port, require_service
from sqlalchemy import Engine, create_engine, text

from rulewatch.domain.observation import Observation
from rulewatch.probes import ProbeContext, run_probe
from rulewatch.probes.sql import run_read_only, validate_select
from rulewatch.probes.sql_sessions import dispose_engines, engine_for

PG_DSN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
MARIADB_DSN = "mysql+pymysql://root@127.0.0.1:3306/test"
BIG_AMOUNT = Decimal("12345678901234567890.0123456789")
SECRET = "S3cr3t-pw"

# --- validation, no database -------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "SELECT 1",
        "select count(*) from orders where status = 'DELETE';",
        "-- daily load\nSELECT count(*) FROM loads /* today */",
        "WITH recent AS (SELECT * FROM t WHERE d > now()) SELECT count(*) FROM recent",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c",
        "(SELECT 1) UNION (SELECT 2)",
        "SELECT \"update\", name FROM t WHERE note LIKE '50%'",
    ],
)
def test_it_accepts_a_single_select(query: str) -> None:
    validate_select(query)


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("DROP TABLE t", "starts with 'DROP'"),
        ("SELECT 1; DROP TABLE t", "only one statement is allowed, found 2"),
        ("WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x", "DELETE is not allowed"),
        ("WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x", "INSERT is not allowed"),
        ("SELECT * INTO copy_of_t FROM t", "INTO is not allowed"),
        ("SELECT 1 INTO OUTFILE '/tmp/x'", "INTO is not allowed"),
        ("SELECT * FROM t FOR UPDATE", "UPDATE is not allowed"),
        ("UPDATE t SET a = 1", "starts with 'UPDATE'"),
        ("TRUNCATE t", "starts with 'TRUNCATE'"),
        ("GRANT ALL ON t TO public", "starts with 'GRANT'"),
        ("EXPLAIN ANALYZE DELETE FROM t", "starts with 'EXPLAIN'"),
        ("", "the query is empty"),
        ("-- nothing but a comment", "the query is empty"),
    ],
)
def test_it_rejects_anything_but_one_select(query: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason.replace("(", r"\(")):
        validate_select(query)


# --- real databases ----------------------------------------------------------------------


@dataclass
class Database:
    """A database holding a fresh ``readings`` table, and how to misbehave on it."""

    dsn: str
    table: str
    admin: Engine
    slow_query: str
    timeout_message: str
    write_past_validation: str
    write_refusal: str

    def count(self) -> int:
        """Rows in the table, read over the admin connection."""
        with self.admin.connect() as conn:
            return int(conn.execute(text(f"SELECT count(*) FROM {self.table}")).scalar_one())


def _fill(admin: Engine, table: str, amount_type: str) -> None:
    with admin.begin() as conn:
        conn.execute(text(f"CREATE TABLE {table} (id int, amount {amount_type}, name varchar(20))"))
        rows = [
            {"id": i, "amount": str(BIG_AMOUNT if i == 1 else i), "name": f"r{i}"}
            for i in range(1, 6)
        ]
        conn.execute(text(f"INSERT INTO {table} VALUES (:id, :amount, :name)"), rows)


def _postgresql() -> Iterator[Database]:
    require_service("127.0.0.1", 5432, "PostgreSQL")
    admin, schema = create_engine(PG_DSN), f"rw_probe_{uuid.uuid4().hex[:10]}"
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    _fill(admin, f"{schema}.readings", "numeric(30, 10)")
    with admin.begin() as conn:
        # A SELECT that writes: it passes validation, so only the read-only transaction stops it.
        conn.exec_driver_sql(
            f"CREATE FUNCTION {schema}.bump() RETURNS int VOLATILE LANGUAGE sql "
            f"AS $$ INSERT INTO {schema}.readings VALUES (99, 0, 'x') RETURNING 1 $$"
        )
    yield Database(
        PG_DSN, f"{schema}.readings", admin, "SELECT pg_sleep(5)",
        "canceling statement due to statement timeout", f"SELECT {schema}.bump()",
        "cannot execute INSERT in a read-only transaction",
    )  # fmt: skip
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


def _mariadb() -> Iterator[Database]:
    require_service("127.0.0.1", 3306, "MariaDB")
    admin, table = create_engine(MARIADB_DSN), f"rw_probe_{uuid.uuid4().hex[:10]}"
    _fill(admin, table, "DECIMAL(30, 10)")
    yield Database(
        MARIADB_DSN, table, admin, "SELECT SLEEP(5)", "max_statement_time exceeded",
        f"INSERT INTO {table} VALUES (99, 0, 'x')",
        "Cannot execute statement in a READ ONLY transaction",
    )  # fmt: skip
    with admin.begin() as conn:
        conn.execute(text(f"DROP TABLE IF EXISTS {table}, {table}_ddl"))
    admin.dispose()


def _sqlite(folder: Path) -> Iterator[Database]:
    dsn = f"sqlite:///{folder / 'probe.db'}"
    admin = create_engine(dsn)
    _fill(admin, "readings", "NUMERIC")
    endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c"
    yield Database(
        dsn, "readings", admin, endless, "interrupted",
        "INSERT INTO readings VALUES (99, 0, 'x')", "attempt to write a readonly database",
    )  # fmt: skip
    admin.dispose()


@pytest.fixture(scope="module")
def postgresql_db() -> Iterator[Database]:
    yield from _postgresql()
    dispose_engines()


@pytest.fixture(scope="module")
def mariadb_db() -> Iterator[Database]:
    yield from _mariadb()
    dispose_engines()


@pytest.fixture(scope="module")
def sqlite_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    yield from _sqlite(tmp_path_factory.mktemp("sqlite"))
    dispose_engines()


@pytest.fixture(params=["postgresql_db", "mariadb_db", "sqlite_db"])
def database(request: pytest.FixtureRequest) -> Database:
    db: Database = request.getfixturevalue(request.param)
    return db


def _probe(
    db: Database, query: str, *, timeout_s: float = 10, row_limit: int = 1000
) -> Observation:
    ctx = ProbeContext(datasources={"main": db.dsn}, sql_row_limit=row_limit)
    target = {"datasource": "main", "query": query, "timeout_s": timeout_s}
    return asyncio.run(run_probe("sql", target, ctx))


def test_it_reads_the_value_the_row_and_the_row_count(database: Database) -> None:
    observed = _probe(database, f"SELECT id, name FROM {database.table} ORDER BY id")
    assert observed.connected and observed.failure is None and observed.fault is None
    assert (observed.value, observed.rows, observed.row) == (1, 5, {"id": 1, "name": "r1"})
    assert observed.response_time_ms is not None and observed.response_time_ms > 0


def test_it_reports_an_empty_result_as_zero_rows(database: Database) -> None:
    observed = _probe(database, f"SELECT id FROM {database.table} WHERE id < 0")
    assert (observed.rows, observed.value, observed.row, observed.fault) == (0, None, None, None)


def test_it_keeps_decimals_exact(database: Database) -> None:
    if database.dsn.startswith("sqlite"):
        pytest.skip("SQLite has no exact decimal type: NUMERIC is stored as a float")
    observed = _probe(database, f"SELECT amount FROM {database.table} WHERE id = 1")
    assert observed.value == BIG_AMOUNT
    assert isinstance(observed.value, Decimal) and str(observed.value) == str(BIG_AMOUNT)


@pytest.mark.parametrize(("row_limit", "rows"), [(3, 3), (5, 5), (10, 5)])
def test_it_counts_rows_up_to_the_row_limit(database: Database, row_limit: int, rows: int) -> None:
    observed = _probe(database, f"SELECT id FROM {database.table}", row_limit=row_limit)
    assert observed.rows == rows and observed.fault is None


def test_it_refuses_a_write_that_slips_past_validation(database: Database) -> None:
    observed = run_read_only(
        database.dsn, database.write_past_validation, timeout_s=5, row_limit=10
    )
    assert observed.connected and observed.failure is None
    assert observed.fault is not None and observed.fault.startswith("query failed:")
    assert database.write_refusal in observed.fault
    assert database.count() == 5


def test_it_stops_a_slow_query_at_the_statement_timeout(database: Database) -> None:
    started = time.perf_counter()
    observed = _probe(database, database.slow_query, timeout_s=1)
    elapsed = time.perf_counter() - started
    assert 0.5 < elapsed < 1.5
    assert observed.connected and observed.failure is None
    assert observed.fault is not None and database.timeout_message in observed.fault


def test_it_reports_a_query_error_as_a_fault_with_the_database_message(
    database: Database,
) -> None:
    observed = _probe(database, f"SELECT no_such_column FROM {database.table}")
    assert observed.connected and observed.failure is None
    assert observed.fault is not None and observed.fault.startswith("query failed: ")
    assert "no_such_column" in observed.fault


def test_it_caches_one_engine_per_data_source(database: Database) -> None:
    assert engine_for(database.dsn) is engine_for(database.dsn)


# --- faults and failures that need no table ----------------------------------------------


def _probe_dsn(dsn: str, query: str = "SELECT 1", name: str = "main") -> Observation:
    ctx = ProbeContext(datasources={"main": dsn})
    target = {"datasource": name, "query": query, "timeout_s": 5}
    return asyncio.run(run_probe("sql", target, ctx))


def test_it_reports_an_unknown_data_source_as_a_fault() -> None:
    observed = _probe_dsn(PG_DSN, name="warehouse")
    assert observed.fault == "unknown data source 'warehouse'" and observed.failure is None


def test_it_rejects_a_drop_table_before_connecting() -> None:
    observed = _probe_dsn(f"postgresql+psycopg://u@127.0.0.1:{closed_port()}/x", "DROP TABLE t")
    assert observed.failure is None
    assert observed.fault == (
        "query rejected: only SELECT (or WITH ... SELECT) queries are allowed; "
        "this one starts with 'DROP'"
    )


@pytest.mark.parametrize(
    "dsn",
    [
        f"postgresql+psycopg://postgres:{SECRET}@127.0.0.1:{{port}}/test",
        f"mysql+pymysql://root:{SECRET}@127.0.0.1:{{port}}/test",
    ],
    ids=["postgresql", "mariadb"],
)
def test_it_reports_an_unreachable_database_as_a_failure_without_the_password(dsn: str) -> None:
    observed = _probe_dsn(dsn.format(port=closed_port()))
    assert not observed.connected and observed.fault is None
    assert observed.failure is not None
    assert observed.failure.startswith("cannot connect to the data source: ")
    assert "refused" in observed.failure.lower()
    assert SECRET not in observed.failure


def test_it_never_creates_a_missing_sqlite_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    observed = _probe_dsn(f"sqlite:///{missing}")
    assert not observed.connected and observed.failure is not None
    assert not missing.exists()


def test_it_scrubs_the_password_from_a_database_message() -> None:
    require_service("127.0.0.1", 5432, "PostgreSQL")
    dsn = f"postgresql+psycopg://postgres:{SECRET}@127.0.0.1:5432/test"  # trust auth ignores it
    observed = _probe_dsn(dsn, f'SELECT * FROM "{SECRET}"')
    assert observed.fault is not None and observed.fault.startswith('query failed: relation "***"')
    assert SECRET not in observed.fault
    dispose_engines()


def test_it_never_runs_a_second_statement_hidden_from_the_validator() -> None:
    require_service("127.0.0.1", 5432, "PostgreSQL")
    table = f"rw_probe_{uuid.uuid4().hex[:10]}"
    # sqlparse reads \' as an escaped quote; PostgreSQL does not, and would see three statements.
    smuggled = rf"SELECT 'a\'; COMMIT; CREATE TABLE {table} (a int); --'"
    validate_select(smuggled)
    observed = _probe_dsn(PG_DSN, smuggled)
    assert observed.fault is not None and "multiple commands" in observed.fault
    with create_engine(PG_DSN).connect() as conn:
        exists = conn.execute(text("SELECT to_regclass(:t)"), {"t": table}).scalar_one()
    assert exists is None
    dispose_engines()


def test_it_reports_a_permission_error_as_a_fault(postgresql_db: Database) -> None:
    role = f"rw_probe_role_{uuid.uuid4().hex[:8]}"
    with postgresql_db.admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
    try:
        dsn = f"postgresql+psycopg://{role}@127.0.0.1:5432/test"
        observed = _probe_dsn(dsn, f"SELECT * FROM {postgresql_db.table}")
        assert observed.connected and observed.failure is None
        assert observed.fault is not None and "permission denied" in observed.fault
    finally:
        dispose_engines()
        with postgresql_db.admin.begin() as conn:
            conn.exec_driver_sql(f"DROP ROLE {role}")


def test_it_refuses_ddl_that_would_commit_implicitly_on_mariadb(mariadb_db: Database) -> None:
    # DDL ends MySQL's transaction by itself; only the session-wide READ ONLY still holds it.
    ddl = f"CREATE TABLE {mariadb_db.table}_ddl (a int)"
    observed = run_read_only(mariadb_db.dsn, ddl, timeout_s=5, row_limit=10)
    assert observed.fault is not None and mariadb_db.write_refusal in observed.fault
    with mariadb_db.admin.connect() as conn:
        tables = conn.exec_driver_sql(f"SHOW TABLES LIKE '{mariadb_db.table}_ddl'").all()
    assert tables == []
