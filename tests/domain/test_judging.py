"""Judging an observation: the status, the stored outcomes, and the error a person reads."""

from __future__ import annotations

from decimal import Decimal

from rulewatch.domain.conditions import parse_condition
from rulewatch.domain.judging import judged, needs_history, with_history
from rulewatch.domain.observation import Observation

OK = Observation(connected=True, status=200, response_time_ms=12.5)


def _judged(observation: Observation, *texts: str) -> dict[str, object]:
    return judged([parse_condition(text) for text in texts], observation)


def test_it_passes_when_every_condition_holds_and_shows_no_error() -> None:
    assert _judged(OK, "[STATUS] == 200", "[RESPONSE_TIME] < 100") == {
        "status": "pass",
        "conditions": [
            {"condition": "[STATUS] == 200", "resolved": "[STATUS] (200) == 200", "ok": True},
            {
                "condition": "[RESPONSE_TIME] < 100",
                "resolved": "[RESPONSE_TIME] (12.5) < 100",
                "ok": True,
            },
        ],
        "measured": {"connected": True, "response_time_ms": 12.5, "status": 200},
        "error": None,
    }


def test_it_fails_with_the_first_unmet_condition_as_the_error() -> None:
    result = _judged(OK, "[RESPONSE_TIME] < 100", "[STATUS] == 503", "[STATUS] == 404")
    assert result["status"] == "fail"
    assert result["error"] == "condition not met: [STATUS] (200) == 503"


def test_it_fails_an_unreachable_target_with_the_transport_failure() -> None:
    down = Observation(connected=False, failure="connection refused", response_time_ms=1.0)
    result = _judged(down, "[STATUS] == 200")
    assert (result["status"], result["error"]) == ("fail", "connection refused")


def test_it_records_a_fault_as_an_error_whatever_the_conditions_say() -> None:
    broken = Observation(connected=False, fault="data source 'warehouse' is not configured")
    result = _judged(broken, "[CONNECTED] == false")
    assert (result["status"], result["error"]) == (
        "error",
        "data source 'warehouse' is not configured",
    )


def test_it_gives_the_latest_value_and_the_numeric_average_of_the_history() -> None:
    seen = with_history(Observation(connected=True, value=12), [10, "n/a", Decimal("20"), 30])
    assert (seen.previous_value, seen.recent_average) == (10, 20.0)


def test_it_leaves_an_observation_without_history_as_it_was() -> None:
    assert with_history(OK, []) is OK


def test_it_judges_a_change_against_the_recent_average() -> None:
    seen = with_history(Observation(connected=True, value=150), [100, 100])
    assert _judged(seen, "[CHANGE_PERCENT] <= 10")["error"] == (
        "condition not met: [CHANGE_PERCENT] (50) <= 10"
    )


def test_it_asks_for_history_only_for_conditions_that_read_it() -> None:
    assert needs_history(
        [parse_condition("[STATUS] == 200"), parse_condition("[PREVIOUS_VALUE] > 1")]
    )
    assert not needs_history([parse_condition("[VALUE] > 1")])
