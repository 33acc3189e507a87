"""Shared fixtures: real databases (SQLite, PostgreSQL, MariaDB), the app, and service checks.

Which engines a test runs on. A test that asks for ``database_url`` (or ``factory``,
``settings``, ``app``, which build on it) runs on:

- all three engines when it touches SQL that differs between them: every test under
  ``tests/services`` and ``tests/probes`` (claims, rollups, notifications, db helpers,
  migrations, SQL probes), and any test or module marked ``@pytest.mark.all_databases``:
  the cross-database API set (name filters, the YAML round trip, name clashes lost to a
  concurrent request);
- SQLite only otherwise (pages and most API tests). SQLite is the storage `rulewatch up`
  runs on out of the box, the browser tests' too, and the cheapest to reset: pages and API
  handlers go through the same services, whose SQL the matrix above already covers.

A test can still name its engines itself with
``@pytest.mark.parametrize("database_url", [...], indirect=True)``.

Every database starts migrated and empty, without paying for a migration per test: each
xdist worker migrates one template per engine and a test gets a copy of it (SQLite: a file
copy; PostgreSQL: ``CREATE DATABASE ... TEMPLATE``). MariaDB has no cheap copy, so a worker
migrates one database and empties its tables after each test (rebuilt when a test left
another schema). Names carry the worker and a random part, so parallel workers and runs
never share a database.

`make test` spreads test files over xdist workers (``-n 3``), each file whole on one worker
(``--dist loadfile``, in pyproject's addopts): a module's processes, its Redis db and its
module-scoped fixtures are never used by two workers at once. The suite mostly waits on the
processes it starts, so it runs more workers than this machine's two cores, and hands out
the long files first (``pytest_collection_modifyitems``): drills and worker-process tests,
one of each in turn, so that none is left to start at the end and few run at once.
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from itertools import zip_longest
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from rulewatch import create_app
from rulewatch.config import Settings, load_settings
from rulewatch.db import make_engine, make_session_factory
from rulewatch.migrate import upgrade
from tests.auth import sign_in_test_clients
from tests.smtp_server import inbox, smtp_port  # noqa: F401  (fixtures)

PG_ADMIN_URL = os.environ.get(
    "RULEWATCH_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MYSQL_ADMIN_URL = os.environ.get("RULEWATCH_TEST_MYSQL", "mysql+pymysql://root@127.0.0.1:3306/test")
REDIS_URL = os.environ.get("RULEWATCH_TEST_REDIS", "redis://127.0.0.1:6379")

ALL_ENGINES = ("sqlite", "postgresql", "mariadb")
DEFAULT_ENGINES = ("sqlite",)
MATRIX_TIERS = ("services", "probes")  # folders under tests/ that run on every engine
LONG_TIERS = ("drills", "integration")  # folders whose files run for tens of seconds
TESTS = Path(__file__).parent
TABLES_SQL = "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "all_databases: run on SQLite, PostgreSQL and MariaDB (the test touches SQL that "
        "differs between them); other tests that use a database run on SQLite only",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Long files first, drills and integration files taking turns, then the rest as
    collected (xdist hands out files in this order)."""
    files: dict[Path, list[pytest.Item]] = {}
    for item in items:
        files.setdefault(item.path, []).append(item)
    long = [[f for f in files if f.is_relative_to(TESTS / tier)] for tier in LONG_TIERS]
    turns = [f for group in zip_longest(*long) for f in group if f is not None]
    rest = [f for f in files if f not in set(turns)]
    items[:] = [item for f in turns + rest for item in files[f]]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run each database test on the engines its tier or its marker asks for."""
    if "database_url" not in metafunc.fixturenames or _names_its_engines(metafunc):
        return
    metafunc.parametrize("database_url", engines_for(metafunc.definition), indirect=True)


def engines_for(item: pytest.Item) -> tuple[str, ...]:
    """ALL_ENGINES for a matrix tier or an ``all_databases`` test, else DEFAULT_ENGINES."""
    tier = item.path.relative_to(TESTS).parts[0]
    if tier in MATRIX_TIERS or item.get_closest_marker("all_databases"):
        return ALL_ENGINES
    return DEFAULT_ENGINES


def _names_its_engines(metafunc: pytest.Metafunc) -> bool:
    marks = metafunc.definition.iter_markers("parametrize")
    return any("database_url" in str(mark.args[0]) for mark in marks)


def require_service(host: str, port: int, name: str) -> None:
    """Skip the test when a service is not reachable, except under CI=true, where it fails."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return
    except OSError as exc:
        reason = f"{name} is not reachable at {host}:{port} ({exc})"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI=true requires it, so start it before running the tests")
    pytest.skip(f"{reason}; start it to run this test (with CI=true this is a failure)")


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The PostgreSQL admin URL, once the server is known to be reachable."""
    require_service("127.0.0.1", 5432, "PostgreSQL")
    return PG_ADMIN_URL


@pytest.fixture(scope="session")
def mysql_server() -> str:
    """The MariaDB/MySQL admin URL, once the server is known to be reachable."""
    require_service("127.0.0.1", 3306, "MariaDB")
    return MYSQL_ADMIN_URL


def database_name(kind: str = "test") -> str:
    """A database name no other xdist worker or test run uses."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return f"rw_{kind}_{worker}_{uuid.uuid4().hex[:10]}"


def fresh_database(admin_url: str, template: str | None = None) -> tuple[str, str]:
    """Create a database on the server of ``admin_url``, empty or a copy of ``template``
    (PostgreSQL only); returns (url, name)."""
    name = database_name()
    quote = "`" if admin_url.startswith("mysql") else '"'
    copy = f' TEMPLATE "{template}"' if template else ""
    with _admin(admin_url) as conn:
        conn.execute(text(f"CREATE DATABASE {quote}{name}{quote}{copy}"))
    return admin_url.rsplit("/", 1)[0] + f"/{name}", name


def drop_database(admin_url: str, name: str) -> None:
    """Drop a database made by fresh_database, closing its sessions on PostgreSQL."""
    mysql = admin_url.startswith("mysql")
    sql = (
        f"DROP DATABASE IF EXISTS `{name}`"
        if mysql
        else f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
    )
    with _admin(admin_url) as conn:
        conn.execute(text(sql))


@contextmanager
def _admin(admin_url: str) -> Iterator[Connection]:
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with engine.connect() as conn:
        yield conn


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test."""
    path = tmp_path_factory.mktemp("sqlite-template") / "rulewatch.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_template(pg_server: str) -> Iterator[str]:
    """The name of a migrated PostgreSQL database, the template of each test's database."""
    url, name = fresh_database(pg_server)
    upgrade(url)  # upgrade disposes its engine: a template must have no open session
    yield name
    drop_database(pg_server, name)


@dataclass
class MariaDbDatabase:
    """This worker's migrated MariaDB database, emptied after each test."""

    admin: str
    url: str = ""
    name: str = ""
    version: str = ""
    tables: frozenset[str] = frozenset()

    def build(self) -> None:
        """(Re)create and migrate the database; remember its tables and revision."""
        if self.name:
            drop_database(self.admin, self.name)
        self.url, self.name = fresh_database(self.admin)
        upgrade(self.url)
        self.version, self.tables = self._schema()

    def reset(self) -> None:
        """Empty every table; rebuild when a test left the schema at another revision."""
        self._close_other_sessions()
        if self._schema() != (self.version, self.tables):
            self.build()
            return
        engine = create_engine(self.url, poolclass=NullPool)
        with engine.begin() as conn:
            conn.execute(text("SET FOREIGN_KEY_CHECKS = 0"))
            for table in sorted(self.tables - {"alembic_version"}):
                conn.execute(text(f"TRUNCATE TABLE `{table}`"))  # also resets AUTO_INCREMENT
            conn.execute(text("SET FOREIGN_KEY_CHECKS = 1"))

    def _schema(self) -> tuple[str, frozenset[str]]:
        engine = create_engine(self.url, poolclass=NullPool)
        with engine.connect() as conn:
            tables = frozenset(conn.scalars(text(TABLES_SQL)))
            if "alembic_version" not in tables:
                return "", tables
            version = conn.scalar(text("SELECT MAX(version_num) FROM alembic_version"))
        return str(version), tables

    def _close_other_sessions(self) -> None:
        # connections a test left open (an app's pool) would make TRUNCATE wait for them
        with _admin(self.admin) as conn:
            ids = conn.scalars(
                text("SELECT id FROM information_schema.processlist WHERE db = :db"),
                {"db": self.name},
            ).all()
            for session_id in ids:
                with suppress(DBAPIError):  # it ended meanwhile
                    conn.execute(text(f"KILL CONNECTION {int(session_id)}"))


@pytest.fixture(scope="session")
def mariadb_database(mysql_server: str) -> Iterator[MariaDbDatabase]:
    """One migrated MariaDB database per worker, shared by its tests one after another."""
    template = MariaDbDatabase(mysql_server)
    template.build()
    yield template
    drop_database(mysql_server, template.name)


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database on the engine of the test's parameter (see the docstring
    at the top for which tests run on which engines)."""
    engine: str = getattr(request, "param", DEFAULT_ENGINES[0])
    if engine == "sqlite":
        path = tmp_path / "rulewatch.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
    elif engine == "postgresql":
        admin = request.getfixturevalue("pg_server")
        url, name = fresh_database(admin, template=request.getfixturevalue("pg_template"))
        yield url
        drop_database(admin, name)
    else:
        template: MariaDbDatabase = request.getfixturevalue("mariadb_database")
        yield template.url
        template.reset()


@pytest.fixture
def factory(database_url: str) -> Iterator[sessionmaker[Session]]:
    """A session factory on the test database."""
    engine = make_engine(database_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Settings for an app on the test database with an in-memory broker (no worker)."""
    base = load_settings({"RULEWATCH_HOME": str(tmp_path / "home")})
    return replace(base, database_url=database_url, broker_url="memory://",
                   result_backend="cache+memory://")  # fmt: skip


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    """The Flask app under test; its test clients send an admin's token (``token=None``: none)."""
    app = create_app(settings)
    app.config["TESTING"] = True
    sign_in_test_clients(app)
    yield app
    app.extensions["rulewatch"].engine.dispose()  # closes its pool before the database goes


_DRILLS: list[str] = []  # figures of the drills (tests/drills), printed at the end of the run


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Keep each drill's figures (a user property, so it also comes back from xdist workers;
    here, in the top conftest, because the xdist controller loads no other)."""
    if report.when == "call":
        _DRILLS.extend(str(value) for name, value in report.user_properties if name == "drill")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print every drill's figures at the end of the run."""
    if _DRILLS:
        terminalreporter.section("drills")
        for line in _DRILLS:
            terminalreporter.write_line(line)
