"""Signing in and out of the pages; CSRF and security headers on every answer."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.auth import PASSWORD, add_user
from tests.web.page_forms import csrf_token, text_of


def _login(client: FlaskClient, username: str, password: str, next_path: str = "") -> TestResponse:
    token = csrf_token(client, "/login")
    query = f"?next={next_path}" if next_path else ""
    return client.post(f"/login{query}", data={
        "username": username, "password": password, "csrf_token": token})  # fmt: skip


def test_it_sends_a_visitor_without_a_session_to_the_login_page(app: Flask) -> None:
    client = app.test_client(token=None)
    for path in ("/", "/report", "/rules/new", "/incidents", "/users"):
        answer = client.get(path)
        assert answer.status_code == 302, path
        assert answer.headers["Location"].startswith(f"/login?next={path}")


def test_it_signs_in_with_the_form_and_goes_on_to_the_page_asked_for(app: Flask) -> None:
    add_user(app, "alice", "viewer")
    client = app.test_client(token=None)
    answer = _login(client, "alice", PASSWORD, "/report")
    assert answer.status_code == 302 and answer.headers["Location"] == "/report"
    page = client.get("/")
    assert page.status_code == 200
    assert "alice (viewer)" in (text_of(page.get_data(as_text=True), "who") or "")


def test_it_refuses_a_wrong_password_with_no_hint_and_no_session(app: Flask) -> None:
    add_user(app, "alice", "viewer")
    client = app.test_client(token=None)
    answer = _login(client, "alice", "wrong")
    assert answer.status_code == 401
    assert "the username or password is wrong" in answer.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_it_never_sends_a_signed_in_user_to_another_site(app: Flask) -> None:
    add_user(app, "alice", "viewer")
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        client = app.test_client(token=None)
        answer = _login(client, "alice", PASSWORD, target)
        assert answer.headers["Location"] == "/", target


def test_it_refuses_a_login_form_without_its_csrf_token(app: Flask) -> None:
    add_user(app, "alice", "viewer")
    client = app.test_client(token=None)
    answer = client.post("/login", data={"username": "alice", "password": PASSWORD})
    assert answer.status_code == 400
    assert client.get("/").status_code == 302


def test_it_signs_out_with_a_form_post_only(app: Flask) -> None:
    add_user(app, "alice", "viewer")
    client = app.test_client(token=None)
    _login(client, "alice", PASSWORD)
    assert client.get("/logout").status_code == 405
    assert client.post("/logout").status_code == 400  # no CSRF token: still signed in
    assert client.get("/").status_code == 200
    answer = client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    assert answer.status_code == 302 and answer.headers["Location"] == "/login"
    assert client.get("/").status_code == 302


def test_it_ends_a_copied_session_cookie_when_its_user_signs_out(app: Flask) -> None:
    add_user(app, "alice", "viewer")
    browser = app.test_client(token=None)
    _login(browser, "alice", PASSWORD)
    cookie = browser.get_cookie("session")
    assert cookie is not None
    thief = app.test_client(token=None)
    thief.set_cookie("session", cookie.value)
    assert thief.get("/").status_code == 200
    browser.post("/logout", data={"csrf_token": csrf_token(browser, "/")})
    assert thief.get("/").status_code == 302
    assert thief.get("/api/v1/me").status_code == 401
    again = app.test_client(token=None)
    _login(again, "alice", PASSWORD)
    assert again.get("/").status_code == 200  # signing in again works at once


def test_it_sends_a_content_security_policy_and_security_headers(app: Flask) -> None:
    client = app.test_client(token=None)
    for path in ("/login", "/api/v1/me", "/healthz"):
        headers = client.get(path).headers
        policy = headers["Content-Security-Policy"]
        assert "default-src 'self'" in policy and "script-src 'self'" in policy, path
        assert "frame-ancestors 'none'" in policy
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Referrer-Policy"] == "same-origin"


def test_it_serves_pages_with_no_inline_script_or_style(app: Flask) -> None:
    page = app.test_client().get("/login").get_data(as_text=True)
    assert "<script>" not in page and "style=" not in page and "<style" not in page
    assert 'src="/static/app.js"' in page


def test_it_shows_a_viewer_a_403_page_on_an_editor_page(app: Flask) -> None:
    add_user(app, "vic", "viewer")
    client = app.test_client(token=None)
    _login(client, "vic", PASSWORD)
    answer = client.get("/rules/new")
    assert answer.status_code == 403
    assert "needs the editor role" in answer.get_data(as_text=True)
