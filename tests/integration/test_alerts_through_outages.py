"""Alert emails through restarts and SMTP outages: real `rulewatch web`, `beat`, `scheduler`
and `worker` processes on PostgreSQL and Redis or RabbitMQ, real HTTP targets, and a real
SMTP server (aiosmtpd) that the test stops and starts on the same port.

- Every process killed with -9 and started again while an incident is open: the incident
  stays open (no second FIRING) and resolves once (one RESOLVED) after the target recovers.
- SMTP down while incidents open and close: every alert is delivered once, each rule's in
  the order they were raised, within 30 s of the server's return, and each row's `attempts`
  is the number of tries the workers made (each try that did not go logs the rows it held).

Set RULEWATCH_TEST_SMTP_OUTAGE_S to stretch the outage (15 s by default, to keep CI short;
past about 250 s, raise pytest's timeout too: -o timeout=900).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from rulewatch.db import transaction
from rulewatch.models import Incident, Notification, Verification, utcnow
from rulewatch.services.rules import create_rule
from tests.integration.brokers import BROKERS, broker
from tests.integration.processes import free_port, spawn, wait_for
from tests.smtp_server import Inbox
from tests.targets import Target, http_rule

REDIS_DB = 6
OPS, DEV = "ops@example.com", "dev@example.com"
OUTAGE_S = float(os.environ.get("RULEWATCH_TEST_SMTP_OUTAGE_S", "15"))
BACK_WITHIN_S = 30
WORKER_QUEUES = "checks,interactive,reports,alerts"  # the scheduler queue has its own process


@dataclass
class TimedInbox(Inbox):
    """An Inbox that notes when it accepted each message (time.monotonic())."""

    accepted_at: list[float] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.accepted_at.append(time.monotonic())
        return await super().handle_DATA(server, session, envelope)


class Smtp:
    """aiosmtpd on one port, stopped and started again by the test."""

    def __init__(self, inbox: Inbox) -> None:
        self.inbox, self.port = inbox, free_port()
        self.controller: Controller | None = None

    def start(self) -> None:
        """Listen (again) on the same port."""
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        """Stop listening: connections are refused until start()."""
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@dataclass
class Deployment:
    """web, beat, scheduler and a worker, as separate processes, as production runs them."""

    env: dict[str, str]
    home: Path
    web_port: int = field(default_factory=free_port)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)
    generation: int = 0

    def start(self) -> None:
        """Start every process; return once the worker and the web are ready."""
        self.generation += 1
        commands = {"web": ["web", "--port", str(self.web_port), "-w", "1"],
                    "scheduler": ["scheduler"], "beat": ["beat"],
                    "worker": ["worker", "-Q", WORKER_QUEUES, "-c", "2"]}  # fmt: skip
        for name, args in commands.items():
            log = self.home / f"{name}-{self.generation}.log"
            self.logs.append(log)
            self.processes.append(spawn(args, self.env, log))
        worker_log = self.home / f"worker-{self.generation}.log"
        wait_for(lambda: b"ready." in worker_log.read_bytes(), 60, "the worker", worker_log)
        web_log = self.home / f"web-{self.generation}.log"
        wait_for(lambda: b"Booting worker" in web_log.read_bytes(), 60, "the web", web_log)

    def kill(self) -> None:
        """kill -9 every process group (main processes and their children)."""
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        self.processes.clear()

    def worker_log(self) -> str:
        """Everything the workers of every generation logged."""
        return "".join(p.read_text(errors="replace") for p in self.logs if "worker" in p.name)


@contextlib.contextmanager
def deployment(broker_kind: str, url: str, home: Path, smtp_port: int) -> Iterator[Deployment]:
    """The four processes on an empty broker, with 1 s ticks and a 1 s group wait."""
    with broker(broker_kind, REDIS_DB) as queues:
        env = {"RULEWATCH_HOME": str(home), "RULEWATCH_DATABASE_URL": url,
               "RULEWATCH_BROKER_URL": queues.url,
               "RULEWATCH_RESULT_BACKEND": queues.result_backend(url),
               "RULEWATCH_SMTP_HOST": "127.0.0.1", "RULEWATCH_SMTP_PORT": str(smtp_port),
               "RULEWATCH_SMTP_FROM": "rulewatch@example.com", "RULEWATCH_TICK_S": "1",
               "RULEWATCH_ALERT_GROUP_WAIT_S": "1", "RULEWATCH_CLAIM_TTL_S": "10",
               "RULEWATCH_SECRET_KEY": "k" * 40}  # fmt: skip
        stack = Deployment(env, home)
        try:
            yield stack
        finally:
            stack.kill()


def _rule(factory: sessionmaker[Session], target: Target, name: str, to: str) -> int:
    """A rule every second that alerts ``to`` on the first fail and the first pass."""
    alert = {"emails": [to], "failure_threshold": 1, "success_threshold": 1}
    with transaction(factory) as session:
        rule = create_rule(session, http_rule(target.url, name=name, interval_s=1, alert=alert),
                           utcnow())  # fmt: skip
        rule.next_due_at = utcnow()
        return rule.id


def _rows(factory: sessionmaker[Session]) -> list[Notification]:
    with factory() as session:
        return list(session.scalars(select(Notification).order_by(Notification.id)))


def _row_of(message: Any) -> int:
    """The outbox row a one-row message carries, from its Message-ID."""
    return int(str(message["Message-ID"]).split("-")[-1].split("@")[0])


def _verifications(factory: sessionmaker[Session], rule_id: int, status: str) -> int:
    query = select(func.count()).select_from(Verification)
    with factory() as session:
        count = session.scalar(
            query.where(Verification.rule_id == rule_id, Verification.status == status)
        )
    return int(count or 0)


def _more_runs(factory: sessionmaker[Session], rule_id: int, status: str, n: int) -> None:
    """Wait until the rule has been verified ``n`` more times with ``status``."""
    seen = _verifications(factory, rule_id, status)
    wait_for(lambda: _verifications(factory, rule_id, status) >= seen + n, 60,
             f"{n} more {status} runs of rule {rule_id}")  # fmt: skip


@pytest.mark.parametrize("broker_kind", BROKERS)
def test_an_incident_open_across_a_restart_of_everything_fires_once_and_resolves_once(
    broker_kind: str, database: tuple[str, sessionmaker[Session]], tmp_path: Path
) -> None:
    url, factory = database
    inbox = TimedInbox()
    smtp = Smtp(inbox)
    smtp.start()
    with Target() as target, deployment(broker_kind, url, tmp_path, smtp.port) as stack:
        try:
            target.status = 500
            rule_id = _rule(factory, target, "payments", OPS)
            stack.start()
            wait_for(lambda: inbox.messages, 60, "the FIRING email", stack.logs[-1])
            _more_runs(factory, rule_id, "fail", 2)
            stack.kill()  # web, beat, scheduler and worker, mid-tick
            stack.start()
            _more_runs(factory, rule_id, "fail", 3)  # still failing after the restart
            target.status = 200
            wait_for(lambda: len(inbox.messages) >= 2, 60, "the RESOLVED email", stack.logs[-1])
            _more_runs(factory, rule_id, "pass", 3)
            wait_for(lambda: {r.status for r in _rows(factory)} == {"sent"}, 30, "the outbox")
        finally:
            smtp.stop()
    subjects = [m["Subject"] for m in inbox.messages]
    assert subjects == ["[FIRING] payments", "[RESOLVED] payments"]
    with factory() as session:
        [incident] = session.scalars(select(Incident))
    assert incident.resolved_at is not None


@pytest.mark.parametrize("broker_kind", BROKERS)
def test_alerts_raised_while_smtp_is_down_arrive_once_in_order_soon_after_it_returns(
    broker_kind: str, database: tuple[str, sessionmaker[Session]], tmp_path: Path
) -> None:
    url, factory = database
    inbox = TimedInbox()
    smtp = Smtp(inbox)
    with (
        Target() as a,
        Target() as b,
        deployment(broker_kind, url, tmp_path, smtp.port) as stack,
    ):
        rules = {OPS: _rule(factory, a, "payments", OPS), DEV: _rule(factory, b, "ledger", DEV)}
        stack.start()
        down_at = time.monotonic()  # the server is down from the start
        for status in (500, 200, 500):  # payments fires, resolves and fires again
            a.status = status
            _more_runs(factory, rules[OPS], "fail" if status == 500 else "pass", 2)
        b.status = 500
        _more_runs(factory, rules[DEV], "fail", 2)
        b.status = 200  # ledger fires and resolves
        _more_runs(factory, rules[DEV], "pass", 2)
        wait_for(lambda: _all_tried(factory, 5), 30, "every alert tried", stack.logs[-1])
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))  # the outage lasts
        smtp.start()
        back_at = time.monotonic()
        try:
            wait_for(lambda: len(inbox.messages) >= 5, BACK_WITHIN_S + 30, "the alerts",
                     stack.logs[-1])  # fmt: skip
            _more_runs(factory, rules[OPS], "fail", 3)  # anything sent twice would be by now
            wait_for(lambda: {r.status for r in _rows(factory)} == {"sent"}, 30, "the outbox")
        finally:
            smtp.stop()
        tries = _tries_logged(stack.worker_log())
    rows = _rows(factory)
    delivered = [_row_of(m) for m in inbox.messages]
    last_s = max(inbox.accepted_at) - back_at
    print(f"{broker_kind}: outage {back_at - down_at:.1f} s, emails expected {len(rows)}, "
          f"delivered {len(set(delivered))}, duplicated {len(delivered) - len(set(delivered))}, "
          f"last one {last_s:.1f} s after the server's return, "
          f"attempts {[r.attempts for r in rows]}")  # fmt: skip
    assert sorted(delivered) == [r.id for r in rows], "each alert exactly once"
    kinds = {r.id: r.kind for r in rows}
    for to in (OPS, DEV):
        mine = [m for m in inbox.messages if m["To"] == to]
        expected = ["firing", "resolved", "firing"] if to == OPS else ["firing", "resolved"]
        assert [kinds[_row_of(m)] for m in mine] == expected, "in the order they were raised"
    assert 0 < last_s <= BACK_WITHIN_S, last_s
    assert [r.attempts for r in rows] == [tries.get(r.id, 0) + 1 for r in rows], tries


def _all_tried(factory: sessionmaker[Session], count: int) -> bool:
    """``count`` rows, each tried or waiting behind an earlier one, none sent."""
    rows = _rows(factory)
    return len(rows) == count and all(r.status == "pending" and r.last_error for r in rows)


def _tries_logged(log: str) -> dict[int, int]:
    """How many tries that did not go each row was part of, as the workers logged them."""
    tries: dict[int, int] = {}
    for ids in re.findall(r"notifications \[([\d, ]+)\] not sent", log):
        for nid in ids.split(", "):
            tries[int(nid)] = tries.get(int(nid), 0) + 1
    return tries
