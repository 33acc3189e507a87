"""A real SMTP server for tests (aiosmtpd) that keeps what it accepts."""

from __future__ import annotations

import email
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller


@dataclass
class Inbox:
    """Collects what the SMTP server accepted; can refuse recipients with a 550."""

    messages: list[Message] = field(default_factory=list)
    refuse: bool = False

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if self.refuse:
            return "550 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def smtp_port() -> int:
    """A free port for an SMTP server."""
    return _free_port()


@pytest.fixture
def inbox(smtp_port: int) -> Iterator[Inbox]:
    """A running SMTP server on ``smtp_port`` and the messages it accepted."""
    box = Inbox()
    controller = Controller(box, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    yield box
    controller.stop()
