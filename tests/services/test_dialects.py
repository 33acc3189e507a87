"""The SQL that differs between engines, written once in ``db.py``, on each engine."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Column, Engine, Float, Integer, MetaData, String, Table, select
from sqlalchemy.orm import Session, sessionmaker

from rulewatch.db import lock_for_update, transaction, upsert

metadata = MetaData()
tallies = Table(
    "dialect_tallies",
    metadata,
    Column("key", Integer, primary_key=True, autoincrement=False),
    Column("count", Integer, nullable=False),
    Column("top", Float, nullable=False),
    Column("label", String(20), nullable=False),
)
MERGE: dict[str, Any] = {"count": "add", "top": "max"}


@pytest.fixture
def table_factory(factory: sessionmaker[Session]) -> sessionmaker[Session]:
    """The test database's session factory, with the tallies table created."""
    engine: Engine = factory.kw["bind"]
    metadata.create_all(engine)
    return factory


def _tallies(factory: sessionmaker[Session]) -> list[tuple[int, int, float, str]]:
    with transaction(factory) as session:
        rows = session.execute(select(tallies).order_by(tallies.c.key)).all()
    return [(key, count, top, label) for key, count, top, label in rows]


def _upsert(factory: sessionmaker[Session], *rows: tuple[int, int, float, str]) -> None:
    values = [dict(zip(("key", "count", "top", "label"), row, strict=True)) for row in rows]
    with transaction(factory) as session:
        upsert(session, tallies, values, ("key",), MERGE)


def test_it_inserts_rows_whose_key_is_new(table_factory: sessionmaker[Session]) -> None:
    _upsert(table_factory, (1, 2, 5.0, "first"), (2, 1, 1.5, "second"))
    assert _tallies(table_factory) == [(1, 2, 5.0, "first"), (2, 1, 1.5, "second")]


def test_it_adds_counts_and_keeps_the_greater_value_of_an_existing_row(
    table_factory: sessionmaker[Session],
) -> None:
    _upsert(table_factory, (1, 2, 5.0, "first"), (2, 1, 1.5, "second"))
    _upsert(table_factory, (1, 3, 4.0, "again"), (2, 4, 9.0, "again"), (3, 7, 0.5, "third"))
    assert _tallies(table_factory) == [
        (1, 5, 5.0, "first"),
        (2, 5, 9.0, "second"),
        (3, 7, 0.5, "third"),
    ]


def _held_and_free(factory: sessionmaker[Session]) -> tuple[list[int], list[int]]:
    """Rows one transaction locks, and those another reads meanwhile with SKIP LOCKED."""
    _upsert(factory, (1, 1, 1.0, "held"), (2, 1, 1.0, "free"))
    keys = select(tallies.c.key).order_by(tallies.c.key)
    with transaction(factory) as holder:
        held = holder.scalars(lock_for_update(keys.where(tallies.c.key == 1), holder)).all()
        with transaction(factory) as other:
            free = other.scalars(lock_for_update(keys, other, skip_locked=True)).all()
    return list(held), list(free)


def test_it_skips_rows_another_transaction_locked(table_factory: sessionmaker[Session]) -> None:
    if table_factory.kw["bind"].dialect.name == "sqlite":
        pytest.skip("SQLite has no row locks: its one writer lock serialises writers")
    assert _held_and_free(table_factory) == ([1], [2])


def test_it_reads_every_row_on_sqlite_where_the_write_lock_serialises(
    table_factory: sessionmaker[Session],
) -> None:
    if table_factory.kw["bind"].dialect.name != "sqlite":
        pytest.skip("row locks are tested on the engines that have them")
    assert _held_and_free(table_factory) == ([1], [1, 2])
