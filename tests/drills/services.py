"""Private services a drill may stop and start: a Redis server, a PostgreSQL cluster and a
RabbitMQ node, each of its own, on its own ports, with its files under the test's tmp dir.

The shared services (Redis 6379, PostgreSQL 5432, RabbitMQ 5672) are never stopped or
reconfigured: a drill that takes its broker or database away takes away one of these.

- Redis: ``redis-server --save '' --appendonly no``, so a restart comes back empty, as a
  crashed Redis without persistence does: every message it held is gone.
- PostgreSQL: ``initdb`` run as a non-root user (``postgres`` when it exists, else a system
  user made for the drills) with trust auth, started and stopped with ``pg_ctl``
  (``-m immediate``, a crash: no checkpoint, connections cut), rulewatch's schema migrated in.
- RabbitMQ: a node of its own (own node name, AMQP and distribution ports, Mnesia and log
  folders, no plugins), so it can be stopped and started; it keeps its durable queues and
  persistent messages across a restart, as a production node does. It starts in about 3 s.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.processes import free_port

DRILL_USER = "rulewatch-drill"  # made when running as root and no postgres user exists


def require_program(*candidates: str) -> str:
    """The first of ``candidates`` that is installed (a name is looked up on PATH, a path may
    be a glob): the test is skipped without any, and fails under CI=true."""
    for candidate in candidates:
        on_path = [shutil.which(candidate)]
        paths = sorted(glob.glob(candidate), reverse=True) if "/" in candidate else on_path
        for path in paths:
            if path and os.access(path, os.X_OK):
                return path
    reason = f"{candidates[-1]} is not installed: the drills start a private one"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def _port_open(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_port(port: int, timeout: float, what: str, log: Path | None = None) -> None:
    """Wait until something accepts connections on 127.0.0.1:``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _port_open(port):
            return
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise AssertionError(f"{what} did not open port {port} within {timeout} s\n{tail}")


def _end(process: subprocess.Popen[bytes] | None, sig: int = signal.SIGKILL) -> None:
    """Signal the process group this module started, and wait until none of it is left."""
    if process is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    deadline = time.monotonic() + 30
    while _group_alive(process) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _group_alive(process):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _group_alive(process: subprocess.Popen[bytes]) -> bool:
    process.poll()  # reap the leader once it exits, so it does not count as alive
    try:
        os.killpg(process.pid, 0)
    except ProcessLookupError:
        return False
    return True


class RedisServer:
    """A private ``redis-server`` without persistence: ``restart`` brings it back empty."""

    def __init__(self, folder: Path) -> None:
        self.binary = require_program("redis-server")
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        """The URL of its db 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start it (empty) and wait until it accepts connections."""
        log = self.folder / "redis.log"
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(self.folder), "--logfile", str(log)]  # fmt: skip
        self.process = subprocess.Popen(args, start_new_session=True)
        wait_port(self.port, 30, "redis-server", log)

    def stop(self) -> None:
        """Kill it (-9): whatever it held is gone."""
        _end(self.process)
        self.process = None


class PostgresCluster:
    """A private PostgreSQL cluster made by ``initdb`` as a non-root user, trust auth.

    Its files live in a folder of their own under the system's temp dir, not the test's
    (pytest's are private to the user running the tests, and a socket path must be short);
    ``remove`` deletes it.
    """

    def __init__(self) -> None:
        bins = "/usr/lib/postgresql/*/bin/"
        self.initdb = require_program(bins + "initdb", "initdb")
        self.pg_ctl = require_program(bins + "pg_ctl", "pg_ctl")
        self.folder = Path(tempfile.mkdtemp(prefix="rulewatch-drill-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self.user = _cluster_user()
        if self.user:
            shutil.chown(self.folder, self.user)
        self._as_user([self.initdb, "-D", str(self.data), "-A", "trust", "-U", "postgres",
                       "-E", "UTF8", "--no-sync"])  # fmt: skip

    @property
    def admin_url(self) -> str:
        """The cluster's ``postgres`` database, as its superuser."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        """Start it and wait until it accepts connections."""
        options = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
                   " -c fsync=off -c max_connections=200")  # fmt: skip
        self._as_user([self.pg_ctl, "-D", str(self.data), "-l", str(self.folder / "pg.log"),
                       "-w", "-t", "60", "-o", options, "start"])  # fmt: skip

    def stop(self) -> None:
        """Stop it as a crash would (``-m immediate``): connections cut, no checkpoint."""
        self._as_user([self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop"])

    def running(self) -> bool:
        """True while its postmaster runs."""
        return (self.data / "postmaster.pid").exists()

    def remove(self) -> None:
        """Delete its files (stopped first if it runs)."""
        if self.running():
            self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _as_user(self, args: list[str]) -> None:
        command = ["runuser", "-u", self.user, "--", *args] if self.user else args
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed: {done.stderr or done.stdout}")


def _cluster_user() -> str:
    """Who runs the cluster: nobody else when not root (PostgreSQL refuses root)."""
    if os.geteuid() != 0:
        return ""
    for name in ("postgres", DRILL_USER):
        with contextlib.suppress(KeyError):
            import pwd

            pwd.getpwnam(name)
            return name
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                    DRILL_USER], check=True, capture_output=True)  # fmt: skip
    return DRILL_USER


class RabbitNode:
    """A private RabbitMQ node: own name, ports, Mnesia and logs; no plugins.

    Run directly (``/usr/lib/rabbitmq/bin/rabbitmq-server``, not the packaged wrapper that
    switches to the ``rabbitmq`` user and its folders), with its own Erlang cookie in its own
    HOME, so it shares nothing with the machine's node but the port mapper (epmd).
    """

    def __init__(self, folder: Path) -> None:
        self.binary = require_program("/usr/lib/rabbitmq/bin/rabbitmq-server", "rabbitmq-server")
        self.folder = folder
        self.port = free_port()
        self.dist_port = free_port()
        self.name = f"rwdrill{uuid.uuid4().hex[:8]}@localhost"
        self.process: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{self.port}\n")
        (folder / "enabled_plugins").write_text("[].\n")
        (folder / "rabbitmq-env.conf").write_text("")

    @property
    def url(self) -> str:
        """Its default vhost, as the guest user (the node is the test's own)."""
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def start(self) -> None:
        """Start it and wait until it accepts AMQP connections (about 3 s)."""
        f = self.folder
        env = {**os.environ, "HOME": str(f), "RABBITMQ_NODENAME": self.name,
               "RABBITMQ_NODE_PORT": str(self.port), "RABBITMQ_DIST_PORT": str(self.dist_port),
               "RABBITMQ_MNESIA_BASE": str(f / "mnesia"), "RABBITMQ_LOG_BASE": str(f / "log"),
               "RABBITMQ_CONFIG_FILE": str(f / "rabbitmq.conf"),
               "RABBITMQ_ENABLED_PLUGINS_FILE": str(f / "enabled_plugins"),
               "RABBITMQ_CONF_ENV_FILE": str(f / "rabbitmq-env.conf"),
               "RABBITMQ_FEATURE_FLAGS_FILE": str(f / "feature_flags"),
               "RABBITMQ_PID_FILE": str(f / "pid"), "ERL_CRASH_DUMP": str(f / "erl_crash.dump"),
               "RABBITMQ_LOGS": "-"}  # fmt: skip
        log = f / "rabbitmq.out"
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [self.binary], env=env, cwd=f, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        wait_port(self.port, 90, "rabbitmq-server", log)

    def stop(self) -> None:
        """Stop it (SIGTERM: RabbitMQ shuts down cleanly, keeping durable queues)."""
        _end(self.process, signal.SIGTERM)
        self.process = None


@contextlib.contextmanager
def running(service: RedisServer | PostgresCluster | RabbitNode) -> Iterator[None]:
    """Start the service for the block; stop it after, whatever happened."""
    service.start()
    try:
        yield
    finally:
        if isinstance(service, PostgresCluster):
            service.remove()
        else:
            service.stop()
