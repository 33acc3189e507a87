"""Rows that could not go wait on their channel: a send that succeeds releases them in id
order, a rule's later row never overtakes its earlier one, the relay probes a down channel
with one row at a time, and a row is given up by age, not by a count of tries. Real SMTP
servers (aiosmtpd, and a socket that hangs up to count connections), every database."""

from __future__ import annotations

import socket
import threading
from datetime import timedelta

from aiosmtpd.controller import Controller
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from rulewatch.config import SmtpSettings
from rulewatch.db import transaction
from rulewatch.models import Notification, utcnow
from rulewatch.services.notifications import (
    GIVE_UP_AFTER_S,
    PROBE_EVERY_S,
    due_for_relay,
    probe_wait_s,
    release,
    send,
)
from rulewatch.services.rules import create_rule
from tests.smtp_server import Inbox
from tests.targets import http_rule

OPS, DEV = "ops@example.com", "dev@example.com"


def _settings(port: int) -> SmtpSettings:
    return SmtpSettings(host="127.0.0.1", port=port, sender="rulewatch@example.com", timeout_s=5)


def _rule(factory: sessionmaker[Session], name: str) -> int:
    with transaction(factory) as session:
        return create_rule(session, http_rule("http://127.0.0.1:9/", name=name), utcnow()).id


def _alert(factory: sessionmaker[Session], rule_id: int | None, kind: str, to: str = OPS) -> int:
    with transaction(factory) as session:
        row = Notification(
            rule_id=rule_id, kind=kind, recipients=[to], subject=f"[{kind.upper()}] {rule_id}",
            body_text=kind, body_html=f"<p>{kind}</p>", status="pending", attempts=0,
        )  # fmt: skip
        session.add(row)
        session.flush()
        return row.id


def _rows(factory: sessionmaker[Session]) -> dict[int, tuple[str, int, str | None]]:
    """Each row's status, attempts and last error, by id."""
    query = select(Notification.id, Notification.status, Notification.attempts,
                   Notification.last_error)  # fmt: skip
    with factory() as session:
        return {r.id: (r.status, r.attempts, r.last_error) for r in session.execute(query)}


def _delivered(inbox: Inbox) -> list[int]:
    """Row ids in the order the server accepted their messages (one row per message here)."""
    return [int(str(m["Message-ID"]).split("-")[-1].split("@")[0]) for m in inbox.messages]


def _start(inbox: Inbox, port: int) -> Controller:
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    return controller


def test_a_send_that_goes_releases_the_rows_waiting_on_its_channel_in_id_order(
    factory: sessionmaker[Session], smtp_port: int
) -> None:
    smtp = _settings(smtp_port)
    rules = [_rule(factory, f"api {n}") for n in range(3)]
    waiting = [_alert(factory, rule_id, "firing") for rule_id in rules]
    assert [send(factory, smtp, nid) for nid in waiting] == ["pending"] * 3  # SMTP is down
    inbox = Inbox()
    controller = _start(inbox, smtp_port)
    try:
        digest = _alert(factory, None, "digest")
        assert send(factory, smtp, digest) == "sent"
    finally:
        controller.stop()
    assert _delivered(inbox) == [digest, *waiting]
    rows = _rows(factory)
    assert all(rows[nid] == ("sent", 2, None) for nid in waiting), rows


def test_a_rules_later_alert_waits_for_its_earlier_one_to_the_same_recipients(
    factory: sessionmaker[Session], smtp_port: int
) -> None:
    smtp = _settings(smtp_port)
    rule_id, other = _rule(factory, "payments"), _rule(factory, "ledger")
    firing = _alert(factory, rule_id, "firing")
    assert send(factory, smtp, firing) == "pending"  # SMTP is down
    inbox = Inbox()
    controller = _start(inbox, smtp_port)
    try:
        resolved = _alert(factory, rule_id, "resolved")
        assert send(factory, smtp, resolved) == "pending", "the firing has not gone yet"
        _, attempts, why = _rows(factory)[resolved]
        assert attempts == 0 and why == (
            f"waiting for notification {firing} (same rule, same recipients) to go first"
        )
        to_dev = _alert(factory, rule_id, "resolved", to=DEV)
        assert send(factory, smtp, to_dev) == "sent", "other recipients: another stream"
    finally:
        controller.stop()
    assert _delivered(inbox) == [to_dev, firing, resolved]  # released behind the send to dev
    assert {nid: r[:2] for nid, r in _rows(factory).items()} == {
        firing: ("sent", 2),
        resolved: ("sent", 1),
        to_dev: ("sent", 1),
    }
    assert other  # a rule with no alerts holds nothing


def test_two_workers_releasing_at_once_send_each_row_once_and_each_rule_in_order(
    factory: sessionmaker[Session], smtp_port: int
) -> None:
    smtp = _settings(smtp_port)
    rules = [_rule(factory, f"api {n}") for n in range(4)]
    streams = {rule_id: [_alert(factory, rule_id, kind) for kind in ("firing", "resolved")]
               for rule_id in rules}  # fmt: skip
    for ids in streams.values():
        assert [send(factory, smtp, nid) for nid in ids] == ["pending", "pending"]
    inbox = Inbox()
    controller = _start(inbox, smtp_port)
    start = threading.Barrier(2)
    released: list[int] = []

    def worker() -> None:
        start.wait()
        released.append(release(factory, smtp, "email"))

    try:
        threads = [threading.Thread(target=worker) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        controller.stop()
    delivered = _delivered(inbox)
    assert sorted(delivered) == sorted(nid for ids in streams.values() for nid in ids)
    assert sum(released) == len(delivered) == 8, released
    for firing, resolved in streams.values():
        assert delivered.index(firing) < delivered.index(resolved)
    assert {r[0] for r in _rows(factory).values()} == {"sent"}


def test_the_relay_probes_a_down_channel_with_its_first_waiting_row_only(
    factory: sessionmaker[Session], smtp_port: int
) -> None:
    smtp = _settings(smtp_port)
    first, second = (_alert(factory, _rule(factory, f"api {n}"), "firing") for n in range(2))
    assert [send(factory, smtp, first), send(factory, smtp, second)] == ["pending"] * 2
    later = utcnow() + timedelta(seconds=PROBE_EVERY_S + 1)
    with transaction(factory) as session:
        assert due_for_relay(session, later) == [first]
    with transaction(factory) as session:
        assert due_for_relay(session, later) == [], "the probe is in flight: leased"
    assert [probe_wait_s(n) for n in range(1, 7)] == [2, 4, 8, 15, 15, 15]


def test_an_hour_of_tries_gives_no_row_up_a_day_does(
    factory: sessionmaker[Session], smtp_port: int
) -> None:
    smtp = _settings(smtp_port)
    nid = _alert(factory, _rule(factory, "payments"), "firing")
    hour = 3600 // PROBE_EVERY_S  # the probes of an hour-long outage
    for _ in range(hour):
        assert send(factory, smtp, nid) == "pending"
    with transaction(factory) as session:
        assert due_for_relay(session, utcnow() + timedelta(hours=23)) == [nid]
    assert _rows(factory)[nid][:2] == ("pending", hour)
    with transaction(factory) as session:
        after = utcnow() + timedelta(seconds=GIVE_UP_AFTER_S + 60)
        assert due_for_relay(session, after) == []
    status, attempts, why = _rows(factory)[nid]
    assert (status, attempts) == ("failed", hour)
    assert why and why.startswith("not delivered within 24 h; last error: SMTP server")
    assert "unreachable" in why


class HangingUp:
    """A TCP server that accepts and closes each connection at once (an SMTP server that is
    down behind a load balancer, say): it counts the connections, i.e. the real tries."""

    def __init__(self, port: int) -> None:
        self.connections = 0
        self.sock = socket.create_server(("127.0.0.1", port))
        self.sock.settimeout(0.1)  # so that close() is noticed between connections
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        """Stop accepting."""
        self.closed.set()
        self.thread.join(5)
        self.sock.close()


def test_attempts_count_the_tries_that_reached_for_the_server(
    factory: sessionmaker[Session], smtp_port: int
) -> None:
    smtp = _settings(smtp_port)
    rule_id = _rule(factory, "payments")
    firing = _alert(factory, rule_id, "firing")
    down = HangingUp(smtp_port)
    try:
        assert send(factory, smtp, firing) == "pending"
        resolved = _alert(factory, rule_id, "resolved")
        for _ in range(3):  # held behind the firing: never tried
            assert send(factory, smtp, resolved) == "pending"
        with transaction(factory) as session:  # the relay's probe
            assert due_for_relay(session, utcnow() + timedelta(seconds=3)) == [firing]
        assert send(factory, smtp, firing) == "pending"
        assert send(factory, SmtpSettings(host=""), firing) == "unsent"  # nothing to try
    finally:
        down.close()
    rows = _rows(factory)
    assert down.connections == 2
    assert (rows[firing][:2], rows[resolved][:2]) == (("unsent", 2), ("pending", 0))
    assert rows[resolved][2] == (
        f"waiting for notification {firing} (same rule, same recipients) to go first"
    )
