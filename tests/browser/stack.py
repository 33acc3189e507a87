"""The real product for browser tests and screenshots: `rulewatch up` on embedded storage,
its API through a bearer token, and a Chromium that never reaches the internet.

Shared by tests/browser/conftest.py and scripts/screenshots.py; it imports no pytest.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, BrowserContext, Page, Playwright, ViewportSize

from tests.integration.processes import free_port, spawn, stop

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package; Playwright downloads no browser here
# no sandbox (containers), and none of the background traffic a machine without internet
# would answer with floods of refused connections
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
VIEWPORT = ViewportSize(width=1280, height=900)
ADMIN = "admin"
ADMIN_PASSWORD = "browser admin password"
START_TIMEOUT_S = 60
# injected by the browser itself, so the page's own policy cannot block it
REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (e) => {
  console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || "inline"}`
    + ` at ${e.sourceFile || document.location.pathname}:${e.lineNumber}`);
});
"""


@dataclass
class Stack:
    """A running `rulewatch up`: where it answers, its home and log, and an admin token."""

    base: str
    home: Path
    log: Path
    env: dict[str, str]
    token: str = field(default="", repr=False)

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """Call ``/api/v1{path}`` as the admin; the decoded JSON answer (None when empty)."""
        headers = {"Authorization": f"Bearer {self.token}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(
            f"{self.base}/api/v1{path}", data=data, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            raise AssertionError(f"{method} {path} answered {exc.code}: {detail}") from None
        return json.loads(raw) if raw else None

    def cli(self, *args: str) -> str:
        """Run ``rulewatch ARGS`` beside the stack on the same home; its standard output."""
        done = subprocess.run(
            [sys.executable, "-m", "rulewatch", *args],
            env={**os.environ, **self.env}, capture_output=True, text=True, timeout=60,
            check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise AssertionError(f"rulewatch {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the stack's log, for failure messages."""
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def _healthy(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/healthz", timeout=2) as response:
            return bool(json.loads(response.read()).get("status") == "ok")
    except (OSError, ValueError):
        return False


def _wait_healthy(process: subprocess.Popen[bytes], stack: Stack) -> None:
    """Wait for /healthz; fail at once, with the log, if `rulewatch up` exits first."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _healthy(stack.base):
        if process.poll() is not None:
            raise AssertionError(
                f"rulewatch up exited with {process.returncode} before it answered /healthz:\n"
                f"{stack.log_tail()}"
            )
        if time.monotonic() > deadline:
            raise AssertionError(f"rulewatch up did not answer /healthz in {START_TIMEOUT_S} s")
        time.sleep(0.2)


@contextmanager
def running_stack(workdir: Path, tick_s: float = 1.0) -> Iterator[Stack]:
    """Start `rulewatch up` with its home in ``workdir``, yield it once /healthz answers, stop it.

    Embedded storage (SQLite, filesystem broker) as a newcomer gets it: any RULEWATCH_*
    database or broker setting of the caller's environment is blanked.
    """
    port = free_port()
    env = {
        "RULEWATCH_HOME": str(workdir / "home"),
        "RULEWATCH_TICK_S": str(tick_s),
        "RULEWATCH_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "RULEWATCH_BASE_URL": f"http://127.0.0.1:{port}",
        "RULEWATCH_DATABASE_URL": "",
        "RULEWATCH_BROKER_URL": "",
        "RULEWATCH_RESULT_BACKEND": "",
    }
    stack = Stack(f"http://127.0.0.1:{port}", workdir / "home", workdir / "up.log", env)
    process = spawn(["up", "--port", str(port)], env, stack.log)
    try:
        _wait_healthy(process, stack)
        stack.token = stack.cli("tokens", "create", "--user", ADMIN, "--label", "browser")
        stack.token = stack.token.strip().splitlines()[-1]
        yield stack
    finally:
        code = stop(process)
        if code != 0:
            print(f"rulewatch up exited with {code}:\n{stack.log_tail()}", file=sys.stderr)


def launch_chromium(playwright: Playwright) -> Browser:
    """Debian's Chromium, headless, with no background networking."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS))


def new_context(browser: Browser, base: str) -> BrowserContext:
    """A fresh context (no cookies) at 1280x900 whose relative URLs go to ``base``; every
    Content-Security-Policy violation of its pages is also logged to the console as
    ``CSP violation: ...``."""
    context = browser.new_context(base_url=base, viewport=VIEWPORT)
    context.add_init_script(REPORT_CSP_VIOLATIONS)
    return context


def sign_in(page: Page, username: str = ADMIN, password: str = ADMIN_PASSWORD) -> None:
    """Fill and send the login form (the page goes to /login first)."""
    page.goto("/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("main form button[type=submit]")
    page.wait_for_load_state()


def csp_violations(console_lines: list[str]) -> list[str]:
    """The console lines that report a Content-Security-Policy violation."""
    return [t for t in console_lines if "CSP violation" in t or "Content Security Policy" in t]
