"""RULEWATCH_SECRET_KEY_PREVIOUS: what the old key signed still holds while it is rotated out."""

from __future__ import annotations

from dataclasses import replace

import pytest
from flask import Flask

from rulewatch import create_app
from rulewatch.config import ConfigError, Settings, load_settings
from tests.auth import PASSWORD, add_user

OLD, NEW = "o" * 40, "n" * 40


def _session_cookie(app: Flask) -> str:
    add_user(app, "sam", "editor")
    browser = app.test_client()  # no token: an app made here sends none
    signed_in = browser.post("/api/v1/session", json={"username": "sam", "password": PASSWORD})
    assert signed_in.status_code == 200
    cookie = browser.get_cookie("session")
    assert cookie is not None
    return cookie.value


def _me(app: Flask, cookie: str) -> int:
    client = app.test_client()  # no token: an app made here sends none
    client.set_cookie("session", cookie)
    status: int = client.get("/api/v1/me").status_code
    return status


def test_a_session_signed_with_the_previous_key_still_signs_in(settings: Settings) -> None:
    cookie = _session_cookie(create_app(replace(settings, secret_key=OLD)))
    assert _me(create_app(replace(settings, secret_key=NEW)), cookie) == 401
    rotating = create_app(replace(settings, secret_key=NEW, secret_key_previous=OLD))
    assert _me(rotating, cookie) == 200


def test_it_refuses_a_short_previous_key_naming_the_setting() -> None:
    with pytest.raises(ConfigError, match="RULEWATCH_SECRET_KEY_PREVIOUS must be at least 32"):
        load_settings({"RULEWATCH_SECRET_KEY_PREVIOUS": "short"})
