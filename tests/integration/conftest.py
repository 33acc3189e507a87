"""Fixtures of the worker-process tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from rulewatch.db import make_engine, make_session_factory
from rulewatch.migrate import upgrade
from tests.conftest import drop_database, fresh_database


@pytest.fixture
def database(pg_server: str) -> Iterator[tuple[str, sessionmaker[Session]]]:
    """A fresh, migrated PostgreSQL database and a session factory on it."""
    url, name = fresh_database(pg_server)
    upgrade(url)
    engine = make_engine(url)
    yield url, make_session_factory(engine)
    engine.dispose()
    drop_database(pg_server, name)
