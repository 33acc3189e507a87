"""Probes do the I/O of a check and return an Observation; the domain judges it.

One module per kind, found through ``PROBES``. ``run_probe`` enforces the target's overall
timeout, so a probe never has to.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from rulewatch.domain.observation import Observation
from rulewatch.probes import http, sql, tcp
from rulewatch.probes.context import Probe, ProbeContext, ms_since

__all__ = ["DEFAULT_TIMEOUTS_S", "PROBES", "Probe", "ProbeContext", "run_probe"]

PROBES: dict[str, Probe] = {
    "http": http.probe_http,
    "sql": sql.probe_sql,
    "tcp": tcp.probe_tcp,
}

DEFAULT_TIMEOUTS_S: dict[str, float] = {
    "http": http.DEFAULT_TIMEOUT_S,
    "sql": sql.DEFAULT_TIMEOUT_S,
    "tcp": tcp.DEFAULT_TIMEOUT_S,
}


async def run_probe(kind: str, target: Mapping[str, Any], ctx: ProbeContext) -> Observation:
    """Run the probe registered for ``kind``, ending it as a failure after ``timeout_s``."""
    probe = PROBES.get(kind)
    if probe is None:
        known = ", ".join(sorted(PROBES))
        return Observation(connected=False, fault=f"unknown probe kind {kind!r} (known: {known})")
    timeout_s = target.get("timeout_s", DEFAULT_TIMEOUTS_S[kind])
    if not _is_positive_number(timeout_s):
        return Observation(connected=False, fault=f"timeout_s must be > 0, not {timeout_s!r}")
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout_s):
            return await probe(target, ctx)
    except TimeoutError:
        failure = f"timed out after {timeout_s:g}s"
        return Observation(connected=False, failure=failure, response_time_ms=ms_since(started))


def _is_positive_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0
