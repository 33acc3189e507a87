"""The data sources API (admin): stored encrypted, listed and answered without their DSN."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from flask import Flask
from sqlalchemy import text

from rulewatch import create_app
from rulewatch.config import Settings
from rulewatch.dsn_cipher import PREFIX
from tests.auth import sign_in_test_clients, token_for

PASSWORD = "Api-Canary-9c1e"
DSN = f"postgresql+psycopg://reader:{PASSWORD}@pg.internal:6543/warehouse"


def _put(app: Flask, name: str, body: Any) -> Any:
    return app.test_client().put(f"/api/v1/datasources/{name}", json=body)


def _stored(app: Flask) -> dict[str, str]:
    with app.extensions["rulewatch"].factory() as session:
        rows = session.execute(text("SELECT name, dsn FROM datasources")).all()
        return {name: dsn for name, dsn in rows}


def _sql_rule(app: Flask, datasource: str, name: str = "orders") -> int:
    rule = {"name": name, "kind": "sql", "interval_s": 60, "conditions": ["[VALUE] > 0"],
            "target": {"datasource": datasource, "query": "SELECT 1"}}  # fmt: skip
    response = app.test_client().post("/api/v1/rules", json=rule)
    assert response.status_code == 201, response.get_json()
    rule_id: int = response.get_json()["id"]
    return rule_id


def test_it_creates_replaces_lists_and_deletes_a_data_source(app: Flask) -> None:
    admin = app.test_client()
    created = _put(app, "warehouse", {"dsn": DSN})
    assert created.status_code == 200, created.get_json()
    body = created.get_json()
    assert body == {
        "name": "warehouse", "origin": "stored", "dialect": "postgresql", "driver": "psycopg",
        "host": "pg.internal", "port": 6543, "database": "warehouse",
        "created_at": body["created_at"], "usable": True, "problem": None, "created": True,
    }  # fmt: skip
    replaced = _put(app, "warehouse", {"dsn": "mysql+pymysql://app@my.internal/shop"})
    assert replaced.status_code == 200
    assert (replaced.get_json()["created"], replaced.get_json()["host"]) == (False, "my.internal")
    assert replaced.get_json()["created_at"] == body["created_at"]
    listed = admin.get("/api/v1/datasources").get_json()["datasources"]
    assert [(d["name"], d["dialect"], d["driver"]) for d in listed] == [
        ("warehouse", "mysql", "pymysql")
    ]
    assert admin.get("/api/v1/datasources/warehouse").get_json()["host"] == "my.internal"
    assert admin.delete("/api/v1/datasources/warehouse").status_code == 204
    assert admin.get("/api/v1/datasources").get_json() == {"datasources": []}
    assert admin.get("/api/v1/datasources/warehouse").status_code == 404
    assert admin.delete("/api/v1/datasources/warehouse").status_code == 404


def test_it_keeps_the_dsn_encrypted_and_out_of_every_answer(app: Flask) -> None:
    admin = app.test_client()
    answers = [_put(app, "warehouse", {"dsn": DSN}), admin.get("/api/v1/datasources"),
               admin.get("/api/v1/datasources/warehouse")]  # fmt: skip
    for response in answers:
        assert response.status_code == 200
        assert PASSWORD not in response.get_data(as_text=True)
        assert "reader" not in response.get_data(as_text=True)
    stored = _stored(app)["warehouse"]
    assert stored.startswith(PREFIX)
    assert PASSWORD not in stored and "pg.internal" not in stored


def test_it_refuses_bad_input_naming_the_field_without_echoing_the_dsn(app: Flask) -> None:
    cases = [
        ("Warehouse", {"dsn": DSN}, ["name"]),
        ("warehouse", {"dsn": f"mysql://root:{PASSWORD}@pg.internal/x"}, ["dsn"]),
        ("warehouse", {"dsn": f"reader:{PASSWORD}@pg.internal"}, ["dsn"]),
        ("warehouse", {}, ["dsn"]),
        ("Bad name", {"dsn": 5}, ["name", "dsn"]),
        ("warehouse", {"dsn": DSN, "password": PASSWORD}, ["password"]),
    ]
    for name, body, fields in cases:
        response = _put(app, name, body)
        assert response.status_code == 422, (name, body)
        error = response.get_json()["error"]
        assert error["code"] == "invalid_data_source"
        assert [e["field"] for e in error["errors"]] == fields
        assert PASSWORD not in response.get_data(as_text=True)
    assert app.test_client().put("/api/v1/datasources/x", data="[").status_code == 400
    assert _stored(app) == {}


def test_it_refuses_to_delete_a_data_source_in_use_naming_the_rules(app: Flask) -> None:
    _put(app, "warehouse", {"dsn": DSN})
    rule_id = _sql_rule(app, "warehouse")
    refused = app.test_client().delete("/api/v1/datasources/warehouse")
    assert refused.status_code == 409
    error = refused.get_json()["error"]
    assert error["code"] == "datasource_in_use"
    assert error["errors"] == [
        {"field": "name", "message": f"used by rule 'orders' (id {rule_id})"}
    ]
    assert "warehouse" in _stored(app)
    assert app.test_client().delete(f"/api/v1/rules/{rule_id}").status_code == 204
    assert app.test_client().delete("/api/v1/datasources/warehouse").status_code == 204


def test_it_lists_data_sources_from_settings_and_will_not_delete_them(
    settings: Settings,
) -> None:
    configured = {"legacy": f"postgresql+psycopg://app:{PASSWORD}@legacy.internal/app"}
    app = create_app(replace(settings, datasources=configured))
    sign_in_test_clients(app)
    listed = app.test_client().get("/api/v1/datasources")
    [legacy] = listed.get_json()["datasources"]
    assert (legacy["origin"], legacy["host"], legacy["created_at"]) == (
        "settings", "legacy.internal", None,
    )  # fmt: skip
    assert PASSWORD not in listed.get_data(as_text=True)
    refused = app.test_client().delete("/api/v1/datasources/legacy")
    assert refused.status_code == 409
    assert refused.get_json()["error"]["code"] == "datasource_in_settings"


def test_it_checks_a_data_source_without_showing_its_dsn(app: Flask, tmp_path: Any) -> None:
    _put(app, "local", {"dsn": "sqlite://"})
    _put(app, "down", {"dsn": f"postgresql+psycopg://reader:{PASSWORD}@127.0.0.1:1/x"})
    admin = app.test_client()
    ok = admin.post("/api/v1/datasources/local/check").get_json()
    assert (ok["name"], ok["ok"], ok["error"]) == ("local", True, None)
    down = admin.post("/api/v1/datasources/down/check")
    assert down.status_code == 200
    assert down.get_json()["ok"] is False
    assert "cannot connect to the data source" in down.get_json()["error"]
    assert PASSWORD not in down.get_data(as_text=True)
    assert admin.post("/api/v1/datasources/nowhere/check").status_code == 404


def test_a_new_secret_key_makes_stored_data_sources_unusable_not_fatal(
    app: Flask, settings: Settings
) -> None:
    _put(app, "warehouse", {"dsn": DSN})
    rekeyed = create_app(replace(settings, secret_key="n" * 40))
    sign_in_test_clients(rekeyed)
    [info] = rekeyed.test_client().get("/api/v1/datasources").get_json()["datasources"]
    assert info["usable"] is False
    assert info["problem"].startswith(
        "cannot decrypt data source 'warehouse': was RULEWATCH_SECRET_KEY changed?"
    )
    assert info["host"] is None
    old_key = app.config["SECRET_KEY"]
    rotated = create_app(replace(settings, secret_key="n" * 40, secret_key_previous=old_key))
    sign_in_test_clients(rotated)
    [info] = rotated.test_client().get("/api/v1/datasources").get_json()["datasources"]
    assert (info["usable"], info["host"]) == (True, "pg.internal")


def test_only_admins_manage_data_sources(app: Flask) -> None:
    editor = app.test_client(token=token_for(app, "eddie", "editor"))
    assert editor.get("/api/v1/datasources").status_code == 403
    assert editor.put("/api/v1/datasources/x", json={"dsn": DSN}).status_code == 403
    assert _stored(app) == {}
