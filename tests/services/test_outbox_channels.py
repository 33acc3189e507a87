"""The outbox drives any registered transport: a test-only webhook against a real HTTP receiver."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from rulewatch.config import Settings
from rulewatch.db import transaction
from rulewatch.models import Notification
from rulewatch.notifiers import (
    TRANSPORTS,
    PermanentSendError,
    TransientSendError,
    TransportConfig,
)
from rulewatch.services.notifications import send
from rulewatch.tasks import send_notification


class Receiver:
    """A real HTTP server that answers POSTs with the statuses queued, then 200; keeps bodies."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.received: list[Any] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                if status == 200:
                    receiver.received.append(json.loads(body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


class Webhook:
    """A minimal webhook transport: one JSON POST per group to the row's first recipient."""

    def group_key(self, event: str, tick: str | None, recipient: str) -> str | None:
        """A tick's events to one URL go in one POST."""
        return None if tick is None else f"{event}:{tick}:{recipient}"

    def lease_s(self, config: TransportConfig) -> float:
        """Longer than the POST's timeout."""
        return 30.0

    def send(self, rows: Sequence[Notification], config: TransportConfig) -> None:
        """POST the rows; 4xx is permanent, 5xx and no answer are transient."""
        url = rows[0].recipients[0]
        body = json.dumps([{"id": r.id, "subject": r.subject} for r in rows]).encode()
        request = urllib.request.Request(url, data=body, method="POST")
        request.add_header("Content-Type", "application/json")
        try:
            urllib.request.urlopen(request, timeout=5).close()
        except urllib.error.HTTPError as exc:
            reason = f"webhook {url} answered {exc.code}"
            if exc.code >= 500:
                raise TransientSendError(reason) from exc
            raise PermanentSendError(f"{reason}: check the URL and its token") from exc
        except OSError as exc:
            raise TransientSendError(f"webhook {url} unreachable: {exc}") from exc


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    """A running receiver, with the test-only "webhook" channel registered while it runs."""
    monkeypatch.setitem(TRANSPORTS, "webhook", Webhook())
    receiver = Receiver()
    yield receiver
    receiver.close()


def _rows(
    factory: sessionmaker[Session], channel: str, to: str, count: int = 1,
    group_key: str | None = None,
) -> list[int]:  # fmt: skip
    with transaction(factory) as session:
        rows = [_row_to(channel, to, f"[FIRING] api {n}", group_key) for n in range(count)]
        session.add_all(rows)
        session.flush()
        return [row.id for row in rows]


def _row_to(channel: str, to: str, subject: str, group_key: str | None) -> Notification:
    return Notification(
        channel=channel, kind="firing", recipients=[to], subject=subject,
        body_text="api is failing", body_html="<p>api is failing</p>", group_key=group_key,
    )  # fmt: skip


def _state(factory: sessionmaker[Session], nid: int) -> tuple[str, int, str | None]:
    """The row's status, attempts and last error."""
    with factory() as session:
        row = session.execute(
            select(Notification.status, Notification.attempts, Notification.last_error).where(
                Notification.id == nid
            )
        ).one()
        return row.status, row.attempts, row.last_error


def test_a_send_of_another_channel_that_goes_releases_the_row_that_did_not(
    app: Flask, receiver: Receiver
) -> None:
    factory = app.extensions["rulewatch"].factory
    first, second = _rows(factory, "webhook", receiver.url, count=2)
    receiver.statuses = [503]
    assert send_notification.apply(args=(first,)).get() == "pending"
    assert _state(factory, first) == ("pending", 1, f"webhook {receiver.url} answered 503")
    assert send_notification.apply(args=(second,)).get() == "sent"
    assert receiver.received == [[{"id": second, "subject": "[FIRING] api 1"}],
                                 [{"id": first, "subject": "[FIRING] api 0"}]]  # fmt: skip
    assert _state(factory, first) == ("sent", 2, None)


def test_it_marks_a_row_its_channel_refuses_failed_with_the_reason(
    factory: sessionmaker[Session], settings: Settings, receiver: Receiver
) -> None:
    [nid] = _rows(factory, "webhook", receiver.url)
    receiver.statuses = [404]
    assert send(factory, settings, nid) == "failed"
    assert send(factory, settings, nid) == "failed", "a failed row is not tried again"
    reason = f"webhook {receiver.url} answered 404: check the URL and its token"
    assert _state(factory, nid) == ("failed", 1, reason)
    assert receiver.received == []


def test_it_sends_a_group_of_another_channel_once_and_leaves_other_channels_out(
    factory: sessionmaker[Session], settings: Settings, receiver: Receiver
) -> None:
    key = f"firing:tick-1:{receiver.url}"
    ids = _rows(factory, "webhook", receiver.url, count=3, group_key=key)
    [email] = _rows(factory, "email", "ops@example.com", group_key=key)
    assert [send(factory, settings, nid) for nid in ids] == ["sent"] * 3
    assert receiver.received == [[{"id": nid, "subject": f"[FIRING] api {n}"}
                                  for n, nid in enumerate(ids)]]  # fmt: skip
    assert _state(factory, email)[0] == "pending", "same key, other channel: not in the group"


def test_it_leaves_a_row_of_an_unknown_channel_unsent_and_says_why(
    factory: sessionmaker[Session], settings: Settings
) -> None:
    [nid] = _rows(factory, "pager", "+15550100")
    assert send(factory, settings, nid) == "unsent"
    status, _, reason = _state(factory, nid)
    assert status == "unsent" and reason and "no 'pager' channel (known: email)" in reason
