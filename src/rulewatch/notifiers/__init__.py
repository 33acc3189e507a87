"""Notification transports, found by the channel kind an outbox row names.

``TRANSPORTS`` maps a kind to its `Transport`; the outbox (`services/notifications`) claims
rows, asks the row's transport to send them, and records what it answered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rulewatch.models import Notification
from rulewatch.notifiers.email import Email
from rulewatch.notifiers.transport import (
    NotConfigured,
    PermanentSendError,
    TransientSendError,
    Transport,
    TransportConfig,
)

__all__ = [
    "TRANSPORTS",
    "NotConfigured",
    "PermanentSendError",
    "TransientSendError",
    "Transport",
    "TransportConfig",
    "transport_for",
]

TRANSPORTS: dict[str, Transport] = {"email": Email()}


def transport_for(channel: str) -> Transport:
    """The transport of ``channel``; one that sends nothing, and says why, if none is known."""
    return TRANSPORTS.get(channel) or _Unknown(channel)


@dataclass(frozen=True)
class _Unknown:
    """A row naming a channel this rulewatch lacks (written by a newer version, say)."""

    channel: str

    def group_key(self, event: str, tick: str | None, recipient: str) -> str | None:
        return None

    def lease_s(self, config: TransportConfig) -> float:
        return 60.0

    def send(self, rows: Sequence[Notification], config: TransportConfig) -> None:
        known = ", ".join(sorted(TRANSPORTS))
        raise NotConfigured(
            f"not sent: this rulewatch has no {self.channel!r} channel (known: {known});"
            " upgrade the workers to the version that wrote it"
        )
