"""Data source DSNs encrypted at rest: Fernet with a key derived from RULEWATCH_SECRET_KEY.

A stored DSN reads ``fernet:v1:<token>``; anything else is a DSN stored in plain text by an
earlier version, still read, and encrypted by ``rulewatch db upgrade``. The Fernet key is
HKDF-SHA256 of the secret key with a fixed label, so the same secret key always gives the
same Fernet key and no key of its own has to be kept. ``RULEWATCH_SECRET_KEY_PREVIOUS``
still decrypts (a key rotation); ``rulewatch db upgrade`` re-encrypts under the current key.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREFIX = "fernet:v1:"
# changing the label changes every key: stored DSNs would no longer decrypt
HKDF_INFO = b"rulewatch data source DSN encryption v1"


class DsnUndecryptable(ValueError):
    """A stored DSN that none of the keys decrypts (the secret key changed)."""


def derive_fernet_key(secret_key: str) -> bytes:
    """The Fernet key (url-safe base64 of 32 bytes) derived from ``secret_key``."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO)
    return base64.urlsafe_b64encode(hkdf.derive(secret_key.encode()))


def is_encrypted(stored: str) -> bool:
    """True when ``stored`` is in the encrypted form (whichever key made it)."""
    return stored.startswith(PREFIX)


@dataclass(frozen=True)
class DsnCipher:
    """Encrypts DSNs with the current secret key; decrypts with it or a previous one."""

    current: Fernet
    all_keys: MultiFernet

    @classmethod
    def from_secret_keys(cls, current: str, previous: Sequence[str] = ()) -> DsnCipher:
        """A cipher for ``current``, also reading what ``previous`` keys encrypted."""
        fernets = [Fernet(derive_fernet_key(key)) for key in (current, *previous) if key]
        return cls(fernets[0], MultiFernet(fernets))

    def encrypt(self, dsn: str) -> str:
        """The stored form of ``dsn``."""
        return PREFIX + self.current.encrypt(dsn.encode()).decode()

    def decrypt(self, stored: str) -> str:
        """A stored value's DSN (plain text passes through); DsnUndecryptable when no key fits."""
        if not is_encrypted(stored):
            return stored
        try:
            return self.all_keys.decrypt(stored.removeprefix(PREFIX).encode()).decode()
        except (InvalidToken, UnicodeDecodeError):
            raise DsnUndecryptable("no configured secret key decrypts it") from None

    def reencrypted(self, stored: str) -> str | None:
        """``stored`` encrypted under the current key, or None when it already is."""
        if not is_encrypted(stored):
            return self.encrypt(stored)
        token = stored.removeprefix(PREFIX).encode()
        try:
            self.current.decrypt(token)
            return None
        except InvalidToken:
            pass
        try:
            return PREFIX + self.all_keys.rotate(token).decode()
        except InvalidToken:
            raise DsnUndecryptable("no configured secret key decrypts it") from None
