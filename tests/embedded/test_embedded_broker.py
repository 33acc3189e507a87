"""The embedded broker's transport: whole messages only, unreadable files set aside."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection, Exchange, Queue

from rulewatch.celery_app import celery_config
from rulewatch.config import load_settings
from rulewatch.embedded_broker import Transport


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "broker"


@pytest.fixture
def connection(folder: Path) -> Iterator[Connection]:
    folder.mkdir()
    # bindings are remembered per process, but each test has a new control folder to write
    Transport.global_state.clear()
    options = {"data_folder_in": str(folder), "data_folder_out": str(folder),
               "control_folder": str(folder / "control")}  # fmt: skip
    with Connection("filesystem://", transport=Transport, transport_options=options) as conn:
        yield conn


def _messages(folder: Path, queue: str = "checks") -> list[Path]:
    return sorted(folder.glob(f"*.{queue}.msg"))


def test_it_delivers_messages_in_the_order_they_were_written(connection: Connection) -> None:
    queue = connection.SimpleQueue("checks")
    for n in range(5):
        queue.put({"n": n})
    got = []
    for _ in range(5):
        message = queue.get(timeout=5)
        got.append(message.payload["n"])
        message.ack()
    assert got == [0, 1, 2, 3, 4]


def test_it_never_shows_a_reader_a_partly_written_message(
    connection: Connection, folder: Path
) -> None:
    queue = connection.SimpleQueue("checks")
    big = {"padding": "x" * 4_000_000}
    writer = threading.Thread(target=lambda: [queue.put(big) for _ in range(15)])
    writer.start()
    seen: set[str] = set()
    while writer.is_alive() or len(seen) < 15:
        for path in _messages(folder):
            if path.name not in seen:
                envelope = json.loads(path.read_bytes())  # a torn file would raise here
                assert "body" in envelope
                seen.add(path.name)
    writer.join()
    assert len(seen) == 15


@pytest.mark.parametrize(
    "content, reason",
    [
        (b'{"body": "eyJ0YXNr', "JSONDecodeError"),
        (b"", "JSONDecodeError"),
        (b"[1, 2, 3]", "TypeError"),
        (b'{"body": "e30="}', "KeyError"),
    ],
    ids=["half-written", "empty", "not-an-object", "no-properties"],
)
def test_it_sets_an_unreadable_file_aside_logs_it_and_delivers_the_next(
    connection: Connection, folder: Path, caplog: pytest.LogCaptureFixture,
    content: bytes, reason: str,
) -> None:  # fmt: skip
    bad = folder / f"{0:020d}_00000000-0000-0000-0000-000000000000.checks.msg"
    bad.write_bytes(content)  # older than anything put below, so it is read first
    queue = connection.SimpleQueue("checks")
    queue.put({"after": "the bad one"})
    with caplog.at_level(logging.ERROR, logger="rulewatch.embedded_broker"):
        message = queue.get(timeout=5)
    assert message.payload == {"after": "the bad one"}
    message.ack()
    assert (folder / "bad" / bad.name).read_bytes() == content
    assert _messages(folder) == []
    [line] = [r.getMessage() for r in caplog.records]
    assert bad.name in line and reason in line and "bad" in line


def test_it_leaves_no_temporary_or_taken_files_behind(connection: Connection, folder: Path) -> None:
    queue = connection.SimpleQueue("checks")
    queue.put({"n": 1})
    queue.get(timeout=5).ack()
    assert [p.name for p in folder.iterdir() if p.is_file()] == []


def test_it_selects_the_hardened_transport_only_for_the_embedded_broker(tmp_path: Path) -> None:
    def transport_of(env: dict[str, str]) -> Any:
        config = celery_config(load_settings({"RULEWATCH_HOME": str(tmp_path), **env}))
        url = config["broker_url"]
        return Connection(url, transport=config["broker_transport"]).transport_cls

    assert transport_of({}) == "rulewatch.embedded_broker:Transport"
    assert transport_of({"RULEWATCH_BROKER_URL": "redis://127.0.0.1:6379/0"}) == "redis"


@pytest.mark.parametrize("content", [b"", b'[["checks", "", "chec'], ids=["empty", "torn"])
def test_it_declares_queues_over_an_exchange_table_left_unreadable(
    connection: Connection, folder: Path, caplog: pytest.LogCaptureFixture, content: bytes
) -> None:
    table = folder / "control" / "checks.exchange"  # Celery binds every queue to "checks"
    table.parent.mkdir()
    table.write_bytes(content)  # kombu's writer creates it empty, then fills it in place
    with caplog.at_level(logging.ERROR, logger="rulewatch.embedded_broker"):
        queue = connection.SimpleQueue(Queue("checks", Exchange("checks"), routing_key="checks"))
        queue.put({"n": 1})
        assert queue.get(timeout=5).payload == {"n": 1}
    assert json.loads(table.read_bytes()) == [["checks", "", "checks"]]
    [line] = [r.getMessage() for r in caplog.records]
    assert "rewriting unreadable exchange table checks.exchange (JSONDecodeError" in line


def _taken(folder: Path) -> list[Path]:
    return sorted(folder.glob(".taken-*"))


def test_it_keeps_a_taken_message_on_disk_until_it_is_acknowledged(
    connection: Connection, folder: Path
) -> None:
    queue = connection.SimpleQueue("checks")
    queue.put({"n": 1})
    message = queue.get(timeout=5)
    [taken] = _taken(folder)
    assert taken.name.startswith(f".taken-{os.getpid()}-")
    message.ack()
    assert _taken(folder) == []


def test_it_puts_a_rejected_message_back_in_its_queue_once(
    connection: Connection, folder: Path
) -> None:
    queue = connection.SimpleQueue("checks")
    queue.put({"n": 1})
    queue.get(timeout=5).reject(requeue=True)
    assert (_taken(folder), len(_messages(folder))) == ([], 1)
    again = queue.get(timeout=5)
    assert again.payload == {"n": 1}
    again.ack()


def test_it_gives_back_a_message_whose_taker_died(
    connection: Connection, folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    queue = connection.SimpleQueue("checks")
    queue.put({"n": 1})
    [name] = [path.name for path in _messages(folder)]
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    (folder / name).rename(folder / f".taken-{dead.stdout.strip()}-{name}")  # as if it took it
    with caplog.at_level(logging.WARNING, logger="rulewatch.embedded_broker"):
        message = queue.get(timeout=5)
    assert message.payload == {"n": 1}
    message.ack()
    assert (_taken(folder), _messages(folder)) == ([], [])
    [line] = [r.getMessage() for r in caplog.records]
    assert line == (
        f"embedded broker: gave back message {name}, taken by process"
        f" {dead.stdout.strip()} that is gone"
    )


def test_it_never_gives_back_a_message_whose_taker_lives(
    connection: Connection, folder: Path
) -> None:
    queue = connection.SimpleQueue("checks")
    queue.put({"n": 1})
    [name] = [path.name for path in _messages(folder)]
    (folder / name).rename(folder / f".taken-{os.getppid()}-{name}")
    with pytest.raises(queue.Empty):
        queue.get(timeout=0.5)
    assert len(_taken(folder)) == 1
