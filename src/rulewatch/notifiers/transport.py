"""What a notification channel must do to be driven by the outbox (`services/notifications`).

The outbox claims rows, hands a transport the rows that go out together, and records the
outcome; the transport knows only its wire. It says how the try ended by returning (sent) or
by raising one of the three errors below, each with a reason a person can act on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from rulewatch.config import Settings, SmtpSettings
from rulewatch.models import Notification

# the deployment's settings; an SmtpSettings alone stands for settings with only email set up
TransportConfig = Settings | SmtpSettings


class TransientSendError(Exception):
    """The channel could not take the message now (unreachable, busy); worth trying later."""


class PermanentSendError(Exception):
    """The channel refused the message; sending it again would fail the same way."""


class NotConfigured(Exception):
    """This rulewatch is not set up for the channel, so nothing was tried."""


class Transport(Protocol):
    """One kind of channel (email, webhook ...): how its rows are grouped and sent."""

    def group_key(self, event: str, tick: str | None, recipient: str) -> str | None:
        """Rows with one key go out as one message; None sends the row on its own."""
        ...

    def lease_s(self, config: TransportConfig) -> float:
        """How long a sender may hold rows: more than a slow send of one group can take."""
        ...

    def send(self, rows: Sequence[Notification], config: TransportConfig) -> None:
        """Deliver ``rows`` (one, or one group) as one message, or raise why not."""
        ...
