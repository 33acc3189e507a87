"""Alert storm: N rules fail at once; how long until each is named in an email.

The production split on Redis and PostgreSQL (a `checks` worker, an `alerts` worker,
`rulewatch scheduler` and `rulewatch beat`), a real HTTP target that answers 200 and then,
at the outage, 500, and a real SMTP server (aiosmtpd) in this process noting when each
message arrives. Each rule's figure is the time from the outage to the first email naming it
(its link); a rule needs ``failure_threshold`` failing runs, so the goal is
``failure_threshold x interval + 5 s``.

Usage: python bench/alert_storm.py [--rules 1000] [--interval 10] [--threshold 2]
"""

from __future__ import annotations

import argparse
import asyncio
import email
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import Message
from pathlib import Path
from typing import Any

import redis
from aiohttp import web
from aiosmtpd.controller import Controller
from sqlalchemy import create_engine, insert, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import free_port, rulewatch_env, run_as_script, start_rulewatch, wait_port  # noqa: E402
from bench.database import scratch_database  # noqa: E402
from rulewatch.domain.schedule import Schedule, first_due  # noqa: E402
from rulewatch.migrate import upgrade  # noqa: E402
from rulewatch.models import Rule  # noqa: E402

BROKER = os.environ.get("RULEWATCH_BENCH_ALERTS_REDIS", "redis://127.0.0.1:6379/15")
BASE_URL = "http://rulewatch.example"
OPS = "ops@example.com"
LINK = re.compile(re.escape(BASE_URL) + r"/rules/(\d+)")
WARM_S = 15  # every rule passes at least once before the outage
SETTLE_S = 20  # after the goal, how long to wait for the last rules before giving up
# the production split of the README: checks, alerts, the scheduler queue, beat
ROLES = (["worker", "-Q", "checks", "-c", "2"], ["worker", "-Q", "alerts", "-c", "1"],
         ["scheduler"], ["beat"])  # fmt: skip


class FlippingTarget:
    """An HTTP server answering every path 200 until ``fail()``, then 500."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.status = 200
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def fail(self) -> None:
        self.status = 500

    async def _answer(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "UP" if self.status == 200 else "DOWN"},
                                 status=self.status)  # fmt: skip

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._answer)
        runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(runner.setup())
        self._loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self._started.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())

    def __enter__(self) -> FlippingTarget:
        self._thread.start()
        self._started.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@dataclass
class Mailbox:
    """aiosmtpd handler: each accepted message with the time it arrived."""

    received: list[tuple[float, Message]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append((time.time(), email.message_from_bytes(envelope.content)))
        return "250 Message accepted for delivery"

    def named(self) -> dict[int, float]:
        """Each rule id an email names, with the arrival of the first such email."""
        first: dict[int, float] = {}
        for at, message in list(self.received):
            for rule_id in _rule_ids(message):
                first.setdefault(rule_id, at)
        return first


def _rule_ids(message: Message) -> set[int]:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                return {int(i) for i in LINK.findall(payload.decode())}
    return set()


@contextmanager
def smtp_server(port: int, mailbox: Mailbox) -> Iterator[Mailbox]:
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox
    finally:
        controller.stop()


def make_rules(url: str, target: str, args: argparse.Namespace, start: datetime) -> None:
    """Rules spread over their interval as new rules are (``first_due``), all alerting OPS."""
    schedule = Schedule(interval_s=args.interval)
    alert = {"emails": [OPS], "failure_threshold": args.threshold, "success_threshold": 2,
             "send_on_resolved": True, "reminder_interval_s": 0}  # fmt: skip
    rows = [
        {"id": i, "name": f"storm {i:04d}", "kind": "http",
         "target": {"url": f"{target}/r/{i}", "timeout_s": 5.0},
         "conditions": ["[STATUS] == 200"], "interval_s": args.interval, "timezone": "UTC",
         "enabled": True, "stability_target": 0.99, "alert": alert, "created_at": start,
         "updated_at": start, "next_due_at": first_due(schedule, i, start)}
        for i in range(1, args.rules + 1)
    ]  # fmt: skip
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(insert(Rule), rows)
    engine.dispose()


def outbox(url: str) -> dict[str, int]:
    """The outbox's rows, their groups (one email each: a tick's alerts of one kind to one
    recipient), and the latches still open."""
    engine = create_engine(url)
    with engine.connect() as conn:
        total, groups = conn.execute(
            text("SELECT count(*), count(DISTINCT group_key) FROM notifications")
        ).one()
        latches = 0  # a revision before the alert latch (bench/baseline.py) has no table
        if conn.scalar(text("SELECT to_regclass('tick_latches')")) is not None:
            latches = conn.scalar(text("SELECT count(*) FROM tick_latches"))
    engine.dispose()
    return {"rows": int(total), "groups": int(groups), "latches_left": int(latches or 0)}


def percentiles(values: list[float]) -> dict[str, float]:
    q = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": round(q[49], 2), "p99": round(q[98], 2), "max": round(max(values), 2)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The storm on a fresh database, dropped afterwards."""
    with scratch_database() as url:
        return _run(url, args)


def _run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    upgrade(url)
    redis.Redis.from_url(BROKER).flushdb()
    home = Path(f"/tmp/rulewatch-alert-storm-{os.getpid()}")
    smtp_port, target_port = free_port(), free_port()
    env = rulewatch_env(home, url, BROKER, RULEWATCH_SMTP_HOST="127.0.0.1",
                        RULEWATCH_SMTP_PORT=str(smtp_port), RULEWATCH_SMTP_FROM="rw@example.com",
                        RULEWATCH_BASE_URL=BASE_URL)  # fmt: skip
    mailbox = Mailbox()
    procs: list[subprocess.Popen[bytes]] = []
    with FlippingTarget(target_port) as target, smtp_server(smtp_port, mailbox):
        try:
            wait_port(target_port)
            start = datetime.now(UTC) + timedelta(seconds=10)
            make_rules(url, f"http://127.0.0.1:{target_port}", args, start)
            procs += start_rulewatch(ROLES, env, home / "bench.log")
            time.sleep((start - datetime.now(UTC)).total_seconds() + WARM_S)
            if mailbox.received:
                raise RuntimeError("alert_storm: an email came before the outage")
            passed = _passed_rules(url)
            outage = time.time()
            target.fail()
            print(f"alert_storm: {passed} rules passed; the target fails now", flush=True)
            goal_s = args.threshold * args.interval + 5
            deadline = outage + goal_s + SETTLE_S
            while time.time() < deadline and len(mailbox.named()) < args.rules:
                time.sleep(0.5)
            named = mailbox.named()
            delays = sorted(at - outage for at in named.values())
            held = outbox(url)
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(60)
                except subprocess.TimeoutExpired:
                    p.kill()
    missing = args.rules - len(named)
    return {
        "rules": args.rules,
        "interval_s": args.interval,
        "failure_threshold": args.threshold,
        "goal_s": goal_s,
        "group_wait_s": float(env.get("RULEWATCH_ALERT_GROUP_WAIT_S", 10)),
        "rules_passing_before_outage": passed,
        "rules_named": len(named),
        "rules_not_named_within_goal_plus_20_s": missing,
        "named_after_outage_s": percentiles(delays) if delays else {},
        "emails": len(mailbox.received),
        "emails_naming_a_rule_twice": _repeats(mailbox),
        "outbox": held,
    }


def _passed_rules(url: str) -> int:
    engine = create_engine(url)
    with engine.connect() as conn:
        n = conn.scalar(text("SELECT count(*) FROM rules WHERE last_status = 'pass'"))
    engine.dispose()
    return int(n or 0)


def _repeats(mailbox: Mailbox) -> int:
    """Rules named in more than one email (a FIRING is sent once per incident)."""
    seen: dict[int, int] = {}
    for _, message in mailbox.received:
        for rule_id in _rule_ids(message):
            seen[rule_id] = seen.get(rule_id, 0) + 1
    return sum(1 for n in seen.values() if n > 1)


def parser() -> argparse.ArgumentParser:
    """Command-line options, also used by bench/run_all.py for the defaults."""
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--rules", type=int, default=1000)
    p.add_argument("--interval", type=int, default=10)
    p.add_argument("--threshold", type=int, default=2)
    return p


if __name__ == "__main__":
    run_as_script(run, parser)
