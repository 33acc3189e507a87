"""What every probe receives: the shared context and the probe call signature."""

from __future__ import annotations

import time
from collections.abc import Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

from rulewatch.domain.observation import Observation


@dataclass
class ProbeContext:
    """Resources shared by the probes of one batch; DSNs stay out of repr and logs."""

    datasources: Mapping[str, str] = field(repr=False)
    # data sources that cannot be used, by name: the fault their rules record instead
    datasource_faults: Mapping[str, str] = field(default_factory=dict)
    http_session: aiohttp.ClientSession | None = None
    sql_row_limit: int = 1000
    # the batch's own pool, sized to its sql rules, so no query waits for a thread
    sql_executor: Executor | None = None


class Probe(Protocol):
    """Checks one target of its kind and reports what it saw; never raises for a down target."""

    async def __call__(self, target: Mapping[str, Any], ctx: ProbeContext) -> Observation: ...


def ms_since(started: float) -> float:
    """Milliseconds elapsed since ``started`` (a ``time.perf_counter()`` reading), to the
    microsecond: finer digits are noise, and they would crowd every resolved condition."""
    return round((time.perf_counter() - started) * 1000, 3)
