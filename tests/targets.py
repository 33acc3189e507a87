"""A real HTTP target for tests: a threaded server whose answer the test can change."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HOLD_LIMIT_S = 30  # a held request is answered anyway after this, so no test hangs for ever


class _Server(ThreadingHTTPServer):
    # socketserver listens with a backlog of 5: a batch connecting at once overflows it, and
    # the connections dropped wait for the client's SYN retry, a second or more
    request_queue_size = 1024

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client gone before its answer (a probe that timed out, a worker killed) is part
        of what the tests do, not an error worth a traceback in their output."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class Target:
    """Serves GET /health with the status and JSON body the test sets.

    ``hold()`` makes requests wait for ``release.set()``; ``arrived`` is set once one came,
    so a test can act while a probe is surely in flight.
    """

    def __init__(self) -> None:
        self.status = 200
        self.body: dict[str, Any] = {"status": "UP"}
        self.hits = 0
        self.delay_s = 0.0
        self.arrived = threading.Event()
        self.release = threading.Event()
        self.release.set()
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                target.hits += 1
                target.arrived.set()
                target.release.wait(HOLD_LIMIT_S)
                time.sleep(target.delay_s)
                payload = json.dumps(target.body).encode()
                self.send_response(target.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        """The port it listens on."""
        port: int = self.server.server_address[1]
        return port

    @property
    def url(self) -> str:
        """The health URL."""
        return f"http://127.0.0.1:{self.port}/health"

    def hold(self) -> None:
        """Keep the next requests waiting until ``release`` is set."""
        self.arrived.clear()
        self.release.clear()

    def __enter__(self) -> Target:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()  # a request still held must not keep the server from stopping
        self.server.shutdown()
        self.server.server_close()


def http_rule(url: str, name: str = "orders API", **extra: Any) -> dict[str, Any]:
    """A valid http rule definition against ``url``."""
    return {
        "name": name,
        "kind": "http",
        "target": {"url": url, "timeout_s": 5},
        "conditions": ["[STATUS] == 200", "[BODY].status == UP", "[RESPONSE_TIME] < 5000"],
        "interval_s": 60,
        **extra,
    }


def closed_port() -> int:
    """A local port with nothing listening on it (bound once, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
