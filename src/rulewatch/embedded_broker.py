"""The embedded broker: kombu's filesystem transport, safe against torn and unreadable messages.

kombu's own transport writes a message file in place while workers poll the folder, so a
worker can take a file its writer has not finished, and it parses what it read unguarded:
the ``JSONDecodeError`` escapes the consumer and Celery stops the worker as unrecoverable
(kombu issue 1551). Here a message is written under a name no reader looks at and renamed
into place, so a reader sees a whole file or none; a file that still cannot be made into a
message (corrupt, truncated by a crash, written by something else) is moved to ``bad/``
with one log line, and the worker goes on to the next. The exchange tables every process
updates as it declares its queues are rewritten whole, under a lock, for the same reason.

kombu's transport also forgets a message once a worker has read it, so a worker killed with
-9 loses the tasks it held, although they are acknowledged late. Here a taken message stays
on disk under a name that says which process took it until it is acknowledged, and a
consumer gives back to the queue what a process that is gone had taken (one machine, as the
embedded broker is: process ids are this machine's).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from queue import Empty
from time import monotonic_ns
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem, virtual
from kombu.utils.json import dumps, loads

logger = logging.getLogger(__name__)

BAD_FOLDER = "bad"
# readers take "<stamp>_<uuid>.<queue>.msg"; a name starting with a dot is never one of those
TEMP_PREFIX = ".writing-"
TAKEN_PREFIX = ".taken-"


class QoS(virtual.QoS):
    """kombu's QoS that also deletes a message's file once the consumer is done with it."""

    def ack(self, delivery_tag: str) -> None:
        """Acknowledge the message and delete its file."""
        super().ack(delivery_tag)
        if isinstance(self.channel, Channel):
            self.channel.forget(delivery_tag)

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        """Reject the message (put back as a new file if ``requeue``) and delete its file."""
        super().reject(delivery_tag, requeue=requeue)
        if isinstance(self.channel, Channel):
            self.channel.forget(delivery_tag)


class Channel(filesystem.Channel):
    """A filesystem channel whose messages appear whole and whose bad files are set aside.

    A message taken by a consumer stays on disk, renamed for the taking process, until it
    is acknowledged: if that process dies, the next consumer gives it back to its queue.
    """

    QoS = QoS

    def __init__(self, connection: Any, **kwargs: Any) -> None:
        self._taken: dict[str, Path] = {}  # delivery tag -> file of a message not yet done
        super().__init__(connection, **kwargs)

    def forget(self, delivery_tag: str | None) -> None:
        """Delete the file of a message that is done with (acknowledged, rejected, put back)."""
        taken = self._taken.pop(delivery_tag, None) if delivery_tag else None
        if taken is not None:
            taken.unlink(missing_ok=True)

    def basic_consume(
        self, queue: str, no_ack: bool, callback: Callable[..., Any] | None,
        consumer_tag: str | None, **kwargs: Any,
    ) -> str:  # fmt: skip
        """Consume from ``queue``; a consumer that never acknowledges has its files deleted."""
        if no_ack and callback is not None:
            callback = self._forgetting(callback)
        return super().basic_consume(queue, no_ack, callback, consumer_tag, **kwargs)

    def basic_get(self, queue: str, no_ack: bool = False, **kwargs: Any) -> Any:
        """The next message of ``queue``; its file is deleted now if it will not be acknowledged."""
        message = super().basic_get(queue, no_ack=no_ack, **kwargs)
        if no_ack and message is not None:
            self.forget(message.delivery_tag)
        return message

    def _forgetting(self, callback: Callable[..., Any]) -> Callable[..., Any]:
        def deliver(message: Any) -> Any:
            self.forget(message.delivery_tag)
            return callback(message)

        return deliver

    def _restore(self, message: Any) -> None:
        """Put an unacknowledged message back in its queue as a new file (kombu's way)."""
        super()._restore(message)
        self.forget(message.delivery_tag)

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
            if name.startswith(TAKEN_PREFIX):
                _give_back_if_orphaned(folder, name)
            if name.partition(".")[2] != f"{queue}.msg":
                continue
            taken = _take(folder, name)
            if taken is None:
                continue  # another consumer took it first
            payload = self._read(taken, name)
            if payload is not None:
                self._taken[payload["properties"]["delivery_tag"]] = taken
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
        """The message in ``taken``, or None once it is quarantined."""
        try:
            payload: dict[str, Any] = loads(taken.read_bytes())
            self.Message(payload, channel=self)  # what the consumer will build from it
        except OSError as exc:
            raise ChannelError(f"Cannot read message file {name!r}: {exc}") from exc
        except Exception as exc:  # anything that is not a message must not stop the worker
            _quarantine(taken, taken.parent / BAD_FOLDER / name, f"{type(exc).__name__}: {exc}")
            return None
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
    """Rename a message file to a name that says which process took it; None if it is gone."""
    taken = folder / f"{TAKEN_PREFIX}{os.getpid()}-{name}"
    try:
        os.rename(folder / name, taken)  # atomic: of two consumers, exactly one wins
    except FileNotFoundError:
        return None
    return taken


def _give_back_if_orphaned(folder: Path, name: str) -> None:
    """Put a message taken by a process that is gone back in its queue, under its own name."""
    pid, _, original = name.removeprefix(TAKEN_PREFIX).partition("-")
    if not pid.isdigit() or _alive(int(pid)):
        return
    try:
        os.rename(folder / name, folder / original)  # of two consumers, exactly one wins
    except FileNotFoundError:
        return
    logger.warning("embedded broker: gave back message %s, taken by process %s that is gone",
                   original, pid)  # fmt: skip


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True
