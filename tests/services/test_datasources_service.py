"""Data sources as a service: validated, stored encrypted, listed without DSNs, removed safely."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from rulewatch.db import transaction
from rulewatch.dsn_cipher import PREFIX, DsnCipher
from rulewatch.models import DataSource, utcnow
from rulewatch.probes import ProbeContext
from rulewatch.services.datasources import (
    DataSourceInSettings,
    DataSourceInUse,
    DataSourceInvalid,
    DataSourceNotFound,
    delete_datasource,
    encrypt_stored_dsns,
    get_datasource,
    list_datasources,
    put_datasource,
    usable_datasources,
)
from rulewatch.services.rules import create_rule
from rulewatch.services.verification import Job, verify_one

CIPHER = DsnCipher.from_secret_keys("k" * 40)
OTHER = DsnCipher.from_secret_keys("o" * 40)
PASSWORD = "Pa55-w0rd-canary"
DSN = f"postgresql+psycopg://reader:{PASSWORD}@pg.internal:6543/warehouse"


def _put(factory: sessionmaker[Session], name: Any, dsn: Any, cipher: DsnCipher = CIPHER) -> bool:
    with transaction(factory) as session:
        return put_datasource(session, name, dsn, cipher, utcnow())[1]


def _raw(factory: sessionmaker[Session]) -> dict[str, str]:
    with factory() as session:
        rows = session.execute(text("SELECT name, dsn FROM datasources")).all()
        return {name: dsn for name, dsn in rows}


def _sql_rule(factory: sessionmaker[Session], datasource: str, name: str = "orders") -> int:
    data = {"name": name, "kind": "sql", "interval_s": 60, "conditions": ["[VALUE] > 0"],
            "target": {"datasource": datasource, "query": "SELECT 1"}}  # fmt: skip
    with transaction(factory) as session:
        return create_rule(session, data, utcnow()).id


def test_it_stores_the_dsn_encrypted_and_replaces_it(factory: sessionmaker[Session]) -> None:
    assert _put(factory, "warehouse", DSN) is True
    stored = _raw(factory)["warehouse"]
    assert stored.startswith(PREFIX)
    assert PASSWORD not in stored and "pg.internal" not in stored and "reader" not in stored
    assert CIPHER.decrypt(stored) == DSN
    assert _put(factory, "warehouse", "sqlite:///orders.db") is False
    assert CIPHER.decrypt(_raw(factory)["warehouse"]) == "sqlite:///orders.db"


def test_it_lists_where_a_data_source_is_but_never_its_dsn(
    factory: sessionmaker[Session],
) -> None:
    _put(factory, "warehouse", DSN)
    configured = {"legacy": "mysql+pymysql://app:other-secret@mysql.example/app"}
    with factory() as session:
        stored, legacy = list_datasources(session, configured, CIPHER)[::-1]
    assert (stored.name, stored.origin, stored.dialect, stored.driver) == (
        "warehouse", "stored", "postgresql", "psycopg",
    )  # fmt: skip
    assert (stored.host, stored.port, stored.database) == ("pg.internal", 6543, "warehouse")
    assert stored.created_at is not None and stored.problem is None
    assert (legacy.name, legacy.origin, legacy.host) == ("legacy", "settings", "mysql.example")
    for info in (stored, legacy):
        assert PASSWORD not in repr(info) and "other-secret" not in repr(info)
        assert "reader" not in repr(info) and "app:" not in repr(info)


@pytest.mark.parametrize(
    "name", ["", "Warehouse", "-lead", "a b", "x" * 65, "sp@ce", None, 7, "dot/slash"]
)
def test_it_refuses_a_bad_name(factory: sessionmaker[Session], name: Any) -> None:
    with pytest.raises(DataSourceInvalid) as caught:
        _put(factory, name, DSN)
    assert [e.field for e in caught.value.errors] == ["name"]
    assert _raw(factory) == {}


@pytest.mark.parametrize(
    ("dsn", "says"),
    [
        (None, "give the DSN as text"),
        ("   ", "give the DSN as text"),
        (f"reader:{PASSWORD}@pg.internal", "not a database URL"),
        (f"mssql+pyodbc://sa:{PASSWORD}@pg.internal/x", "mssql is not supported"),
        (f"mysql://root:{PASSWORD}@pg.internal/x", "write mysql+pymysql://"),
        (f"postgresql+asyncpg://u:{PASSWORD}@pg.internal/x", "write postgresql+psycopg://"),
        (f"postgresql://u:{PASSWORD}@pg.internal/x?plugin=evil", "plugins"),
        (f"postgresql://u:{PASSWORD}@pg.internal/" + "x" * 2000, "at most 2000 characters"),
    ],
)
def test_it_refuses_a_bad_dsn_without_echoing_it(
    factory: sessionmaker[Session], dsn: Any, says: str
) -> None:
    with pytest.raises(DataSourceInvalid) as caught:
        _put(factory, "warehouse", dsn)
    [error] = caught.value.errors
    assert error.field == "dsn" and says in error.message
    assert PASSWORD not in str(caught.value) and "pg.internal" not in str(caught.value)


def test_it_accepts_the_drivers_the_sql_probe_runs_with(factory: sessionmaker[Session]) -> None:
    for i, dsn in enumerate([
        "postgresql://u@h/d", "postgresql+psycopg://u@h/d", "mysql+pymysql://u@h/d",
        "mariadb+pymysql://u@h/d", "sqlite:///orders.db", "sqlite://",
    ]):  # fmt: skip
        _put(factory, f"source{i}", dsn)
    assert len(_raw(factory)) == 6


def test_it_refuses_to_remove_a_data_source_that_rules_read_from(
    factory: sessionmaker[Session],
) -> None:
    _put(factory, "warehouse", DSN)
    rule_id = _sql_rule(factory, "warehouse")
    with transaction(factory) as session, pytest.raises(DataSourceInUse) as caught:
        delete_datasource(session, "warehouse", {})
    assert caught.value.rules == [(rule_id, "orders")]
    assert "'orders' (id" in str(caught.value)
    assert "warehouse" in _raw(factory)


def test_it_removes_a_data_source_no_rule_needs(factory: sessionmaker[Session]) -> None:
    _put(factory, "warehouse", DSN)
    _put(factory, "spare", DSN)
    _sql_rule(factory, "warehouse")
    with transaction(factory) as session:
        delete_datasource(session, "spare", {})
    assert list(_raw(factory)) == ["warehouse"]
    with transaction(factory) as session, pytest.raises(DataSourceNotFound):
        delete_datasource(session, "spare", {})


def test_a_data_source_also_in_settings_can_be_removed_under_its_rules(
    factory: sessionmaker[Session],
) -> None:
    _put(factory, "warehouse", DSN)
    _sql_rule(factory, "warehouse")
    configured = {"warehouse": "sqlite://"}
    with transaction(factory) as session:
        delete_datasource(session, "warehouse", configured)
    with transaction(factory) as session, pytest.raises(DataSourceInSettings):
        delete_datasource(session, "warehouse", configured)
    with factory() as session:
        assert get_datasource(session, "warehouse", configured, CIPHER).origin == "settings"


def test_stored_data_sources_take_precedence_over_settings(
    factory: sessionmaker[Session],
) -> None:
    _put(factory, "warehouse", DSN)
    configured = {"warehouse": "sqlite://", "other": "sqlite:///other.db"}
    with factory() as session:
        dsns, faults = usable_datasources(session, configured, CIPHER)
    assert dsns == {"warehouse": DSN, "other": "sqlite:///other.db"}
    assert faults == {}


def _plain_row(factory: sessionmaker[Session], name: str, dsn: str) -> None:
    with transaction(factory) as session:  # as versions before encryption stored them
        session.add(DataSource(name=name, dsn=dsn, created_at=utcnow()))


def test_it_still_reads_plain_rows_and_encrypts_them_once(factory: sessionmaker[Session]) -> None:
    _plain_row(factory, "legacy", DSN)
    _put(factory, "current", "sqlite://")
    with factory() as session:
        assert usable_datasources(session, {}, CIPHER)[0]["legacy"] == DSN
    before = _raw(factory)["current"]
    with transaction(factory) as session:
        assert encrypt_stored_dsns(session, CIPHER) == (1, [])
    after = _raw(factory)
    assert after["legacy"].startswith(PREFIX) and PASSWORD not in after["legacy"]
    assert after["current"] == before, "already encrypted under the current key: untouched"
    with transaction(factory) as session:
        assert encrypt_stored_dsns(session, CIPHER) == (0, [])
    assert _raw(factory) == after


def test_it_re_encrypts_rows_of_the_previous_key_and_leaves_undecryptable_ones(
    factory: sessionmaker[Session],
) -> None:
    _put(factory, "rotated", DSN, OTHER)
    _put(factory, "lost", DSN, DsnCipher.from_secret_keys("l" * 40))
    rotating = DsnCipher.from_secret_keys("k" * 40, ["o" * 40])
    lost_before = _raw(factory)["lost"]
    with transaction(factory) as session:
        assert encrypt_stored_dsns(session, rotating) == (1, ["lost"])
    assert CIPHER.decrypt(_raw(factory)["rotated"]) == DSN
    assert _raw(factory)["lost"] == lost_before


def test_an_undecryptable_data_source_faults_its_rules_without_a_crash(
    factory: sessionmaker[Session],
) -> None:
    _put(factory, "warehouse", DSN, OTHER)
    rule_id = _sql_rule(factory, "warehouse")
    with factory() as session:
        dsns, faults = usable_datasources(session, {"warehouse": "sqlite://"}, CIPHER)
        [info] = list_datasources(session, {}, CIPHER)
    assert "warehouse" not in dsns, "no silent fallback to the settings DSN"
    expected = "cannot decrypt data source 'warehouse': was RULEWATCH_SECRET_KEY changed?"
    assert faults["warehouse"].startswith(expected)
    assert info.problem is not None and info.problem.startswith(expected)
    ctx = ProbeContext(datasources=dsns, datasource_faults=faults)
    result = verify_one(factory, Job(rule_id, str(uuid.uuid4())), ctx)
    assert result["status"] == "error"
    assert result["error"].startswith(expected)
