"""Alert emails end to end: real `rulewatch worker` processes on PostgreSQL and Redis or
RabbitMQ, real HTTP targets, and a real SMTP server (aiosmtpd) run by the test process.

Each test gets its own database, its own workers (settings differ per test) and an empty
broker (Redis db 9, used by no other test module or benchmark, or a RabbitMQ vhost of its
own), so no message of one test (a retry waiting for its countdown, a message a killed worker
never acknowledged) can reach the next test's workers.

The tests whose broker does something of its own also run on RabbitMQ: a killed worker's
messages (Redis keeps them until the visibility timeout, RabbitMQ gives them back at once, to
meet the dead sender's lease), and a tick's batches, whose emails wait until the last of
them reports (the tick's alert latch). The retry test (countdowns) and the reminder test
(incident logic only) run on Redis alone, to keep CI short.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from rulewatch import create_app
from rulewatch.config import load_settings
from rulewatch.db import transaction
from rulewatch.migrate import upgrade
from rulewatch.models import Notification, Rule, TickLatch, utcnow
from tests.auth import sign_in_test_clients
from tests.conftest import drop_database, fresh_database
from tests.integration.brokers import BROKERS, Broker, broker
from tests.integration.processes import free_port, spawn, stop, wait_for
from tests.smtp_server import Inbox
from tests.targets import Target, http_rule

REDIS_DB = 9
SENDER = "rulewatch@example.com"
OPS, DEV = "ops@example.com", "dev@example.com"


@dataclass
class Stack:
    """The app (same settings as the workers), its test client, and the workers started."""

    app: Flask
    client: FlaskClient
    env: dict[str, str]
    home: Path
    broker: Broker
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    log: Path | None = None

    @property
    def factory(self) -> sessionmaker[Session]:
        factory: sessionmaker[Session] = self.app.extensions["rulewatch"].factory
        return factory

    def start_worker(self, name: str) -> subprocess.Popen[bytes]:
        """A `rulewatch worker -c 2` on every queue, once it says it is ready."""
        self.log = self.home / f"{name}.log"
        worker = spawn(["worker", "-c", "2"], self.env, self.log)
        self.workers.append(worker)
        log = self.log
        wait_for(lambda: b"ready." in log.read_bytes(), 60, f"{name} to start", log)
        return worker

    def create_rule(self, definition: dict[str, Any]) -> int:
        response = self.client.post("/api/v1/rules", json=definition)
        assert response.status_code == 201, response.get_json()
        rule_id: int = response.get_json()["id"]
        return rule_id

    def verify(self, rule_id: int) -> dict[str, Any]:
        """Verify the rule now through a worker; the verification, once recorded."""
        accepted = self.client.post(f"/api/v1/rules/{rule_id}/verify")
        assert accepted.status_code == 202
        task_id = accepted.get_json()["task_id"]

        def done() -> dict[str, Any] | None:
            body: dict[str, Any] = self.client.get(f"/api/v1/tasks/{task_id}").get_json()
            return body if body["state"] in ("SUCCESS", "FAILURE") else None

        task: dict[str, Any] = wait_for(done, 20, f"verify task {task_id}", self.log)
        assert task["state"] == "SUCCESS", task
        result: dict[str, Any] = task["result"]
        return result

    def settle(self, stranded: frozenset[bytes] = frozenset()) -> None:
        """Wait until the workers have nothing left to do: no queued, running or delayed task
        (a retry or a grouped send waiting for its countdown); ``stranded``: messages a killed
        worker held."""
        idle = self.broker.idle
        wait_for(lambda: idle(stranded), 60, "the workers to finish", self.log)

    def notifications(self) -> list[dict[str, Any]]:
        """The outbox as GET /api/v1/notifications shows it, oldest first."""
        body = self.client.get("/api/v1/notifications?limit=100").get_json()
        rows: list[dict[str, Any]] = body["notifications"]
        return sorted(rows, key=lambda n: n["id"])


@contextlib.contextmanager
def running_stack(
    pg_server: str, home: Path, broker_kind: str = "redis", **settings: str
) -> Iterator[Stack]:
    """A fresh database and an empty broker; every worker started is stopped on the way out."""
    with (
        broker(broker_kind, REDIS_DB) as queues,
        _stack(pg_server, home, queues, settings) as stack,
    ):
        yield stack


@contextlib.contextmanager
def _stack(pg_server: str, home: Path, queues: Broker, settings: dict[str, str]) -> Iterator[Stack]:
    url, name = fresh_database(pg_server)
    stack: Stack | None = None
    try:
        upgrade(url)
        backend = queues.result_backend(url)
        env = {"RULEWATCH_HOME": str(home), "RULEWATCH_DATABASE_URL": url,
               "RULEWATCH_BROKER_URL": queues.url, "RULEWATCH_RESULT_BACKEND": backend,
               "RULEWATCH_SMTP_HOST": "127.0.0.1", "RULEWATCH_SMTP_FROM": SENDER,
               "RULEWATCH_BASE_URL": "http://rulewatch.example", **settings}  # fmt: skip
        app = create_app(load_settings(env))
        sign_in_test_clients(app)  # the API wants a signed-in caller
        stack = Stack(app, app.test_client(), env, home, queues)
        yield stack
    finally:
        for worker in stack.workers if stack else ():
            with contextlib.suppress(subprocess.TimeoutExpired):
                stop(worker)  # kills the group itself when SIGTERM is not enough
            with contextlib.suppress(ProcessLookupError):  # a pool child left behind
                os.killpg(worker.pid, signal.SIGKILL)
        if stack is not None:
            stack.app.extensions["rulewatch"].engine.dispose()
        drop_database(pg_server, name)


@contextlib.contextmanager
def smtp_server(port: int, handler: Inbox) -> Iterator[Inbox]:
    """aiosmtpd on 127.0.0.1:port, keeping what ``handler`` accepts."""
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler
    finally:
        controller.stop()


@dataclass
class StallingInbox(Inbox):
    """Holds the reply to the first DATA until released and then does not keep that message
    (a message is only delivered once the server answers 250 to DATA); keeps later ones."""

    data_calls: int = 0
    blocked: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.data_calls += 1
        if self.data_calls > 1:
            return await super().handle_DATA(server, session, envelope)
        self.blocked.set()
        while not self.release.is_set():  # cancelled by aiosmtpd when the client goes away
            await asyncio.sleep(0.02)
        return "451 4.3.0 not kept: the sender was gone before this reply"


def _parts(message: Message) -> dict[str, str]:
    parts = {}
    for part in message.walk():
        if not part.is_multipart():
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            parts[part.get_content_type()] = payload.decode()
    return parts


def _failing_rule(target: Target, name: str, **alert: Any) -> dict[str, Any]:
    policy = {"emails": [OPS], "failure_threshold": 1, **alert}
    return http_rule(target.url, name=name, interval_s=3600, alert=policy)


def test_an_alert_raised_while_smtp_is_down_is_released_by_the_next_alert_that_goes(
    pg_server: str, tmp_path: Path
) -> None:
    port = free_port()  # nothing listens here until the test starts the SMTP server
    with (
        running_stack(pg_server, tmp_path, RULEWATCH_SMTP_PORT=str(port)) as stack,
        Target() as target,
    ):
        stack.start_worker("worker")
        target.status = 500
        rule_id = stack.create_rule(_failing_rule(target, "payments"))
        assert stack.verify(rule_id)["status"] == "fail"

        def unreachable() -> list[dict[str, Any]] | None:
            rows = stack.notifications()
            stuck = all(
                r["status"] == "pending" and "unreachable" in (r["last_error"] or "") for r in rows
            )
            return rows if rows and stuck else None

        [row] = wait_for(unreachable, 15, "the send to fail on an unreachable server", stack.log)
        assert row["subject"] == "[FIRING] payments" and row["attempts"] == 1
        inbox = Inbox()
        with smtp_server(port, inbox):  # no beat here: the next send that goes releases it
            other = stack.create_rule(_failing_rule(target, "ledger"))
            assert stack.verify(other)["status"] == "fail"
            wait_for(lambda: len(inbox.messages) >= 2, 20, "both alerts", stack.log)
            stack.settle()  # a second delivery would come from a task still queued or held
            rows = stack.notifications()
    assert [m["Subject"] for m in inbox.messages] == ["[FIRING] ledger", "[FIRING] payments"]
    assert [(r["status"], r["attempts"], r["last_error"]) for r in rows] == [
        ("sent", 2, None),
        ("sent", 1, None),
    ]


@pytest.mark.parametrize("broker_kind", BROKERS)
def test_a_send_whose_worker_was_killed_is_relayed_once_its_lease_ran_out(
    pg_server: str, tmp_path: Path, broker_kind: str
) -> None:
    # the killed sender waited for the reply to DATA: the server never said 250, so nothing
    # was delivered; the client would give up after TIMEOUT_S, so it is killed well before
    handler = StallingInbox()
    port = free_port()
    settings = {"RULEWATCH_SMTP_PORT": str(port), "RULEWATCH_SMTP_TIMEOUT_S": "2",
                "RULEWATCH_SMTP_LEASE_S": "5"}  # fmt: skip
    with (
        running_stack(pg_server, tmp_path, broker_kind, **settings) as stack,
        Target() as target,
        smtp_server(port, handler),
    ):
        worker_a = stack.start_worker("worker-a")
        target.status = 500
        rule_id = stack.create_rule(_failing_rule(target, "ledger"))
        assert stack.verify(rule_id)["status"] == "fail"
        assert handler.blocked.wait(15), "worker A never reached DATA"
        os.killpg(worker_a.pid, signal.SIGKILL)
        worker_a.wait(10)
        stranded = stack.broker.unacknowledged()
        handler.release.set()
        with stack.factory() as session:
            [held] = session.scalars(select(Notification))
        assert held.status == "sending" and held.attempts == 1
        assert held.claimed_until is not None and held.claimed_until > utcnow()
        stack.start_worker("worker-b")
        from rulewatch.tasks import verify_all_rules

        lease_end = held.claimed_until
        wait_for(lambda: utcnow() > lease_end, 30, "worker A's lease to run out", stack.log)
        relayed = verify_all_rules.apply_async().get(timeout=20)
        assert relayed["notifications_relayed"] == 1
        wait_for(lambda: handler.messages, 20, "worker B to send the relayed row", stack.log)
        stack.settle(stranded)
        [message] = handler.messages
        [row] = stack.notifications()
    assert handler.data_calls == 2
    assert message["Subject"] == "[FIRING] ledger"
    assert f"rulewatch-notification-{row['id']}" in message["Message-ID"]
    assert row["status"] == "sent" and row["attempts"] == 2


def test_it_reminds_once_an_interval_passed_then_resolves(pg_server: str, tmp_path: Path) -> None:
    inbox = Inbox()
    port = free_port()
    with (
        running_stack(pg_server, tmp_path, RULEWATCH_SMTP_PORT=str(port)) as stack,
        Target() as target,
        smtp_server(port, inbox),
    ):
        stack.start_worker("worker")
        rule = _failing_rule(target, "billing", reminder_interval_s=60, success_threshold=2)
        rule_id = stack.create_rule(rule)
        target.status = 500
        assert stack.verify(rule_id)["status"] == "fail"
        wait_for(lambda: inbox.messages, 20, "the firing email", stack.log)
        assert stack.verify(rule_id)["status"] == "fail"
        assert len(stack.notifications()) == 1, "a reminder before its interval"
        stack.settle()
        assert len(inbox.messages) == 1
        with transaction(stack.factory) as session:  # as if 61 s had passed since the firing
            stored = session.get(Rule, rule_id)
            assert stored is not None and stored.alert_state is not None
            state = dict(stored.alert_state)
            last = datetime.fromisoformat(state["last_notified_at"])
            state["last_notified_at"] = (last - timedelta(seconds=61)).isoformat()
            stored.alert_state = state
        assert stack.verify(rule_id)["status"] == "fail"
        wait_for(lambda: len(inbox.messages) >= 2, 20, "the reminder email", stack.log)
        target.status = 200
        assert stack.verify(rule_id)["status"] == "pass"
        assert stack.verify(rule_id)["status"] == "pass"
        wait_for(lambda: len(inbox.messages) >= 3, 20, "the resolved email", stack.log)
        stack.settle()  # the resolved row is marked sent after the server accepted it
        rows = stack.notifications()
    subjects = [m["Subject"] for m in inbox.messages]
    assert subjects == ["[FIRING] billing", "[STILL FIRING] billing", "[RESOLVED] billing"]
    assert [r["kind"] for r in rows] == ["firing", "reminder", "resolved"]
    assert all(r["status"] == "sent" for r in rows)


@pytest.mark.parametrize("broker_kind", BROKERS)
def test_a_ticks_alerts_reach_each_recipient_as_one_email_once_its_last_batch_reports(
    pg_server: str, tmp_path: Path, broker_kind: str
) -> None:
    # the tick claims 3 rules, then 2 (two turns of its loop), in chunks of 2: three batches;
    # its alert latch sends the emails when the last reports, long before the group wait
    inbox = Inbox()
    port = free_port()
    settings = {"RULEWATCH_SMTP_PORT": str(port), "RULEWATCH_CHUNK_SIZE": "2",
                "RULEWATCH_CLAIM_BATCH": "3", "RULEWATCH_ALERT_GROUP_WAIT_S": "60"}  # fmt: skip
    names = [f"storm {i}" for i in range(5)]
    with (
        running_stack(pg_server, tmp_path, broker_kind, **settings) as stack,
        Target() as target,
        smtp_server(port, inbox),
    ):
        stack.start_worker("worker")
        target.status = 500
        ids = [
            stack.create_rule(_failing_rule(target, name, emails=[OPS, DEV] if i >= 3 else [OPS]))
            for i, name in enumerate(names)
        ]
        with transaction(stack.factory) as session:  # all due now, not spread over an hour
            session.execute(
                update(Rule)
                .where(Rule.id.in_(ids))
                .values(next_due_at=utcnow() - timedelta(seconds=1))
            )
        from rulewatch.tasks import verify_all_rules

        tick = verify_all_rules.apply_async().get(timeout=20)
        assert tick["dispatched"] == 5

        def both() -> bool:
            return {m["To"] for m in inbox.messages} == {OPS, DEV}

        # the group wait (60 s) would send them only at a tick 60 s from now; none comes
        wait_for(both, 25, "the grouped emails, sent by the tick's alert latch", stack.log)
        stack.settle()  # a straggler of the tick would be a send still queued or running
        rows = stack.notifications()
        with stack.factory() as session:
            latches = session.scalar(select(func.count()).select_from(TickLatch))
        assert stack.log is not None
        log = stack.log.read_text(errors="replace")
    batches = re.findall(r"Task rulewatch\.verify_batch\[[^\]]+\] received", log)
    assert len(batches) == 2, "the tick's 5 rules were not split in chunks of 2"
    by_to: dict[str, list[Message]] = {}
    for message in inbox.messages:
        by_to.setdefault(str(message["To"]), []).append(message)
    [ops] = by_to.pop(OPS)
    [dev] = by_to.pop(DEV)
    assert by_to == {}
    assert ops["Subject"].startswith("[FIRING] 5 rules: ")
    assert dev["Subject"] == "[FIRING] 2 rules: storm 3, storm 4"
    for message, listed in ((ops, names), (dev, names[3:])):
        assert message.is_multipart()
        parts = _parts(message)
        assert set(parts) == {"text/plain", "text/html"}
        for text in parts.values():
            assert [n for n in names if n in text] == listed
    assert len(rows) == 7 and {r["status"] for r in rows} == {"sent"}
    assert sorted(r["recipients"][0] for r in rows) == [DEV] * 2 + [OPS] * 5
    assert latches == 0, "a released latch is deleted"
