"""A real `rulewatch beat` whose Redis is killed and started again: beat stays up, says once
that it cannot reach the broker and once that it can (a send succeeded), keeps ticking, and
never logs a traceback or Celery's "must be restarted" (which the Redis result backend's
subscription logged when beat's sends asked for results)."""

from __future__ import annotations

import time
from pathlib import Path

from tests.drills.services import RedisServer, running
from tests.integration.processes import spawn, stop, wait_for

SENDING = "Sending due task verify-all-rules"


def test_beat_rides_out_a_broker_restart_with_one_line_each_way(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis")
    log = tmp_path / "beat.log"
    with running(server):
        env = {"RULEWATCH_HOME": str(tmp_path / "home"), "RULEWATCH_BROKER_URL": server.url,
               "RULEWATCH_TICK_S": "1"}  # fmt: skip
        beat = spawn(["beat"], env, log)
        try:
            wait_for(lambda: SENDING in log.read_text(), 60, "beat's first tick", log)
            server.stop()
            wait_for(lambda: "cannot reach the broker" in log.read_text(), 30, "the loss", log)
            lost_at = len(log.read_text())
            time.sleep(5)  # ticks come and go while the broker is away
            server.start()  # same port, empty
            wait_for(lambda: "reaches the broker again" in log.read_text(), 30, "the return", log)
            back_at = len(log.read_text())
            wait_for(lambda: log.read_text()[back_at:].count(SENDING) >= 2, 30, "ticks", log)
        finally:
            stop(beat)
    text = log.read_text()
    assert text.count("cannot reach the broker") == 1, text[-3000:]
    assert text.count("reaches the broker again") == 1, text[-3000:]
    assert text[lost_at:back_at].count(SENDING) >= 3  # it kept ticking, quietly
    assert "must be restarted" not in text and "Traceback" not in text, text[-3000:]
