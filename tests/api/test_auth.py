"""Access to /api/v1: who may call what, signed in by a session or a bearer token."""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from argon2 import PasswordHasher
from flask import Flask
from sqlalchemy import select, update

from rulewatch import create_app
from rulewatch.config import Settings
from rulewatch.db import transaction
from rulewatch.domain.access import ROLES, may
from rulewatch.models import ApiToken, User, utcnow
from rulewatch.services.users import HASHER
from rulewatch.web.auth import PUBLIC, required_role
from tests.auth import PASSWORD, add_user, token_for
from tests.targets import http_rule

NOWHERE = 999999  # an id no row has
PUBLIC_ENDPOINTS = {"api.post_session", "api.get_openapi"}  # sign-in, the OpenAPI document
# one request per endpoint, with a body that gets past the role check: (method, path, body, role)
ENDPOINTS: list[tuple[str, str, Any, str]] = [
    ("GET", "/api/v1/rules", None, "viewer"),
    ("GET", f"/api/v1/rules/{NOWHERE}", None, "viewer"),
    ("GET", f"/api/v1/rules/{NOWHERE}/verifications", None, "viewer"),
    ("GET", f"/api/v1/rules/{NOWHERE}/gaps", None, "viewer"),
    ("GET", "/api/v1/stability", None, "viewer"),
    ("GET", "/api/v1/notifications", None, "viewer"),
    ("GET", "/api/v1/incidents", None, "viewer"),
    ("GET", "/api/v1/maintenance", None, "viewer"),
    ("GET", f"/api/v1/maintenance/{NOWHERE}", None, "viewer"),
    ("GET", "/api/v1/tasks/00000000-0000-4000-8000-000000000000", None, "viewer"),
    ("GET", "/api/v1/me", None, "viewer"),
    ("DELETE", "/api/v1/session", None, "viewer"),
    ("POST", "/api/v1/reports", {}, "viewer"),
    ("GET", "/api/v1/reports/00000000-0000-4000-8000-000000000000", None, "viewer"),
    ("POST", "/api/v1/rules", {}, "editor"),
    ("POST", "/api/v1/rules/import", {"rules": []}, "editor"),
    ("PATCH", f"/api/v1/rules/{NOWHERE}", {}, "editor"),
    ("DELETE", f"/api/v1/rules/{NOWHERE}", None, "editor"),
    ("POST", f"/api/v1/rules/{NOWHERE}/verify", {}, "editor"),
    ("POST", "/api/v1/verify-all", None, "editor"),
    ("POST", "/api/v1/conditions/check", {"kind": "http", "conditions": []}, "editor"),
    ("POST", "/api/v1/rules/try", {}, "editor"),
    ("POST", "/api/v1/maintenance", {}, "editor"),
    ("PATCH", f"/api/v1/maintenance/{NOWHERE}", {}, "editor"),
    ("DELETE", f"/api/v1/maintenance/{NOWHERE}", None, "editor"),
    ("GET", "/api/v1/users", None, "admin"),
    ("POST", "/api/v1/users", {}, "admin"),
    ("PATCH", f"/api/v1/users/{NOWHERE}", {}, "admin"),
    ("DELETE", f"/api/v1/users/{NOWHERE}", None, "admin"),
    ("GET", "/api/v1/tokens", None, "admin"),
    ("POST", "/api/v1/tokens", {"label": "matrix"}, "admin"),
    ("DELETE", f"/api/v1/tokens/{NOWHERE}", None, "admin"),
    ("GET", "/api/v1/datasources", None, "admin"),
    ("PUT", f"/api/v1/datasources/{NOWHERE}", {"dsn": "sqlite://"}, "admin"),
    ("GET", f"/api/v1/datasources/{NOWHERE}", None, "admin"),
    ("POST", f"/api/v1/datasources/{NOWHERE}/check", None, "admin"),
    ("DELETE", f"/api/v1/datasources/{NOWHERE}", None, "admin"),
]


def _api_routes(app: Flask) -> list[tuple[str, str, str]]:
    """(method, path with sample ids, endpoint) for every /api/v1 route of ``app``."""
    routes = []
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1"):
            path = re.sub(r"<(?:int:)?(\w+)>", "1", rule.rule)
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                routes.append((method, path, rule.endpoint))
    return routes


def _sample(path: str) -> str:
    return re.sub(r"/(?:[0-9]+|[0-9a-f-]{36})(?=/|$)", "/1", path)


def _sign_in(client: Any, name: str, password: str = PASSWORD) -> Any:
    return client.post("/api/v1/session", json={"username": name, "password": password})


def _token_row(app: Flask, token_id: int) -> ApiToken:
    with app.extensions["rulewatch"].factory() as session:
        row: ApiToken = session.get(ApiToken, token_id)
        return row


# authentication


def test_it_refuses_every_api_endpoint_without_credentials(app: Flask) -> None:
    anonymous = app.test_client(token=None)
    routes = _api_routes(app)
    assert len(routes) >= len(ENDPOINTS) + 1
    for method, path, endpoint in routes:
        response = anonymous.open(path, method=method, json={})
        if endpoint == "api.post_session":
            assert response.status_code == 400, response.get_json()  # open, but asks for both
            continue
        if endpoint == "api.get_openapi":
            assert response.status_code == 200  # the OpenAPI document is public
            continue
        assert response.status_code == 401, (method, path)
        error = response.get_json()["error"]
        assert error["code"] == "unauthenticated"
        assert "Authorization: Bearer" in error["message"]
        assert error["errors"] == [{"field": "Authorization", "message": "missing"}]
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="rulewatch"'


def test_every_api_endpoint_declares_the_role_it_needs(app: Flask) -> None:
    for method, path, endpoint in _api_routes(app):
        needed = required_role(app.view_functions[endpoint])
        assert needed in (*ROLES, PUBLIC), f"{method} {path} ({endpoint}) declares no role"
        assert (needed == PUBLIC) == (endpoint in PUBLIC_ENDPOINTS), endpoint
    declared = {(m, _sample(p)) for m, p, _, _ in ENDPOINTS}
    routed = {(m, _sample(p)) for m, p, _ in _api_routes(app)}
    public = {("POST", "/api/v1/session"), ("GET", "/api/v1/openapi.json")}
    assert routed - declared == public, "ENDPOINTS misses a route"


def test_it_refuses_an_api_endpoint_that_declares_no_role_even_to_an_admin(app: Flask) -> None:
    app.add_url_rule("/api/v1/undeclared", "api.undeclared", lambda: "reached")
    response = app.test_client().get("/api/v1/undeclared")
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "forbidden"
    assert app.test_client(token=None).get("/api/v1/undeclared").status_code == 401


@pytest.mark.parametrize(
    "header",
    ["Basic YWRtaW46YWRtaW4=", "Bearer", "Bearer ", "Bearer rw_" + "x" * 10000, "Bearer rw_é",
     "bearer rw_unknown", "Token abc"],
)  # fmt: skip
def test_it_answers_a_bad_authorization_header_with_401(app: Flask, header: str) -> None:
    response = app.test_client(token=None).get("/api/v1/rules", headers={"Authorization": header})
    assert response.status_code == 401
    error = response.get_json()["error"]
    assert error["code"] == "unauthenticated"
    assert error["errors"][0]["field"] == "Authorization"
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")


def test_it_leaves_the_health_check_open(app: Flask) -> None:
    response = app.test_client(token=None).get("/healthz")
    assert response.status_code == 200
    assert response.get_json()["status"] == "ok"


# roles


@pytest.mark.parametrize("role", ROLES)
def test_each_role_is_allowed_and_refused_what_it_should_be_on_every_endpoint(
    app: Flask, role: str
) -> None:
    client = app.test_client(token=token_for(app, f"a-{role}", role))
    for method, path, body, needed in ENDPOINTS:
        response = client.open(path, method=method, json=body)
        if may(role, needed):
            assert response.status_code not in (401, 403, 500), (method, path, response.data)
            continue
        assert response.status_code == 403, (method, path)
        error = response.get_json()["error"]
        assert (error["code"], error["required_role"], error["role"]) == (
            "forbidden", needed, role,
        )  # fmt: skip
        assert f"needs the {needed} role" in error["message"]


def test_a_viewer_reads_rules_and_reports_but_changes_nothing(app: Flask) -> None:
    created = app.test_client().post("/api/v1/rules", json=http_rule("http://127.0.0.1:9/"))
    rule_id = created.get_json()["id"]
    viewer = app.test_client(token=token_for(app, "vera", "viewer"))
    assert viewer.get(f"/api/v1/rules/{rule_id}").status_code == 200
    assert viewer.get("/api/v1/stability?window=24h").status_code == 200
    assert viewer.get(f"/api/v1/rules/{rule_id}/verifications").status_code == 200
    assert viewer.patch(f"/api/v1/rules/{rule_id}", json={"enabled": False}).status_code == 403
    assert viewer.post(f"/api/v1/rules/{rule_id}/verify").status_code == 403
    assert viewer.delete(f"/api/v1/rules/{rule_id}").status_code == 403
    assert viewer.get("/api/v1/tokens").status_code == 403
    assert viewer.get(f"/api/v1/rules/{rule_id}").get_json()["enabled"] is True


def test_an_editor_changes_rules_and_maintenance_and_verifies_but_manages_no_one(
    app: Flask,
) -> None:
    editor = app.test_client(token=token_for(app, "eddie", "editor"))
    created = editor.post("/api/v1/rules", json=http_rule("http://127.0.0.1:9/"))
    assert created.status_code == 201
    rule_id = created.get_json()["id"]
    assert editor.patch(f"/api/v1/rules/{rule_id}", json={"tags": ["x"]}).status_code == 200
    assert editor.post(f"/api/v1/rules/{rule_id}/verify").status_code == 202
    assert editor.post("/api/v1/verify-all").status_code == 202
    window = {"name": "upgrade", "starts_at": utcnow().isoformat(), "duration_s": 600}
    assert editor.post("/api/v1/maintenance", json=window).status_code == 201
    assert editor.delete(f"/api/v1/rules/{rule_id}").status_code == 204
    assert editor.get("/api/v1/users").status_code == 403
    assert editor.post("/api/v1/tokens", json={}).status_code == 403
    assert editor.post("/api/v1/users", json={"name": "x", "role": "admin"}).status_code == 403


def test_a_role_change_applies_to_the_next_request(app: Flask) -> None:
    user_id = add_user(app, "rita", "editor")
    rita = app.test_client(token=token_for(app, "rita"))
    assert rita.post("/api/v1/rules", json=http_rule("http://127.0.0.1:9/a")).status_code == 201
    demoted = app.test_client().patch(f"/api/v1/users/{user_id}", json={"role": "viewer"})
    assert demoted.status_code == 200 and demoted.get_json()["role"] == "viewer"
    refused = rita.post("/api/v1/rules", json=http_rule("http://127.0.0.1:9/b", name="b"))
    assert refused.status_code == 403
    assert refused.get_json()["error"]["role"] == "viewer"


# users


def test_an_admin_creates_lists_changes_and_deletes_users(app: Flask) -> None:
    admin = app.test_client()
    created = admin.post("/api/v1/users", json={"name": "Alice", "role": "editor",
                                                "password": "a long passphrase"})  # fmt: skip
    assert created.status_code == 201, created.get_json()
    alice = created.get_json()
    assert (alice["name"], alice["role"], alice["last_login_at"]) == ("alice", "editor", None)
    assert "password" not in alice and "password_hash" not in alice
    assert _sign_in(app.test_client(token=None), "ALICE", "a long passphrase").status_code == 200
    names = [u["name"] for u in admin.get("/api/v1/users").get_json()["users"]]
    assert "alice" in names
    listed = next(
        u for u in admin.get("/api/v1/users").get_json()["users"] if u["id"] == alice["id"]
    )
    assert listed["last_login_at"] is not None
    assert "password_hash" not in admin.get("/api/v1/users").get_data(as_text=True)
    changed = admin.patch(f"/api/v1/users/{alice['id']}", json={"role": "admin"})
    assert changed.status_code == 200 and changed.get_json()["role"] == "admin"
    token = token_for(app, "alice")
    assert admin.delete(f"/api/v1/users/{alice['id']}").status_code == 204
    assert app.test_client(token=token).get("/api/v1/me").status_code == 401
    assert admin.patch(f"/api/v1/users/{alice['id']}", json={}).status_code == 404


def test_it_generates_a_password_when_none_is_given_and_returns_it_once(app: Flask) -> None:
    created = app.test_client().post("/api/v1/users", json={"name": "bob", "role": "viewer"})
    assert created.status_code == 201
    password = created.get_json()["password"]
    assert len(password) >= 20
    assert _sign_in(app.test_client(token=None), "bob", password).status_code == 200
    assert password not in app.test_client().get("/api/v1/users").get_data(as_text=True)


def test_it_stores_passwords_as_argon2id_hashes(app: Flask) -> None:
    body = {"name": "carol", "role": "viewer", "password": "another long passphrase"}
    assert app.test_client().post("/api/v1/users", json=body).status_code == 201
    with app.extensions["rulewatch"].factory() as session:
        stored = session.scalar(select(User.password_hash).where(User.name == "carol"))
    assert stored is not None and stored.startswith("$argon2id$")
    assert "another long passphrase" not in stored


def test_it_rejects_bad_users_naming_each_field(app: Flask) -> None:
    admin = app.test_client()
    body = {"name": "bad name!", "role": "boss", "password": "short"}
    response = admin.post("/api/v1/users", json=body)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "invalid_user"
    assert [e["field"] for e in error["errors"]] == ["name", "role", "password"]
    assert "at least 12 characters" in error["errors"][2]["message"]
    good = {"name": "dave", "role": "viewer", "password": "x" * 12}
    assert admin.post("/api/v1/users", json=good).status_code == 201
    taken = admin.post("/api/v1/users", json={**good, "name": "DAVE"})
    assert taken.status_code == 422
    assert taken.get_json()["error"]["errors"][0]["field"] == "name"
    assert admin.post("/api/v1/users", json={**good, "name": "e", "x": 1}).status_code == 422
    assert admin.post("/api/v1/users", data="[").status_code == 400
    user_id = admin.get("/api/v1/users").get_json()["users"][0]["id"]
    wrong = admin.patch(f"/api/v1/users/{user_id}", json={"role": 7, "password": None})
    assert [e["field"] for e in wrong.get_json()["error"]["errors"]] == ["role", "password"]


def test_it_keeps_the_last_admin(app: Flask) -> None:
    admin = app.test_client()
    me = admin.get("/api/v1/me").get_json()
    demoted = admin.patch(f"/api/v1/users/{me['id']}", json={"role": "editor"})
    assert demoted.status_code == 409
    assert demoted.get_json()["error"]["code"] == "last_admin"
    assert admin.delete(f"/api/v1/users/{me['id']}").status_code == 409
    add_user(app, "second-admin", "admin")
    assert admin.patch(f"/api/v1/users/{me['id']}", json={"role": "editor"}).status_code == 200


# tokens


def test_it_shows_a_token_once_and_stores_only_its_hash(app: Flask) -> None:
    admin = app.test_client()
    add_user(app, "ci", "editor")
    created = admin.post("/api/v1/tokens", json={"user": "ci", "label": "deploys"})
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    token = body["token"]
    assert token.startswith("rw_") and len(token) >= 40
    assert (body["user"], body["label"], body["prefix"]) == ("ci", "deploys", token[:10])
    row = _token_row(app, body["id"])
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in (row.token_hash, row.prefix, row.label)
    listing = admin.get("/api/v1/tokens").get_data(as_text=True)
    assert token not in listing and row.token_hash not in listing
    assert app.test_client(token=token).get("/api/v1/me").get_json()["name"] == "ci"


def test_it_creates_a_token_for_the_caller_by_default_and_refuses_bad_fields(app: Flask) -> None:
    admin = app.test_client()
    mine = admin.post("/api/v1/tokens", json={})
    assert mine.status_code == 201 and mine.get_json()["user"] == "test-admin"
    bad = [({"user": "nobody"}, "user"), ({"user": True}, "user"),
           ({"label": "x" * 101}, "label"), ({"colour": "red"}, "colour")]  # fmt: skip
    for body, field in bad:
        response = admin.post("/api/v1/tokens", json=body)
        assert response.status_code == 422, body
        assert response.get_json()["error"]["errors"][0]["field"] == field


def test_it_refuses_a_revoked_token_at_once(app: Flask) -> None:
    admin = app.test_client()
    token = token_for(app, "script", "editor")
    script = app.test_client(token=token)
    me = script.get("/api/v1/me").get_json()
    assert me["via"] == "token"
    assert admin.delete(f"/api/v1/tokens/{me['token_id']}").status_code == 204
    refused = script.get("/api/v1/me")
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
    assert "revoked" in refused.get_json()["error"]["message"]
    [listed] = [t for t in admin.get("/api/v1/tokens?user=script").get_json()["tokens"]]
    assert listed["revoked_at"] is not None
    assert admin.delete(f"/api/v1/tokens/{me['token_id']}").status_code == 204  # already


def test_it_records_a_token_s_last_use_at_most_once_a_minute(app: Flask) -> None:
    token = token_for(app, "cron", "viewer")
    client = app.test_client(token=token)
    token_id = client.get("/api/v1/me").get_json()["token_id"]
    first = _token_row(app, token_id).last_used_at
    assert first is not None
    client.get("/api/v1/rules")
    assert _token_row(app, token_id).last_used_at == first, "written again within the minute"
    with transaction(app.extensions["rulewatch"].factory) as session:
        earlier = utcnow() - timedelta(minutes=2)
        session.execute(
            update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=earlier)
        )
    client.get("/api/v1/rules")
    later = _token_row(app, token_id).last_used_at
    assert later is not None and later > first


# sessions


def test_it_signs_in_with_a_session_and_signs_out(app: Flask) -> None:
    add_user(app, "sam", "editor")
    browser = app.test_client(token=None)
    signed_in = _sign_in(browser, "Sam")
    assert signed_in.status_code == 200
    me = signed_in.get_json()
    assert (me["name"], me["role"], me["via"], me["token_id"]) == ("sam", "editor", "session", None)
    cookie = signed_in.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    created = browser.post("/api/v1/rules", json=http_rule("http://127.0.0.1:9/"))
    assert created.status_code == 201
    assert browser.get("/api/v1/me").get_json()["via"] == "session"
    assert browser.delete("/api/v1/session", json={}).status_code == 204
    assert browser.get("/api/v1/me").status_code == 401


def test_it_refuses_a_session_change_that_is_not_json(app: Flask) -> None:
    add_user(app, "sam", "editor")
    browser = app.test_client(token=None)
    _sign_in(browser, "sam")
    rule_id = browser.post("/api/v1/rules", json=http_rule("http://127.0.0.1:9/")).get_json()["id"]
    url = f"/api/v1/rules/{rule_id}/verify"
    form = browser.post(url, data={"countdown_s": "0"})
    assert form.status_code == 415
    error = form.get_json()["error"]
    assert error["code"] == "json_required"
    assert error["errors"][0]["field"] == "Content-Type"
    assert browser.delete("/api/v1/session").status_code == 415
    assert browser.post(url, json={}).status_code == 202
    assert app.test_client().post(url, data="").status_code == 202, "a bearer token needs no JSON"


def test_it_answers_a_wrong_password_and_an_unknown_name_alike(app: Flask) -> None:
    add_user(app, "sam", "editor")
    wrong = _sign_in(app.test_client(token=None), "sam", "not the password")
    unknown = _sign_in(app.test_client(token=None), "nobody", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.get_json() == unknown.get_json()
    assert wrong.get_json()["error"]["code"] == "invalid_credentials"
    assert "Set-Cookie" not in wrong.headers


@pytest.mark.parametrize(
    "body", [{}, {"username": "sam"}, {"username": 1, "password": []}, {"username": None}]
)
def test_it_asks_for_a_username_and_password_as_text(app: Flask, body: dict[str, Any]) -> None:
    response = app.test_client(token=None).post("/api/v1/session", json=body)
    assert response.status_code == 400
    assert response.get_json()["error"]["errors"][0]["field"] in ("username", "password")


def test_it_refuses_sign_ins_after_five_failures_for_a_while(app: Flask) -> None:
    add_user(app, "sam", "editor")
    add_user(app, "other", "viewer")
    client = app.test_client(token=None)
    for _ in range(5):
        assert _sign_in(client, "sam", "guess guess guess").status_code == 401
    limited = _sign_in(client, "sam")  # the right password, too late
    assert limited.status_code == 429
    assert limited.get_json()["error"]["code"] == "too_many_attempts"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert _sign_in(client, "other").status_code == 200, "another name is not limited"


def test_right_passwords_are_not_limited_like_guesses(app: Flask) -> None:
    add_user(app, "sam", "editor")
    client = app.test_client(token=None)
    for _ in range(8):  # more than the five attempts a name may have a minute
        assert _sign_in(client, "sam").status_code == 200


def test_a_new_password_ends_the_user_s_sessions(app: Flask) -> None:
    user_id = add_user(app, "sam", "editor")
    browser = app.test_client(token=None)
    _sign_in(browser, "sam")
    assert browser.get("/api/v1/me").status_code == 200
    change = app.test_client().patch(f"/api/v1/users/{user_id}", json={"password": "y" * 16})
    assert change.status_code == 200
    assert browser.get("/api/v1/me").status_code == 401


def test_a_request_with_credentials_is_judged_by_them_alone(app: Flask) -> None:
    add_user(app, "sam", "editor")
    browser = app.test_client(token=None)
    _sign_in(browser, "sam")
    stale = browser.get("/api/v1/me", headers={"Authorization": "Bearer rw_revoked"})
    assert stale.status_code == 401


def test_a_bearer_request_sets_no_cookie(app: Flask) -> None:
    response = app.test_client().get("/api/v1/rules")
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers


def test_sessions_survive_a_restart_on_the_key_kept_in_home(app: Flask, settings: Settings) -> None:
    add_user(app, "sam", "editor")
    browser = app.test_client(token=None)
    _sign_in(browser, "sam")
    key_file = settings.home / "secret_key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    restarted = create_app(settings)
    assert restarted.config["SECRET_KEY"] == app.config["SECRET_KEY"]
    cookie = browser.get_cookie("session")
    assert cookie is not None
    after = restarted.test_client()
    after.set_cookie("session", cookie.value)
    assert after.get("/api/v1/me").get_json()["name"] == "sam"
    other = create_app(replace(settings, secret_key="k" * 40)).test_client()
    other.set_cookie("session", cookie.value)
    assert other.get("/api/v1/me").status_code == 401


def test_it_rehashes_a_password_hashed_with_older_parameters_at_sign_in(app: Flask) -> None:
    older = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
    with transaction(app.extensions["rulewatch"].factory) as session:
        session.add(User(name="old", role="viewer", password_hash=older.hash(PASSWORD),
                         created_at=utcnow()))  # fmt: skip
    assert _sign_in(app.test_client(token=None), "old").status_code == 200
    with app.extensions["rulewatch"].factory() as session:
        stored = session.scalar(select(User.password_hash).where(User.name == "old"))
    assert stored is not None and stored.startswith("$argon2id$")
    assert not HASHER.check_needs_rehash(stored)
    assert HASHER.verify(stored, PASSWORD)
