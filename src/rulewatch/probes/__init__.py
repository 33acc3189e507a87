"""Probes do the I/O of a check and return an Observation; the domain judges it.

One module per kind, each defining its ``KIND`` (probe, target schema, placeholders), found
through ``KINDS``. ``run_probe`` enforces the target's overall timeout, so a probe never has to.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from rulewatch.domain.observation import Observation
from rulewatch.probes import http, sql, tcp
from rulewatch.probes.context import Probe, ProbeContext, ms_since
from rulewatch.probes.kind import Kind

__all__ = ["KINDS", "Kind", "Probe", "ProbeContext", "run_probe"]

# adding a kind: its module, and its KIND here
KINDS: dict[str, Kind] = {kind.name: kind for kind in (http.KIND, sql.KIND, tcp.KIND)}


async def run_probe(kind: str, target: Mapping[str, Any], ctx: ProbeContext) -> Observation:
    """Run the probe registered for ``kind``, ending it as a failure after ``timeout_s``."""
    registered = KINDS.get(kind)
    if registered is None:
        known = ", ".join(sorted(KINDS))
        return Observation(connected=False, fault=f"unknown probe kind {kind!r} (known: {known})")
    timeout_s = target.get("timeout_s", registered.default_timeout_s)
    if not _is_positive_number(timeout_s):
        return Observation(connected=False, fault=f"timeout_s must be > 0, not {timeout_s!r}")
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout_s):
            return await registered.probe(target, ctx)
    except TimeoutError:
        failure = f"timed out after {timeout_s:g}s"
        return Observation(connected=False, failure=failure, response_time_ms=ms_since(started))


def _is_positive_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0
