"""Browser tests: the real product (`rulewatch up`, embedded storage) driven by Chromium.

One `rulewatch up` and one Chromium serve the whole session; each test gets a fresh browser
context (no cookies) and its own HTTP target.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Playwright,
    expect,
    sync_playwright,
)
from playwright.sync_api import Error as PlaywrightError

from tests.browser.stack import CHROMIUM, Stack, launch_chromium, new_context, running_stack
from tests.targets import Target

# a test run or verify-now goes through a worker on the filesystem broker: on a loaded
# machine that can take longer than expect()'s own 5 s default
expect.set_options(timeout=30_000)

ACTION_TIMEOUT_MS = 10_000  # a missing element fails in seconds, not Playwright's 30
CALL_FAILED = pytest.StashKey[bool]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "needs_ui_pages: drives the dashboard, editor, rule and report pages through their "
        "selector contract",
    )


def require_chromium() -> None:
    """Skip when Debian's Chromium is missing, except under CI=true, where it fails."""
    if CHROMIUM.exists():
        return
    reason = f"Chromium is not installed at {CHROMIUM}"
    install = "apt-get install chromium chromium-driver"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI=true requires it: {install} (.ci/run does)")
    pytest.skip(f"{reason}; {install} to run the browser tests (with CI=true this is a failure)")


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """`rulewatch up` (web, worker, beat; SQLite and filesystem broker) with user admin."""
    require_chromium()
    with running_stack(tmp_path_factory.mktemp("browser-stack")) as running:
        yield running


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    """Playwright's sync API, for the browser tests (its event loop must end with them)."""
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Headless Chromium, launched once."""
    require_chromium()
    chromium = launch_chromium(playwright)
    yield chromium
    chromium.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[CALL_FAILED] = report.failed
    return report


@pytest.fixture
def page(
    browser: Browser, stack: Stack, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Page]:
    """A page in a fresh context (no cookies, 1280x900) whose relative URLs go to the stack.

    When the test fails, the page's URL and text are added to the report and a screenshot
    is kept in the test's tmp_path.
    """
    context = new_context(browser, stack.base)
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    opened = context.new_page()
    yield opened
    if request.node.stash.get(CALL_FAILED, False):
        with contextlib.suppress(PlaywrightError):  # a crashed page must not hide the failure
            _describe(opened, request.node, tmp_path / "failure.png")
    context.close()


def _describe(page: Page, item: pytest.Item, shot: Path) -> None:
    """What the browser showed when the test failed."""
    page.screenshot(path=shot, full_page=True)
    text = page.locator("body").inner_text(timeout=2000)[:1500]
    item.add_report_section("teardown", "page", f"{page.url}\nscreenshot: {shot}\n\n{text}")


@pytest.fixture
def console(page: Page) -> list[ConsoleMessage]:
    """The console messages of ``page``, CSP violations included, as they arrive."""
    messages: list[ConsoleMessage] = []
    page.on("console", lambda message: messages.append(message))  # Playwright tags handlers
    return messages


@pytest.fixture
def target() -> Iterator[Target]:
    """A local HTTP target answering GET /health; set ``status``, ``body``, ``delay_s``."""
    with Target() as serving:
        yield serving
