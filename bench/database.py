"""Throwaway PostgreSQL databases for the benches, independent of the test suite's fixtures
so that a bench can run against another revision of rulewatch (``--baseline``)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text

PG_ADMIN = os.environ.get("RULEWATCH_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def create_database(admin_url: str = PG_ADMIN) -> tuple[str, str]:
    """Create an empty database on the server of ``admin_url``; returns (url, name)."""
    name = f"rw_bench_{uuid.uuid4().hex[:10]}"
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return admin_url.rsplit("/", 1)[0] + f"/{name}", name


def drop_database(name: str, admin_url: str = PG_ADMIN) -> None:
    """Drop a database made by create_database, closing its sessions first."""
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@contextmanager
def scratch_database(admin_url: str = PG_ADMIN) -> Iterator[str]:
    """The URL of a new empty database, dropped on the way out whatever happened inside."""
    url, name = create_database(admin_url)
    try:
        yield url
    finally:
        drop_database(name, admin_url)
