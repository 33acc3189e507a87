"""A newcomer's journey through the pages: create a rule, watch it verified, see it fail,
read the report; and an editor that refuses a bad condition without saving anything."""

from __future__ import annotations

import re
import time
import uuid
from urllib.parse import quote, urlsplit

import pytest
from playwright.sync_api import ConsoleMessage, Page, expect

from tests.browser.stack import Stack, csp_violations, sign_in
from tests.targets import Target

pytestmark = pytest.mark.needs_ui_pages

BADGE_TIMEOUT_S = 30
INTERVAL_S = 2  # the schedule allows 1 s; 2 s leaves the worker room on a shared machine


def _unique(name: str) -> str:
    return f"{name} {uuid.uuid4().hex[:6]}"


def _fill_editor(page: Page, name: str, url: str, conditions: str) -> None:
    page.fill("input[name=name]", name)
    page.select_option("select[name=kind]", "http")
    page.fill("input[name=url]", url)
    page.select_option("select[name=method]", "GET")
    page.fill("textarea[name=conditions]", conditions)
    page.fill("input[name=interval_s]", str(INTERVAL_S))


def _badge(page: Page, scope: str) -> str | None:
    return page.locator(f"{scope} .badge[data-status]").first.get_attribute("data-status")


def _wait_for_badge(page: Page, scope: str, status: str) -> None:
    """Reload until the badge in ``scope`` shows ``status``: the pages do not refresh."""
    deadline = time.monotonic() + BADGE_TIMEOUT_S
    seen = _badge(page, scope)
    while seen != status:
        if time.monotonic() > deadline:
            raise AssertionError(f"{scope} still shows {seen!r}, not {status!r}, after reloads")
        page.wait_for_timeout(1000)
        page.reload()
        seen = _badge(page, scope)


def _rules_named(stack: Stack, name: str) -> int:
    total: int = stack.api("GET", f"/rules?q={quote(name)}")["total"]
    return total


def test_it_creates_a_rule_watches_it_pass_then_fail_and_reports_it(
    page: Page, stack: Stack, target: Target, console: list[ConsoleMessage]
) -> None:
    name = _unique("orders API")
    sign_in(page)
    page.click("a#new-rule")
    assert urlsplit(page.url).path == "/rules/new", page.url
    _fill_editor(page, name, target.url, "[STATUS] == 200")

    page.click("button#test-run")
    expect(page.locator("#test-result tr.outcome td.resolved").first).to_contain_text("200")
    page.click("button#save")

    page.wait_for_url(re.compile(r"/rules/\d+$"))
    rule_id = int(urlsplit(page.url).path.rsplit("/", 1)[1])
    _wait_for_badge(page, "#rule-status", "pass")
    expect(page.locator("svg.chart").first).to_be_attached()
    assert page.locator("#verifications tr").count() >= 1

    target.status = 500
    page.click("button#verify-now")
    expect(page.locator("#verify-progress")).to_have_attribute("data-state", "SUCCESS")
    _wait_for_badge(page, "#rule-status", "fail")

    page.goto("/")
    row = page.locator(f'tr[data-rule-id="{rule_id}"]')
    expect(row.locator("a.rule-link")).to_have_text(name)
    expect(row.locator(".badge[data-status]")).to_have_attribute("data-status", "fail")

    page.goto("/report")
    expect(page.locator("select[name=window]")).to_be_visible()
    expect(page.locator("a#download-report")).to_be_visible()
    expect(page.locator(f'tr[data-rule-id="{rule_id}"]')).to_contain_text(name)

    page.click("button#logout")
    assert urlsplit(page.url).path == "/login", page.url
    assert csp_violations([m.text for m in console]) == []


def test_it_shows_a_bad_condition_beside_its_field_and_saves_nothing(
    page: Page, stack: Stack, target: Target
) -> None:
    name = _unique("half-written rule")
    sign_in(page)
    page.goto("/rules/new")
    _fill_editor(page, name, target.url, "[STATUS] ==")

    expect(page.locator("#conditions-feedback li.bad")).to_have_count(1)
    page.click("button#save")

    error = page.locator("#conditions-error")
    expect(error).to_be_visible()
    expect(error).not_to_be_empty()
    assert urlsplit(page.url).path == "/rules/new", page.url
    assert _rules_named(stack, name) == 0
