"""The tcp probe: can a TCP connection be opened to host:port, and how fast."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field, StringConstraints

from rulewatch.domain.observation import Observation
from rulewatch.probes.connect_failure import describe_connect_failure
from rulewatch.probes.context import ProbeContext, ms_since
from rulewatch.probes.kind import Kind, Target, Timeout


class TcpTarget(Target):
    """A host and port to open a TCP connection to."""

    host: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
    port: Annotated[int, Field(ge=1, le=65535)]
    timeout_s: Timeout = 5.0


async def probe_tcp(target: Mapping[str, Any], ctx: ProbeContext) -> Observation:
    """Open (then cleanly close) a TCP connection to the target's host and port."""
    host, port = target.get("host"), target.get("port")
    if not isinstance(host, str) or not host or not _is_port(port):
        return Observation(connected=False, fault="a tcp target needs a host and a port 1-65535")
    started = time.perf_counter()
    try:
        _, writer = await asyncio.open_connection(host, port)
    except OSError as exc:
        elapsed = ms_since(started)
        failure = describe_connect_failure(exc, host, port)
        return Observation(connected=False, failure=failure, response_time_ms=elapsed)
    elapsed = ms_since(started)
    await _close(writer)
    return Observation(connected=True, response_time_ms=elapsed)


def _is_port(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    # The peer may already have reset the connection; the probe has its answer either way.
    with contextlib.suppress(OSError):
        await writer.wait_closed()


KIND = Kind(
    name="tcp",
    probe=probe_tcp,
    target=TcpTarget,
    placeholders=frozenset({"CONNECTED", "RESPONSE_TIME"}),
    example="[CONNECTED] == true",
)
