"""While the database is down: 503 naming it on every endpoint and page, one log line, and the
first requests after its return succeed. A real app on a real PostgreSQL, reached through a
relay the test cuts (nothing listens, open connections reset) and restores."""

from __future__ import annotations

import logging
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace

import pytest
from flask import Flask
from flask.testing import FlaskClient

from rulewatch import create_app
from rulewatch.config import Settings
from rulewatch.db import CONNECT_TIMEOUT_S
from tests.auth import PASSWORD, add_user, sign_in_test_clients
from tests.tcp_cut import CuttableRelay, relay
from tests.web.page_forms import csrf_token

PARAMETER = re.compile(r"<(?:[^:>]+:)?([^>]+)>")


@dataclass
class DownApp:
    app: Flask
    relay: CuttableRelay
    label: str  # how answers must name the database


@pytest.fixture
def down_app(settings: Settings) -> Iterator[DownApp]:
    """An app on PostgreSQL through a relay, its URL carrying a password never shown."""
    prefix, _, rest = settings.database_url.partition("@127.0.0.1:5432/")
    with relay(("127.0.0.1", 5432)) as cut:
        url = f"{prefix}:s3cret@127.0.0.1:{cut.port}/{rest}"
        app = create_app(replace(settings, database_url=url))
        app.config["TESTING"] = True
        sign_in_test_clients(app)
        yield DownApp(app, cut, f"postgresql 127.0.0.1:{cut.port}/{rest}")
        app.extensions["rulewatch"].engine.dispose()


def _signed_in(app: Flask) -> FlaskClient:
    add_user(app, "carol", "admin")
    client = app.test_client(token=None)
    token = csrf_token(client, "/login")
    answer = client.post("/login", data={"username": "carol", "password": PASSWORD,
                                         "csrf_token": token})  # fmt: skip
    assert answer.status_code == 302
    return client


def _routes(app: Flask, prefix: str) -> list[tuple[str, str]]:
    """(method, path) of every route under ``prefix``, path parameters set to 1."""
    found = []
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(prefix) and rule.endpoint != "static":
            path = PARAMETER.sub("1", rule.rule)
            found += [(m, path) for m in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return found


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_it_answers_503_naming_the_database_while_it_is_down(
    down_app: DownApp, caplog: pytest.LogCaptureFixture
) -> None:
    app, label = down_app.app, down_app.label
    browser, script = _signed_in(app), app.test_client()
    assert script.get("/api/v1/rules").status_code == 200
    down_app.relay.cut()
    caplog.set_level(logging.INFO)

    for method, path in _routes(app, "/api/"):
        answer = script.open(path, method=method, json={"username": "carol", "password": "x"})
        if path == "/api/v1/openapi.json":
            assert answer.status_code == 200  # needs no database
            continue
        assert answer.status_code == 503, (method, path, answer.get_data(as_text=True)[:300])
        error = answer.get_json()["error"]
        assert error["code"] == "database_unavailable", (method, path)
        assert label in error["message"] and "s3cret" not in error["message"]
        assert answer.headers["Retry-After"] == "5"
    session_answer = browser.get("/api/v1/rules")  # the session's user loader reads the database
    assert session_answer.status_code == 503
    assert session_answer.get_json()["error"]["code"] == "database_unavailable"

    for method, path in _routes(app, "/"):
        if path.startswith(("/api/", "/static", "/healthz", "/metrics")) or method != "GET":
            continue
        page = browser.get(path)
        if path == "/reports/stability":  # a redirect: no database
            assert page.status_code == 301
            continue
        text = page.get_data(as_text=True)
        assert page.status_code == 503, (path, text[:300])
        assert "Database unavailable" in text and label in text and "s3cret" not in text
        assert 'href="/static/app.css"' in text  # the site's styled page
    visitor = app.test_client(token=None)  # the login form needs no database; signing in does
    login = visitor.post("/login", data={"username": "carol", "password": PASSWORD,
                                         "csrf_token": csrf_token(visitor, "/login")})  # fmt: skip
    assert login.status_code == 503 and "Database unavailable" in login.get_data(as_text=True)

    health = script.get("/healthz")
    assert health.status_code == 503
    assert health.get_json()["database"] == "unavailable"
    assert label in health.get_json()["message"]
    metrics = script.get("/metrics")
    assert metrics.status_code == 503 and label in metrics.get_data(as_text=True)

    lines = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_its_first_requests_succeed_once_the_database_is_back(
    down_app: DownApp, caplog: pytest.LogCaptureFixture
) -> None:
    app = down_app.app
    browser, script = _signed_in(app), app.test_client()
    assert script.get("/api/v1/rules").status_code == 200  # the pool holds connections
    assert browser.get("/").status_code == 200
    down_app.relay.cut()
    assert script.get("/api/v1/rules").status_code == 503
    down_app.relay.restore()
    caplog.set_level(logging.INFO)

    assert script.get("/api/v1/rules").status_code == 200  # the stale connections were dropped
    assert browser.get("/").status_code == 200
    assert script.get("/healthz").get_json() == {"status": "ok", "database": "ok"}
    back = [r.getMessage() for r in caplog.records if "is back" in r.getMessage()]
    assert len(back) == 1 and down_app.label in back[0]


def test_a_database_that_never_answers_gets_a_503_within_the_connect_timeout(
    settings: Settings,
) -> None:
    with socket.socket() as silent:  # accepts connections (the backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/rulewatch"
        app = create_app(replace(settings, database_url=url))
        started = time.monotonic()
        answer = app.test_client().get("/healthz")
        waited_s = time.monotonic() - started
    assert answer.status_code == 503 and answer.get_json()["database"] == "unavailable"
    assert waited_s < CONNECT_TIMEOUT_S + 5  # not the system's TCP timeout (minutes)
