"""A data source's DSN and password never reach an API answer, a log line or a plain database row.

Data sources with a recognisable password are stored through the API and the CLI; sql rules
that pass, fail, cannot reach their host and fail their query are verified (as tasks, run
eagerly, their results kept); every GET route is read and every log record kept at DEBUG.
"""

from __future__ import annotations

import itertools
import logging
import re
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from rulewatch.cli import main
from rulewatch.config import Settings
from rulewatch.dsn_cipher import PREFIX
from rulewatch.probes.sql_sessions import dispose_engines
from tests.conftest import drop_database, fresh_database

PASSWORD = "Leak-Canary-5e7b1d"
LOGGERS = ("rulewatch", "sqlalchemy", "celery", "psycopg", "pymysql", "werkzeug", "flask")


@pytest.fixture
def warehouse(pg_server: str) -> Iterator[str]:
    """A PostgreSQL database with three orders; its URL (trust auth takes any password)."""
    url, name = fresh_database(pg_server)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE orders (id serial PRIMARY KEY, amount int NOT NULL)"))
        conn.execute(text("INSERT INTO orders (amount) VALUES (1), (2), (3)"))
    engine.dispose()
    yield url
    dispose_engines()
    drop_database(pg_server, name)


def _dsn(url: str, **changes: Any) -> str:
    return str(make_url(url).set(password=PASSWORD, **changes).render_as_string(False))


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class Seen:
    """Everything a person or a log collector could read, kept to be searched."""

    def __init__(self) -> None:
        self.texts: list[tuple[str, str]] = []

    def add(self, where: str, response: Any) -> Any:
        headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
        self.texts.append((where, f"{headers}\n{response.get_data(as_text=True)}"))
        return response


def _cli(settings: Settings, seen: Seen, *args: str, input: str | None = None) -> str:
    env = {"RULEWATCH_HOME": str(settings.home), "RULEWATCH_DATABASE_URL": settings.database_url,
           "RULEWATCH_BROKER_URL": "memory://", "RULEWATCH_RESULT_BACKEND": "cache+memory://",
           "RULEWATCH_DATASOURCES": None}  # fmt: skip
    result = CliRunner().invoke(main, list(args), input, env, catch_exceptions=False)
    seen.texts.append((f"rulewatch {' '.join(args)}", result.output))
    return result.output


def _current(app: Flask) -> None:
    """Make ``app``'s Celery app current again: each CLI command made its own the current one."""
    app.extensions["celery"].set_current()
    app.extensions["celery"].set_default()


def _rule(app: Flask, seen: Seen, name: str, source: str, query: str, condition: str) -> int:
    rule = {"name": name, "kind": "sql", "interval_s": 60, "conditions": [condition],
            "target": {"datasource": source, "query": query, "timeout_s": 5}}  # fmt: skip
    response = seen.add(f"POST rule {name}", app.test_client().post("/api/v1/rules", json=rule))
    assert response.status_code == 201, response.get_json()
    rule_id: int = response.get_json()["id"]
    return rule_id


def _every_get(app: Flask, values: dict[str, list[str]]) -> Iterator[str]:
    """Each GET URL of ``app``, once per combination of the values its parameters take."""
    for rule in app.url_map.iter_rules():
        if "GET" not in (rule.methods or ()) or rule.endpoint == "static":
            continue
        names = sorted(rule.arguments)
        for combo in itertools.product(*(values.get(n, ["1"]) for n in names)):
            given = dict(zip(names, combo, strict=True))
            yield re.sub(r"<(?:\w+:)?(\w+)>", lambda m, given=given: given[m[1]], rule.rule)


def test_no_dsn_or_password_reaches_an_answer_a_log_line_or_a_plain_row(
    app: Flask, settings: Settings, warehouse: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    seen, admin = Seen(), app.test_client()
    sources = {"warehouse": _dsn(warehouse), "from-cli": _dsn(warehouse),
               "unreachable": _dsn(warehouse, host="127.0.0.1", port=_closed_port())}  # fmt: skip
    _cli(settings, seen, "datasources", "add", "from-cli", input=sources["from-cli"] + "\n")
    _current(app)
    for name in ("warehouse", "unreachable"):
        response = admin.put(f"/api/v1/datasources/{name}", json={"dsn": sources[name]})
        assert seen.add(f"PUT {name}", response).status_code == 200
    count = "SELECT count(*) FROM orders"
    rules = {
        "pass": _rule(app, seen, "orders", "warehouse", count, "[VALUE] > 2"),
        "fail": _rule(app, seen, "many orders", "from-cli", count, "[VALUE] > 100"),
        "down": _rule(app, seen, "orders elsewhere", "unreachable", count, "[VALUE] > 0"),
        "error": _rule(app, seen, "bad query", "warehouse", "SELECT x FROM nowhere", "[ROWS] > 0"),
    }
    celery = app.extensions["celery"]
    celery.conf.update(task_always_eager=True, task_store_eager_result=True)
    task_ids = []
    for expected, rule_id in rules.items():
        queued = seen.add("verify", admin.post(f"/api/v1/rules/{rule_id}/verify"))
        task_ids.append(queued.get_json()["task_id"])
        result = seen.add("task", admin.get(f"/api/v1/tasks/{task_ids[-1]}")).get_json()
        assert result["state"] == "SUCCESS", result
        want = "fail" if expected == "down" else expected
        assert result["result"]["status"] == want, result["result"]
    for name in sources:
        seen.add(f"check {name}", admin.post(f"/api/v1/datasources/{name}/check"))
    report = seen.add("report", admin.post("/api/v1/reports", json={"window": "24h"}))
    task_ids.append(report.get_json()["task_id"])
    celery.conf.update(task_always_eager=False)
    _cli(settings, seen, "datasources", "list")
    _cli(settings, seen, "datasources", "check", "unreachable")
    _cli(settings, seen, "verify", "orders elsewhere")
    _current(app)
    values = {"rule_id": [str(i) for i in rules.values()], "task_id": task_ids,
              "name": list(sources), "window_id": ["1"]}  # fmt: skip
    urls = list(_every_get(app, values))
    assert len(urls) >= 20
    for url in urls:
        seen.add(f"GET {url}", admin.get(url))
    assert "[VALUE] (3) > 2" in str(seen.texts), "the pass rule's answer was read"
    assert "cannot connect to the data source" in str(seen.texts)
    records = [(f"log {r.name}", f"{r.getMessage()} {r.exc_text or ''} {r.args!r}")
               for r in caplog.records]  # fmt: skip
    assert any(name.startswith("log sqlalchemy.engine") for name, _ in records)
    secrets = [PASSWORD, *sources.values()]
    for where, seen_text in [*seen.texts, *records, ("caplog", caplog.text)]:
        for secret in secrets:
            assert secret not in seen_text, f"{where} shows {secret!r}"
    with app.extensions["rulewatch"].factory() as session:
        rows = session.execute(text("SELECT name, dsn FROM datasources")).all()
    stored = {name: dsn for name, dsn in rows}
    assert sorted(stored) == sorted(sources)
    host = make_url(warehouse).host or ""
    for dsn in stored.values():
        assert dsn.startswith(PREFIX)
        assert PASSWORD not in dsn and host not in dsn and "postgresql" not in dsn
