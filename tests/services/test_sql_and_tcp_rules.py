"""sql and tcp rules verified end to end: a real PostgreSQL data source and real ports."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from rulewatch.db import transaction
from rulewatch.models import utcnow
from rulewatch.probes import ProbeContext
from rulewatch.probes.sql_sessions import dispose_engines
from rulewatch.services.rules import create_rule
from rulewatch.services.stability import stability_report
from rulewatch.services.verification import Job, verify_jobs, verify_one
from tests.conftest import drop_database, fresh_database
from tests.targets import closed_port

NO_SOURCES = ProbeContext(datasources={})


@dataclass
class Warehouse:
    """A scratch PostgreSQL database with an ``orders`` table the test fills."""

    dsn: str
    engine: Engine

    @property
    def ctx(self) -> ProbeContext:
        """A probe context that knows this database as the ``warehouse`` data source."""
        return ProbeContext(datasources={"warehouse": self.dsn})

    def set_orders(self, count: int) -> None:
        """Replace the orders with ``count`` rows."""
        with self.engine.begin() as conn:
            conn.execute(text("DELETE FROM orders"))
            if count:
                rows = [{"amount": 10} for _ in range(count)]
                conn.execute(text("INSERT INTO orders (amount) VALUES (:amount)"), rows)


@pytest.fixture
def warehouse(pg_server: str) -> Iterator[Warehouse]:
    """An empty ``orders`` table in its own PostgreSQL database, dropped afterwards."""
    url, name = fresh_database(pg_server)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE orders (id serial PRIMARY KEY, amount numeric NOT NULL)"))
    yield Warehouse(url, engine)
    engine.dispose()
    dispose_engines()  # the probe's cached pool would otherwise keep the database open
    drop_database(pg_server, name)


def sql_rule(conditions: list[str], datasource: str = "warehouse") -> dict[str, Any]:
    """A valid sql rule counting the orders of ``datasource``."""
    return {
        "name": "order count",
        "kind": "sql",
        "target": {"datasource": datasource, "query": "SELECT count(*) FROM orders"},
        "conditions": conditions,
        "interval_s": 60,
    }


def tcp_rule(port: int, conditions: list[str]) -> dict[str, Any]:
    """A valid tcp rule against 127.0.0.1:``port``."""
    target = {"host": "127.0.0.1", "port": port, "timeout_s": 2}
    return {"name": "port", "kind": "tcp", "target": target, "conditions": conditions,
            "interval_s": 60}  # fmt: skip


def _rule(factory: sessionmaker[Session], data: dict[str, Any]) -> int:
    with transaction(factory) as session:
        return create_rule(session, data, utcnow()).id


def _verify(factory: sessionmaker[Session], rule_id: int, ctx: ProbeContext) -> dict[str, Any]:
    return verify_one(factory, Job(rule_id, str(uuid.uuid4())), ctx)


def _resolved(result: dict[str, Any]) -> list[str]:
    return [c["resolved"] for c in result["conditions"]]


# sql rules


def test_it_passes_a_sql_rule_whose_value_meets_the_condition(
    factory: sessionmaker[Session], warehouse: Warehouse
) -> None:
    warehouse.set_orders(3)
    rule_id = _rule(factory, sql_rule(["[VALUE] > 2"]))
    result = _verify(factory, rule_id, warehouse.ctx)
    assert result["status"] == "pass"
    assert _resolved(result) == ["[VALUE] (3) > 2"]
    assert result["measured"]["value"] == 3


def test_it_fails_a_sql_rule_once_the_rows_are_deleted(
    factory: sessionmaker[Session], warehouse: Warehouse
) -> None:
    warehouse.set_orders(3)
    rule_id = _rule(factory, sql_rule(["[VALUE] > 2"]))
    before = _verify(factory, rule_id, warehouse.ctx)
    warehouse.set_orders(0)
    after = _verify(factory, rule_id, warehouse.ctx)
    assert (before["status"], after["status"]) == ("pass", "fail")
    assert _resolved(after) == ["[VALUE] (0) > 2"]
    assert after["error"] == "condition not met: [VALUE] (0) > 2"


def test_it_does_not_fail_a_first_verification_for_want_of_a_previous_value(
    factory: sessionmaker[Session], warehouse: Warehouse
) -> None:
    warehouse.set_orders(10)
    rule_id = _rule(factory, sql_rule(["[VALUE] >= [PREVIOUS_VALUE]", "[VALUE] > 0"]))
    result = _verify(factory, rule_id, warehouse.ctx)
    assert result["status"] == "pass", "nothing to compare with yet: not a failure"
    assert result["conditions"][0]["reason"] == (
        "not judged: [PREVIOUS_VALUE] unavailable: no previous value yet"
    )
    warehouse.set_orders(0)
    other = {**sql_rule(["[VALUE] >= [PREVIOUS_VALUE]", "[VALUE] > 0"]), "name": "other"}
    first_fail = _verify(factory, _rule(factory, other), warehouse.ctx)
    assert first_fail["status"] == "fail", "the other conditions are still judged"


def test_it_compares_the_value_with_the_one_the_last_verification_measured(
    factory: sessionmaker[Session], warehouse: Warehouse
) -> None:
    rule_id = _rule(factory, sql_rule(["[VALUE] >= [PREVIOUS_VALUE]"]))
    for count in (10, 12, 4):
        warehouse.set_orders(count)
        result = _verify(factory, rule_id, warehouse.ctx)
    assert result["status"] == "fail"
    assert _resolved(result) == ["[VALUE] (4) >= [PREVIOUS_VALUE] (12)"]


def test_it_fails_change_percent_when_the_value_jumps_from_its_recent_average(
    factory: sessionmaker[Session], warehouse: Warehouse
) -> None:
    rule_id = _rule(factory, sql_rule(["[CHANGE_PERCENT] < 50"]))
    results = []
    for count in (10, 10, 30):
        warehouse.set_orders(count)
        results.append(_verify(factory, rule_id, warehouse.ctx))
    assert [r["status"] for r in results] == ["pass", "pass", "fail"], (
        "the first run has no average to compare with"
    )
    assert _resolved(results[1]) == ["[CHANGE_PERCENT] (0) < 50"]
    assert _resolved(results[2]) == ["[CHANGE_PERCENT] (200) < 50"]


def test_it_records_a_sql_rule_on_an_unknown_data_source_as_an_error(
    factory: sessionmaker[Session],
) -> None:
    rule_id = _rule(factory, sql_rule(["[VALUE] > 2"], datasource="nowhere"))
    result = _verify(factory, rule_id, NO_SOURCES)
    assert result["status"] == "error"
    assert result["error"] == "unknown data source 'nowhere'"


def test_it_counts_errors_in_the_report_but_gives_no_rate_from_them(
    factory: sessionmaker[Session],
) -> None:
    rule_id = _rule(factory, sql_rule(["[VALUE] > 2"], datasource="nowhere"))
    verify_jobs(factory, [Job(rule_id, str(uuid.uuid4())) for _ in range(2)], NO_SOURCES)
    with factory() as session:
        report = stability_report(session, "24h", utcnow())
    [rule] = report.rules
    assert (rule.counts.passed, rule.counts.failed, rule.counts.errors) == (0, 0, 2)
    assert rule.rate is None
    assert report.overall.rate is None


def test_it_leaves_errors_out_of_the_stability_rate(
    factory: sessionmaker[Session], warehouse: Warehouse
) -> None:
    warehouse.set_orders(3)
    rule_id = _rule(factory, sql_rule(["[VALUE] > 2"]))
    _verify(factory, rule_id, warehouse.ctx)
    _verify(factory, rule_id, NO_SOURCES)  # the data source is gone: an error, not a fail
    with factory() as session:
        [rule] = stability_report(session, "24h", utcnow()).rules
    assert (rule.counts.passed, rule.counts.failed, rule.counts.errors) == (1, 0, 1)
    assert rule.rate == 1.0


# tcp rules


def test_it_passes_a_tcp_rule_when_the_port_accepts_connections(
    factory: sessionmaker[Session], pg_server: str
) -> None:
    rule_id = _rule(factory, tcp_rule(5432, ["[CONNECTED] == true"]))
    result = _verify(factory, rule_id, NO_SOURCES)
    assert result["status"] == "pass"
    assert _resolved(result) == ["[CONNECTED] (true) == true"]


def test_it_fails_a_tcp_rule_when_the_port_is_closed(factory: sessionmaker[Session]) -> None:
    port = closed_port()
    rule_id = _rule(factory, tcp_rule(port, ["[CONNECTED] == true"]))
    result = _verify(factory, rule_id, NO_SOURCES)
    assert result["status"] == "fail"
    assert _resolved(result) == ["[CONNECTED] (false) == true"]
    assert result["error"] == f"connection refused to 127.0.0.1:{port}"


def test_it_passes_connected_false_when_the_port_is_closed(
    factory: sessionmaker[Session],
) -> None:
    rule_id = _rule(factory, tcp_rule(closed_port(), ["[CONNECTED] == false"]))
    result = _verify(factory, rule_id, NO_SOURCES)
    assert result["status"] == "pass"
    assert _resolved(result) == ["[CONNECTED] (false) == false"]
    assert result["error"] is None, "a passing verification carries no error"
