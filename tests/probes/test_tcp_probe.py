"""The tcp probe against real sockets, and the registry and timeout that run_probe adds."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import replace
from typing import Any

import pytest
from conftest import closed_port, require_service

from rulewatch.domain.observation import Observation
from rulewatch.probes import KINDS, ProbeContext, run_probe

CTX = ProbeContext(datasources={})


def _probe(target: dict[str, Any], kind: str = "tcp") -> Observation:
    return asyncio.run(run_probe(kind, target, CTX))


def test_it_connects_to_the_local_postgresql_port() -> None:
    require_service("127.0.0.1", 5432, "PostgreSQL")
    observed = _probe({"host": "127.0.0.1", "port": 5432})
    assert observed.connected and observed.failure is None and observed.fault is None
    assert observed.response_time_ms is not None and 0 < observed.response_time_ms < 5000


def test_it_reports_a_refused_connection_as_a_failure_not_a_fault() -> None:
    port = closed_port()
    observed = _probe({"host": "127.0.0.1", "port": port})
    assert not observed.connected and observed.fault is None
    assert observed.failure == f"connection refused to 127.0.0.1:{port}"
    assert observed.response_time_ms is not None


def test_it_reports_an_unknown_host_as_a_dns_failure() -> None:
    observed = _probe({"host": "no-such-host.invalid", "port": 80})
    assert not observed.connected and observed.fault is None
    assert observed.failure is not None
    assert observed.failure.startswith("DNS lookup failed for no-such-host.invalid")


def test_it_closes_the_connection_it_opened() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        observed = _probe({"host": "127.0.0.1", "port": listener.getsockname()[1]})
        accepted, _ = listener.accept()
        with accepted:
            accepted.settimeout(2)
            assert accepted.recv(1) == b""  # an orderly FIN, not a reset or a hang
    assert observed.connected


@pytest.mark.parametrize("target", [{"host": "127.0.0.1"}, {"port": 80}, {"host": "h", "port": 0}])
def test_it_reports_an_incomplete_target_as_a_fault(target: dict[str, Any]) -> None:
    observed = _probe(target)
    assert observed.fault == "a tcp target needs a host and a port 1-65535"


def test_it_reports_an_unknown_kind_as_a_fault() -> None:
    observed = _probe({}, kind="smtp")
    assert not observed.connected and observed.failure is None
    assert observed.fault == "unknown probe kind 'smtp' (known: http, sql, tcp)"


@pytest.mark.parametrize("timeout_s", [0, -1, "5", True, None])
def test_it_reports_an_unusable_timeout_as_a_fault(timeout_s: Any) -> None:
    observed = _probe({"host": "127.0.0.1", "port": 9, "timeout_s": timeout_s})
    assert observed.fault is not None and observed.fault.startswith("timeout_s must be > 0")


def test_it_ends_a_slow_probe_as_a_failure_after_timeout_s(monkeypatch: pytest.MonkeyPatch) -> None:
    async def hanging(target: Any, ctx: ProbeContext) -> Observation:
        await asyncio.sleep(5)
        raise AssertionError("not reached")

    monkeypatch.setitem(KINDS, "tcp", replace(KINDS["tcp"], probe=hanging))
    observed = _probe({"host": "127.0.0.1", "port": 9, "timeout_s": 0.2})
    assert not observed.connected and observed.fault is None
    assert observed.failure == "timed out after 0.2s"
    assert observed.response_time_ms is not None and 200 <= observed.response_time_ms < 1000
