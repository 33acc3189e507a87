"""The registry of kinds: each kind's probe, target schema and placeholders, found by name."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from rulewatch.domain.conditions import ConditionSyntaxError, parse_condition
from rulewatch.domain.conditions_syntax import PLACEHOLDERS
from rulewatch.domain.observation import Observation
from rulewatch.probes import KINDS, Kind, ProbeContext, run_probe
from rulewatch.probes.tcp import TcpTarget


def test_it_finds_every_first_kind_in_the_registry() -> None:
    assert {"http", "sql", "tcp"} <= set(KINDS)
    assert all(name == kind.name for name, kind in KINDS.items())


@pytest.mark.parametrize("kind", KINDS.values(), ids=list(KINDS))
def test_it_offers_only_placeholders_the_domain_can_read(kind: Kind) -> None:
    assert kind.placeholders <= PLACEHOLDERS


@pytest.mark.parametrize("kind", KINDS.values(), ids=list(KINDS))
def test_it_suggests_an_example_its_own_kind_accepts(kind: Kind) -> None:
    assert parse_condition(kind.example, kind.vocabulary).text == kind.example


@pytest.mark.parametrize("kind", KINDS.values(), ids=list(KINDS))
def test_it_takes_the_default_timeout_from_the_target_schema(kind: Kind) -> None:
    assert kind.default_timeout_s == kind.target.model_fields["timeout_s"].default > 0


def test_it_gives_a_tcp_target_that_names_no_timeout_five_seconds() -> None:
    assert KINDS["tcp"].default_timeout_s == TcpTarget(host="h", port=1).timeout_s == 5.0


@pytest.mark.parametrize(
    ("kind", "text"),
    [("http", "[STATUS] == 200"), ("http", "[HEADERS].Content-Type == pat(*json*)"),
     ("http", "[CERTIFICATE_EXPIRATION] > 7d"), ("http", "[IP] != 0.0.0.0"),
     ("sql", "[VALUE] > 0"), ("sql", "[ROWS] > 0"), ("sql", "[ROW].total > 0"),
     ("sql", "[PREVIOUS_VALUE] != null"), ("sql", "[CHANGE_PERCENT] < 10"),
     ("tcp", "[CONNECTED] == true"), ("tcp", "[RESPONSE_TIME] < 500ms")],
)  # fmt: skip
def test_it_accepts_the_placeholders_of_each_kind(kind: str, text: str) -> None:
    assert parse_condition(text, KINDS[kind].vocabulary).text == text


@pytest.mark.parametrize(
    ("text", "kind", "position"),
    [("[ROWS] > 0", "http", 0), ("[STATUS] == 200", "sql", 0), ("[BODY].x == 1", "tcp", 0),
     ("len([ROW].x) > 0", "http", 4), ("[RESPONSE_TIME] < [CERTIFICATE_EXPIRATION]", "tcp", 18)],
)  # fmt: skip
def test_it_rejects_a_placeholder_not_valid_for_the_kind(
    text: str, kind: str, position: int
) -> None:
    with pytest.raises(ConditionSyntaxError) as caught:
        parse_condition(text, KINDS[kind].vocabulary)
    assert caught.value.position == position
    assert f"is not available for {kind} rules (use one of " in caught.value.message


async def _heartbeat(target: Mapping[str, Any], ctx: ProbeContext) -> Observation:
    return Observation(connected=True, response_time_ms=1.0)


def test_it_runs_the_probe_a_new_kind_registers(monkeypatch: pytest.MonkeyPatch) -> None:
    heartbeat = Kind(
        "heartbeat", _heartbeat, TcpTarget, frozenset({"CONNECTED"}), "[CONNECTED] == true"
    )
    monkeypatch.setitem(KINDS, "heartbeat", heartbeat)
    observed = asyncio.run(run_probe("heartbeat", {}, ProbeContext(datasources={})))
    assert observed.connected and observed.response_time_ms == 1.0
