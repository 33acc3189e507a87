"""Shared fixtures: real databases (SQLite and PostgreSQL), the app, and service checks."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, sessionmaker

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


def fresh_database(admin_url: str) -> tuple[str, str]:
    """Create an empty database on the server of ``admin_url``; returns (url, name)."""
    name = f"rw_test_{uuid.uuid4().hex[:10]}"
    quote = "`" if admin_url.startswith("mysql") else '"'
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {quote}{name}{quote}"))
    engine.dispose()
    return admin_url.rsplit("/", 1)[0] + f"/{name}", name


def drop_database(admin_url: str, name: str) -> None:
    """Drop a database made by fresh_database, closing its sessions on PostgreSQL."""
    mysql = admin_url.startswith("mysql")
    sql = (
        f"DROP DATABASE IF EXISTS `{name}`"
        if mysql
        else f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
    )
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(sql))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database on each supported engine."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'rulewatch.db'}"
        upgrade(url)
        yield url
        return
    admin = request.getfixturevalue(
        "pg_server" if request.param == "postgresql" else "mysql_server"
    )
    url, name = fresh_database(admin)
    upgrade(url)
    yield url
    drop_database(admin, name)


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
def app(settings: Settings) -> Flask:
    """The Flask app under test; its test clients send an admin's token (``token=None``: none)."""
    app = create_app(settings)
    app.config["TESTING"] = True
    sign_in_test_clients(app)
    return app
