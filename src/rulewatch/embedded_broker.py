"""The embedded broker: kombu's filesystem transport, safe against torn and unreadable messages.

kombu's own transport writes a message file in place while workers poll the folder, so a
worker can take a file its writer has not finished, and it parses what it read unguarded:
the ``JSONDecodeError`` escapes the consumer and Celery stops the worker as unrecoverable
(kombu issue 1551). Here a message is written under a name no reader looks at and renamed
into place, so a reader sees a whole file or none; a file that still cannot be made into a
message (corrupt, truncated by a crash, written by something else) is moved to ``bad/``
with one log line, and the worker goes on to the next. The exchange tables every process
updates as it declares its queues are rewritten whole, under a lock, for the same reason.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from queue import Empty
from time import monotonic_ns
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.json import dumps, loads

logger = logging.getLogger(__name__)

BAD_FOLDER = "bad"
# readers take "<stamp>_<uuid>.<queue>.msg"; a name starting with a dot is never one of those
TEMP_PREFIX = ".writing-"
TAKEN_PREFIX = ".taken-"


class Channel(filesystem.Channel):
    """A filesystem channel whose messages appear whole and whose bad files are set aside."""

    # the stubs name this argument differently in kombu's two base classes; we follow the nearest
    def _put(self, queue: str, payload: dict[str, Any], **kwargs: Any) -> None:  # type: ignore[override]
        """Write the message under a temporary name, then rename it into the queue."""
        # kombu's name scheme with a finer, fixed-width stamp: readers sort by name, so the
        # queue stays in write order even for messages written in the same millisecond
        name = f"{monotonic_ns():020d}_{uuid.uuid4()}.{queue}.msg"
        folder = Path(self.data_folder_out)
        try:
            _write_atomically(folder / name, dumps(payload).encode())
        except OSError as exc:
            raise ChannelError(f"Cannot add file {name!r} to {folder}: {exc}") from exc

    def _get(self, queue: str, timeout: float | None = None) -> dict[str, Any]:
        """Take the oldest readable message of ``queue``; set aside any that cannot be read."""
        folder = Path(self.data_folder_in)
        for name in sorted(os.listdir(folder)):
            if name.partition(".")[2] != f"{queue}.msg":
                continue
            taken = _take(folder, name)
            if taken is None:
                continue  # another consumer took it first
            payload = self._read(taken, name)
            if payload is not None:
                return payload
        raise Empty()

    def _queue_bind(self, exchange: str, routing_key: str, pattern: str | None, queue: str) -> None:
        """Add a binding to the exchange's table, rewritten whole under a lock of its own."""
        # kombu creates the table in place, so a process starting beside another could read
        # it empty and fail to start; readers of a table written this way never see it torn
        file = self.control_folder / f"{exchange}.exchange"  # kombu's name (checked by get_table)
        entry = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        try:
            self.control_folder.mkdir(exist_ok=True)
            with _exclusive(file.with_name(f"{file.name}.lock")):
                table = self._table_or_empty(exchange, file)
                if entry not in table:
                    _write_atomically(file, dumps([entry, *table]).encode())
        except OSError as exc:
            raise ChannelError(f"Cannot write exchange table {file}: {exc}") from exc

    def _table_or_empty(self, exchange: str, file: Path) -> list[filesystem.exchange_queue_t]:
        """The exchange's table; empty, with a log line, if it cannot be read."""
        try:
            return self.get_table(exchange)
        # empty is what kombu's own writer leaves while it creates a table; anything else
        # unreadable would fail every declare and publish, so it is written anew
        except (ValueError, TypeError) as exc:
            logger.error("embedded broker: rewriting unreadable exchange table %s (%s: %s)",
                         file.name, type(exc).__name__, exc)  # fmt: skip
            return []

    def _read(self, taken: Path, name: str) -> dict[str, Any] | None:
        """The message in ``taken`` (then deleted), or None once it is quarantined."""
        try:
            payload: dict[str, Any] = loads(taken.read_bytes())
            self.Message(payload, channel=self)  # what the consumer will build from it
        except OSError as exc:
            raise ChannelError(f"Cannot read message file {name!r}: {exc}") from exc
        except Exception as exc:  # anything that is not a message must not stop the worker
            _quarantine(taken, taken.parent / BAD_FOLDER / name, f"{type(exc).__name__}: {exc}")
            return None
        taken.unlink(missing_ok=True)
        return payload


class Transport(filesystem.Transport):
    """kombu's filesystem transport with :class:`Channel`; selected by ``broker_transport``."""

    Channel = Channel


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the whole file or no file."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=TEMP_PREFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


@contextlib.contextmanager
def _exclusive(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_file`` (created if missing) for the block."""
    with lock_file.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _quarantine(taken: Path, destination: Path, reason: str) -> None:
    """Move an unreadable message file aside and say which and why in one log line."""
    try:
        destination.parent.mkdir(exist_ok=True)
        os.replace(taken, destination)
    except OSError as exc:  # keeping it is a courtesy; never let it block the queue
        taken.unlink(missing_ok=True)
        logger.error("embedded broker: deleted unreadable message %s (%s; not kept: %s)",
                     destination.name, reason, exc)  # fmt: skip
        return
    logger.error("embedded broker: moved unreadable message %s to %s (%s)",
                 destination.name, destination.parent, reason)  # fmt: skip


def _take(folder: Path, name: str) -> Path | None:
    """Rename a message file to a name only this consumer knows; None if it is gone."""
    taken = folder / f"{TAKEN_PREFIX}{name}"
    try:
        os.rename(folder / name, taken)  # atomic: of two consumers, exactly one wins
    except FileNotFoundError:
        return None
    return taken
