"""Signing in and out in a real browser, and the pages' Content-Security-Policy."""

from __future__ import annotations

import uuid
from urllib.parse import parse_qs, urlsplit

from playwright.sync_api import ConsoleMessage, Page, expect

from tests.browser.stack import ADMIN, ADMIN_PASSWORD, Stack, csp_violations, sign_in

VIEWER_PASSWORD = "a viewer's long password"


def _path(page: Page) -> str:
    return urlsplit(page.url).path


def _signed_in(page: Page) -> bool:
    """Whether the context's cookies make a session the API accepts."""
    return page.request.get("/api/v1/me").status == 200


def test_it_refuses_a_wrong_password_and_opens_no_session(page: Page, stack: Stack) -> None:
    sign_in(page, ADMIN, "not the admin password")

    expect(page.locator("#login-error")).to_be_visible()
    expect(page.locator("#login-error")).not_to_be_empty()
    assert _path(page) == "/login"
    expect(page.locator("button#logout")).to_have_count(0)
    assert not _signed_in(page)
    page.goto("/")
    assert _path(page) == "/login"


def test_it_signs_in_and_lands_on_the_dashboard(page: Page, stack: Stack) -> None:
    name = f"ada.{uuid.uuid4().hex[:6]}"
    stack.api("POST", "/users", {"name": name, "role": "viewer", "password": VIEWER_PASSWORD})

    sign_in(page, name, VIEWER_PASSWORD)

    assert _path(page) == "/", page.url
    expect(page.locator("header")).to_contain_text(name)
    expect(page.locator("header button#logout")).to_be_visible()
    assert _signed_in(page)


def test_it_goes_back_to_the_page_asked_for_after_signing_in(page: Page, stack: Stack) -> None:
    page.goto("/report")
    assert _path(page) == "/login"
    assert parse_qs(urlsplit(page.url).query)["next"] == ["/report"]

    page.fill("input[name=username]", ADMIN)
    page.fill("input[name=password]", ADMIN_PASSWORD)
    page.click("main form button[type=submit]")

    assert _path(page) == "/report", page.url


def test_it_signs_out_and_then_asks_to_sign_in_again(page: Page, stack: Stack) -> None:
    sign_in(page)
    page.click("button#logout")

    assert _path(page) == "/login", page.url
    expect(page.locator("button#logout")).to_have_count(0)
    assert not _signed_in(page)
    page.goto("/")
    assert _path(page) == "/login", page.url


def test_it_sends_a_csp_that_its_pages_keep(
    page: Page, stack: Stack, console: list[ConsoleMessage]
) -> None:
    answer = page.goto("/login")
    assert answer is not None
    assert "default-src 'self'" in answer.headers["content-security-policy"]
    sign_in(page)
    for path in ("/", "/report"):
        answer = page.goto(path)
        assert answer is not None and answer.ok, path
        assert "script-src 'self'" in answer.headers["content-security-policy"], path

    assert csp_violations([m.text for m in console]) == []


def test_it_notices_a_csp_violation_when_a_page_has_one(
    page: Page, stack: Stack, console: list[ConsoleMessage]
) -> None:
    """The check above would pass vacuously if violations never reached the console."""
    page.goto("/login")
    page.evaluate(
        """() => {
        const script = document.createElement("script");
        script.textContent = "window.inlineRan = true";
        document.body.append(script);
    }"""
    )

    expect(page.locator("body")).to_be_visible()
    assert page.evaluate("() => window.inlineRan === undefined")
    page.wait_for_timeout(200)  # the violation event is queued as a task
    assert csp_violations([m.text for m in console]) != []
