"""Ids of the report tasks the API starts, signed so that the API can tell them from others.

Celery answers PENDING for a task id it has never heard of, so a result backend alone
cannot tell "unknown" from "waiting in the queue". A report task id carries the time it was
issued and an HMAC of it under a key derived from RULEWATCH_SECRET_KEY: an id that does not
verify was not started by this deployment (404), and one older than the result expiry has
no result left to fetch (404). Nothing is stored; every web process can check any id.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

PREFIX = "report-"
_LABEL = b"rulewatch report task ids v1"
_ID = re.compile(r"report-([0-9]{1,10})-([0-9a-f]{16})-([0-9a-f]{32})")


@dataclass(frozen=True)
class ReportTaskIds:
    """Issues report task ids and checks them, with the current and any previous secret key."""

    keys: tuple[bytes, ...]  # the current key first

    @classmethod
    def from_secret_keys(cls, current: str, previous: Sequence[str] = ()) -> ReportTaskIds:
        """Signing keys derived from the secret key (and previous ones, still accepted)."""
        derive = [
            hmac.new(k.encode(), _LABEL, hashlib.sha256).digest() for k in (current, *previous)
        ]
        return cls(tuple(derive))

    def new(self, now: datetime) -> str:
        """A fresh task id issued at ``now``."""
        body = f"{int(now.timestamp())}-{secrets.token_hex(8)}"
        return f"{PREFIX}{body}-{self._mac(self.keys[0], body)}"

    def issued_at(self, task_id: str) -> datetime | None:
        """When ``task_id`` was issued, or None when this deployment did not issue it."""
        match = _ID.fullmatch(task_id)
        if match is None:
            return None
        stamp, nonce, mac = match.groups()
        body = f"{stamp}-{nonce}"
        if not any(hmac.compare_digest(mac, self._mac(key, body)) for key in self.keys):
            return None
        return datetime.fromtimestamp(int(stamp), UTC)

    @staticmethod
    def _mac(key: bytes, body: str) -> str:
        return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()[:32]
