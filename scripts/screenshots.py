"""Screenshots of the pages for the docs (`make screenshots`).

Starts `rulewatch up` on embedded storage in a scratch folder, as the browser tests do, creates
a handful of rules against local HTTP targets (passing, slow, failing, flapping, paused), lets
the scheduler verify them for a while, then saves full-page shots of the dashboard, one rule's
page and the report, 1280 px wide.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the shared start-up code lives with the browser tests

from playwright.sync_api import Page, sync_playwright  # noqa: E402

from tests.browser.stack import Stack, launch_chromium, new_context, running_stack, sign_in  # noqa: E402
from tests.targets import Target, http_rule  # noqa: E402

SHOTS = ("dashboard", "rule", "report")
HEALTHY = ["[STATUS] == 200", "[BODY].status == UP", "[RESPONSE_TIME] < 500"]
INTERVAL_S = 2


def _http(name: str, url: str, conditions: list[str], **extra: Any) -> dict[str, Any]:
    return http_rule(url, name, conditions=conditions, **{"interval_s": INTERVAL_S, **extra})


def main() -> int:
    """Start the product, seed it, let it verify, take the shots."""
    args = _arguments()
    with ExitStack() as resources:
        targets = {
            name: resources.enter_context(Target()) for name in ("ok", "slow", "down", "flaky")
        }
        targets["slow"].delay_s = 0.12
        targets["down"].status, targets["down"].body = 503, {"status": "DOWN"}
        resources.enter_context(_flapping(targets["flaky"], up_s=8, down_s=4))
        workdir = Path(resources.enter_context(tempfile.TemporaryDirectory(prefix="rulewatch-")))
        running = resources.enter_context(running_stack(workdir))
        ids = _seed(running, targets)
        _settle(running, args.settle)
        _shoot(running, ids["catalog API"], args.out)
    return 0


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--settle", type=float, default=30.0,
                        help="seconds of scheduled verifications before the shots")  # fmt: skip
    return parser.parse_args()


def _rules(targets: dict[str, Target]) -> list[dict[str, Any]]:
    ok, slow, down, flaky = (targets[k].url for k in ("ok", "slow", "down", "flaky"))
    port = urlsplit(ok).port
    status_ok = ["[STATUS] == 200"]
    tcp = {
        "name": "frontend port",
        "kind": "tcp",
        "target": {"host": "127.0.0.1", "port": port},
        "conditions": ["[CONNECTED] == true", "[RESPONSE_TIME] < 100"],
        "interval_s": INTERVAL_S,
        "tags": ["web"],
    }
    return [
        _http("orders API", ok, HEALTHY, tags=["payments", "prod"]),
        _http("checkout health", ok, status_ok, tags=["payments"], interval_s=3),
        _http("search latency", slow, ["[RESPONSE_TIME] < 400"], tags=["search", "prod"]),
        _http("inventory sync", down, HEALTHY[:2], tags=["warehouse", "prod"]),
        _http("catalog API", flaky, HEALTHY[:2], tags=["search"], stability_target=0.999),
        _http("legacy billing", ok, status_ok, tags=["payments"], enabled=False),
        tcp,
    ]


def _seed(stack: Stack, targets: dict[str, Target]) -> dict[str, int]:
    """Create the rules through the API; their ids by name."""
    return {rule["name"]: stack.api("POST", "/rules", rule)["id"] for rule in _rules(targets)}


@contextmanager
def _flapping(target: Target, up_s: float, down_s: float) -> Iterator[None]:
    """Make ``target`` answer 200 for ``up_s`` seconds, then 500 for ``down_s``, and again."""
    stop = threading.Event()

    def flap() -> None:
        while not stop.wait(up_s):
            target.status = 500
            if stop.wait(down_s):
                return
            target.status = 200

    thread = threading.Thread(target=flap, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _settle(stack: Stack, seconds: float) -> None:
    """Let the scheduler verify the rules, saying how many verifications there are so far."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        rules = stack.api("GET", "/rules?limit=100")["rules"]
        verified = sum(1 for r in rules if r["last_status"])
        print(f"{verified}/{len(rules)} rules verified, shots in {left:.0f} s", flush=True)
        time.sleep(min(5.0, left))


def _shoot(stack: Stack, rule_id: int, out: Path) -> None:
    """Full-page shots of the dashboard, the rule's page and the report."""
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = new_context(browser, stack.base).new_page()
        sign_in(page)
        for name, path in zip(SHOTS, ("/", f"/rules/{rule_id}?window=1h", "/report"), strict=True):
            _save(page, path, out / f"{name}.png")
        browser.close()


def _save(page: Page, path: str, shot: Path) -> None:
    page.goto(path)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=shot, full_page=True)
    print(f"saved {shot.relative_to(ROOT) if shot.is_relative_to(ROOT) else shot}")


if __name__ == "__main__":
    sys.exit(main())
