"""The incident state machine: thresholds, errors, reminders, flapping, close, policies."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rulewatch.domain.incidents import (
    AlertPolicy,
    AlertPolicyError,
    Event,
    IncidentState,
    close,
    status_changes,
    step,
)

T0 = datetime(2024, 5, 15, 10, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
DEFAULT = AlertPolicy()
LETTERS = {"P": "pass", "F": "fail", "E": "error"}


def _at(minutes: float) -> datetime:
    return T0 + minutes * MINUTE


def _run(
    statuses: str,
    policy: AlertPolicy = DEFAULT,
    state: IncidentState | None = None,
    start: float = 0,
) -> tuple[IncidentState, list[list[Event]]]:
    """Step through statuses written as letters (P, F, E), one a minute from ``start``."""
    state = state or IncidentState()
    per_step = []
    for i, letter in enumerate(statuses):
        state, events = step(state, LETTERS[letter], _at(start + i), policy)
        per_step.append(events)
    return state, per_step


def _kinds(per_step: list[list[Event]]) -> list[str]:
    return [event.kind for events in per_step for event in events]


# Opening


def test_it_opens_an_incident_after_three_failures() -> None:
    state, per_step = _run("FFF")
    assert per_step == [[], [], [Event("firing", _at(2), _at(0))]]
    assert state.is_open
    assert state.open_since == _at(0)
    assert state.last_notified_at == _at(2)


def test_it_stays_closed_after_two_failures() -> None:
    state, per_step = _run("FF")
    assert _kinds(per_step) == []
    assert not state.is_open
    assert state.consecutive_failures == 2
    assert state.failing_since == _at(0)


def test_it_dates_the_incident_from_the_first_failure_of_the_run() -> None:
    _, per_step = _run("PPFPFFF")
    assert per_step[-1] == [Event("firing", _at(6), _at(4))]


def test_it_fires_once_while_the_rule_keeps_failing() -> None:
    state, per_step = _run("F" * 20)
    assert _kinds(per_step) == ["firing"]
    assert state.consecutive_failures == 20


def test_it_starts_counting_again_when_a_pass_interrupts_the_failures() -> None:
    state, per_step = _run("FFPFF")
    assert _kinds(per_step) == []
    assert state.consecutive_failures == 2
    assert state.failing_since == _at(3)


def test_it_opens_on_the_first_failure_with_a_threshold_of_one() -> None:
    state, per_step = _run("F", AlertPolicy(failure_threshold=1))
    assert per_step == [[Event("firing", _at(0), _at(0))]]
    assert state.open_since == _at(0)


def test_it_opens_on_the_next_failure_when_the_threshold_drops_below_the_run() -> None:
    state, _ = _run("FFFF", AlertPolicy(failure_threshold=5))
    _, events = step(state, "fail", _at(4), AlertPolicy(failure_threshold=2))
    assert events == [Event("firing", _at(4), _at(0))]


# Resolving


def test_it_resolves_after_two_passes() -> None:
    state, per_step = _run("FFFPP")
    assert per_step[3:] == [[], [Event("resolved", _at(4), _at(0))]]
    assert not state.is_open
    assert state.last_notified_at is None
    assert state.failing_since is None


def test_it_stays_open_when_a_failure_interrupts_the_passes() -> None:
    state, per_step = _run("FFFPFP")
    assert _kinds(per_step) == ["firing"]
    assert state.is_open
    assert state.consecutive_passes == 1


def test_it_resolves_on_the_first_pass_with_a_threshold_of_one() -> None:
    _, per_step = _run("FFFP", AlertPolicy(success_threshold=1))
    assert per_step[-1] == [Event("resolved", _at(3), _at(0))]


def test_it_resolves_silently_when_send_on_resolved_is_off() -> None:
    state, per_step = _run("FFFPP", AlertPolicy(send_on_resolved=False))
    assert _kinds(per_step) == ["firing"]
    assert not state.is_open


def test_it_opens_a_new_incident_from_a_new_run_after_resolving() -> None:
    _, per_step = _run("FFFPPFFF")
    assert _kinds(per_step) == ["firing", "resolved", "firing"]
    assert per_step[-1] == [Event("firing", _at(7), _at(5))]


# Errors: rulewatch's fault, not the target's


def test_it_neither_opens_nor_resolves_on_errors() -> None:
    closed, per_step = _run("FF" + "E" * 10)
    assert _kinds(per_step) == []
    assert not closed.is_open
    still_open, per_step = _run("FFFP" + "E" * 10)
    assert _kinds(per_step) == ["firing"]
    assert still_open.is_open


def test_it_keeps_counting_failures_across_errors() -> None:
    _, per_step = _run("FEFEEF")
    assert per_step[-1] == [Event("firing", _at(5), _at(0))]


def test_it_keeps_counting_passes_across_errors() -> None:
    _, per_step = _run("FFFPEEP")
    assert per_step[-1] == [Event("resolved", _at(6), _at(0))]


def test_it_leaves_errors_out_of_the_state() -> None:
    state, _ = _run("FPF")
    assert _run("E", state=state, start=3)[0] == state


def test_it_refuses_an_unknown_status() -> None:
    with pytest.raises(ValueError, match="status must be one of pass, fail or error, got 'ok'"):
        step(IncidentState(), "ok", T0, DEFAULT)


def test_it_refuses_a_naive_now() -> None:
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        step(IncidentState(), "fail", datetime(2024, 5, 15, 10, 0), DEFAULT)


def test_it_reports_times_in_utc() -> None:
    paris_summer = timezone(timedelta(hours=2))
    state, events = step(
        IncidentState(), "fail", datetime(2024, 5, 15, 12, 0, tzinfo=paris_summer),
        AlertPolicy(failure_threshold=1),
    )  # fmt: skip
    assert events[0].at.tzinfo is UTC
    assert events[0].at == T0
    assert state.open_since == T0


# Reminders

HOURLY = AlertPolicy(reminder_interval_s=3600)


def _open_at_zero(policy: AlertPolicy = HOURLY) -> IncidentState:
    """An incident that fired at minute 0 (first fail at minute -2)."""
    state, _ = _run("FFF", policy, start=-2)
    assert state.last_notified_at == _at(0)
    return state


def test_it_sends_no_reminder_when_reminders_are_off() -> None:
    state = _open_at_zero(DEFAULT)
    _, events = step(state, "fail", _at(60 * 24 * 30), DEFAULT)
    assert events == []


def test_it_does_not_remind_before_the_interval() -> None:
    state = _open_at_zero()
    _, events = step(state, "fail", _at(59.99), HOURLY)
    assert events == []


def test_it_reminds_exactly_at_the_interval() -> None:
    state = _open_at_zero()
    state, events = step(state, "fail", _at(60), HOURLY)
    assert events == [Event("reminder", _at(60), _at(-2))]
    assert state.last_notified_at == _at(60)


def test_it_measures_the_next_reminder_from_the_last_one() -> None:
    state = _open_at_zero()
    state, _ = step(state, "fail", _at(75), HOURLY)
    _, too_soon = step(state, "fail", _at(134), HOURLY)
    _, due = step(state, "fail", _at(135), HOURLY)
    assert too_soon == []
    assert [event.kind for event in due] == ["reminder"]


def test_it_sends_one_reminder_after_a_long_gap() -> None:
    state = _open_at_zero()
    state, events = step(state, "fail", _at(60 * 10), HOURLY)
    assert [event.kind for event in events] == ["reminder"]
    _, events = step(state, "fail", _at(60 * 10 + 1), HOURLY)
    assert events == []


def test_it_reminds_on_a_pass_or_an_error_while_the_incident_is_open() -> None:
    state = _open_at_zero()
    _, on_error = step(state, "error", _at(60), HOURLY)
    _, on_pass = step(state, "pass", _at(60), HOURLY)
    assert [event.kind for event in on_error] == ["reminder"]
    assert [event.kind for event in on_pass] == ["reminder"]


def test_it_sends_no_reminder_on_the_pass_that_resolves() -> None:
    state = _open_at_zero()
    state, _ = step(state, "pass", _at(30), HOURLY)
    _, events = step(state, "pass", _at(90), HOURLY)
    assert [event.kind for event in events] == ["resolved"]


def test_it_survives_a_clock_going_backwards() -> None:
    state = _open_at_zero()
    state, events = step(state, "fail", _at(-600), HOURLY)
    assert events == []
    assert state.last_notified_at == _at(-600)
    _, events = step(state, "fail", _at(-540), HOURLY)
    assert [event.kind for event in events] == ["reminder"]


def test_it_never_dates_an_event_before_its_since_when_the_clock_goes_back() -> None:
    state, _ = _run("FF")
    state, events = step(state, "fail", _at(-60), DEFAULT)
    assert events == [Event("firing", _at(-60), _at(-60))]
    _, per_step = _run("PP", state=state, start=-120)
    assert per_step[-1] == [Event("resolved", _at(-119), _at(-119))]


# Flapping

FLAPPY = "FFPFFPFFPFFP"  # never three fails in a row: no incident, but it flips


def test_it_counts_status_changes() -> None:
    assert status_changes([]) == 0
    assert status_changes(["pass"]) == 0
    assert status_changes(["pass", "pass", "fail", "pass", "pass"]) == 2


def test_it_flags_a_rule_that_flips_without_reaching_the_thresholds() -> None:
    state, per_step = _run(FLAPPY)
    assert _kinds(per_step) == ["flapping"]
    flapping = next(event for events in per_step for event in events)
    assert flapping == Event(
        "flapping", _at(8), None, "status changed 5 times in the last 9 verifications"
    )
    assert state.flapping


def test_it_sends_one_flapping_event_per_flapping_period() -> None:
    _, per_step = _run(FLAPPY * 5)
    assert _kinds(per_step) == ["flapping"]


def test_it_keeps_the_flapping_flag_until_the_window_holds_no_change() -> None:
    state, _ = _run(FLAPPY)
    state, _ = _run("P" * 8, state=state, start=20)
    assert state.recent == ("fail",) + ("pass",) * 9
    assert state.flapping
    state, _ = _run("P", state=state, start=28)
    assert state.recent == ("pass",) * 10
    assert not state.flapping


def test_it_does_not_flag_again_when_the_changes_hover_around_the_threshold() -> None:
    # Fewer changes than the threshold for a while, then more: still the same period.
    _, per_step = _run(FLAPPY + "PPPPPP" + FLAPPY)
    assert _kinds(per_step) == ["flapping"]


def test_it_flags_flapping_again_after_a_quiet_window() -> None:
    _, per_step = _run(FLAPPY + "P" * 10 + FLAPPY)
    assert _kinds(per_step) == ["flapping", "flapping"]


def test_it_does_not_flag_flapping_while_an_incident_is_open() -> None:
    state, per_step = _run("FFF" + "PF" * 10)
    assert _kinds(per_step) == ["firing"]
    assert state.is_open
    assert not state.flapping


def test_it_flags_flapping_when_an_incident_resolves_into_flips() -> None:
    _, per_step = _run("FFF" + "PF" * 4 + "PP")
    assert per_step[-1] == [
        Event("resolved", _at(12), _at(0)),
        Event("flapping", _at(12), None, "status changed 8 times in the last 10 verifications"),
    ]


def test_it_does_not_mute_an_incident_while_flapping() -> None:
    state, _ = _run(FLAPPY)
    _, per_step = _run("FFF", state=state, start=len(FLAPPY))
    assert _kinds(per_step) == ["firing"]


def test_it_keeps_only_the_last_flap_window_statuses() -> None:
    state, _ = _run("FFPP" + "E" * 3 + "PPPFP", AlertPolicy(flap_window=4, flap_threshold=2))
    assert state.recent == ("pass", "pass", "fail", "pass")


def test_it_flags_the_smallest_flap_with_a_threshold_of_one() -> None:
    _, per_step = _run("PF", AlertPolicy(flap_window=2, flap_threshold=1))
    assert _kinds(per_step) == ["flapping"]


# Closing a rule that is disabled or deleted


def test_it_resolves_an_open_incident_when_the_rule_is_closed() -> None:
    state, _ = _run("FFFF")
    state, events = close(state, _at(10), "rule disabled")
    assert events == [Event("resolved", _at(10), _at(0), "rule disabled")]
    assert state == IncidentState()


def test_it_closes_a_rule_with_no_incident_quietly_and_forgets_its_counts() -> None:
    state, _ = _run(FLAPPY + "FF")
    assert state.consecutive_failures == 2
    state, events = close(state, _at(20), "rule deleted")
    assert events == []
    assert state == IncidentState()


def test_it_starts_afresh_after_a_close() -> None:
    state, _ = _run("FF")
    state, _ = close(state, _at(2), "rule disabled")
    state, per_step = _run("FF", state=state, start=3)
    assert _kinds(per_step) == []
    assert state.failing_since == _at(3)


def test_it_wants_a_reason_to_close() -> None:
    with pytest.raises(ValueError, match="reason must say why"):
        close(IncidentState(), T0, "  ")


def test_it_refuses_a_naive_now_when_closing() -> None:
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        close(IncidentState(), datetime(2024, 5, 15), "rule disabled")


# Policies and stored states


@pytest.mark.parametrize(
    "policy",
    [
        AlertPolicy(),
        AlertPolicy(failure_threshold=1, success_threshold=1, reminder_interval_s=60),
        AlertPolicy(send_on_resolved=False, reminder_interval_s=86400),
        AlertPolicy(flap_window=2, flap_threshold=1),
        AlertPolicy(flap_window=100, flap_threshold=99),
    ],
)
def test_it_accepts_a_valid_policy(policy: AlertPolicy) -> None:
    policy.validate()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"failure_threshold": 0}, "failure_threshold must be a whole number at least 1, got 0"),
        ({"failure_threshold": True}, "failure_threshold must be a whole number"),
        ({"failure_threshold": 2.5}, "failure_threshold must be a whole number"),
        ({"success_threshold": -1}, "success_threshold must be a whole number at least 1"),
        ({"send_on_resolved": "yes"}, "send_on_resolved must be true or false, got 'yes'"),
        ({"reminder_interval_s": 59}, r"reminder_interval_s must be 0 \(no reminders\) or at"),
        ({"reminder_interval_s": -60}, "reminder_interval_s must be 0"),
        ({"flap_window": 1}, "flap_window must be a whole number between 2 and 100, got 1"),
        ({"flap_window": 101}, "flap_window must be a whole number between 2 and 100"),
        ({"flap_threshold": 0}, "flap_threshold must be a whole number between 1 and 9"),
        ({"flap_threshold": 10}, r"between 1 and 9 \(10 statuses hold at most 9 changes\)"),
    ],
)
def test_it_names_the_field_of_an_invalid_policy(changes: dict[str, object], message: str) -> None:
    policy = AlertPolicy(**changes)  # type: ignore[arg-type]
    with pytest.raises(AlertPolicyError, match=message):
        policy.validate()


def test_it_refuses_to_step_with_an_invalid_policy() -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        step(IncidentState(), "fail", T0, AlertPolicy(failure_threshold=0))


def test_it_refuses_a_stored_time_that_was_not_parsed() -> None:
    with pytest.raises(TypeError, match=r"IncidentState.failing_since must be a datetime"):
        IncidentState(consecutive_failures=1, failing_since="2024-05-15T10:00:00+00:00")  # type: ignore[arg-type]


def test_it_refuses_a_state_with_negative_counters_or_errors_in_recent() -> None:
    with pytest.raises(ValueError, match="negative"):
        IncidentState(consecutive_passes=-1)
    with pytest.raises(ValueError, match="only pass and fail"):
        IncidentState(recent=("pass", "error"))


# Properties over any sequence

actions = st.lists(st.sampled_from(["pass", "fail", "error", "close"]), max_size=60)
# Mostly a minute or so forwards, sometimes a jump, sometimes backwards.
gaps = st.lists(st.integers(0, 90) | st.integers(-7200, 7200), min_size=60, max_size=60)


@st.composite
def policies(draw: st.DrawFn, send_on_resolved: bool | None = None) -> AlertPolicy:
    """Any valid policy, with small thresholds so that sequences cross them often."""
    window = draw(st.integers(2, 8))
    return AlertPolicy(
        failure_threshold=draw(st.integers(1, 4)),
        success_threshold=draw(st.integers(1, 4)),
        send_on_resolved=draw(st.booleans()) if send_on_resolved is None else send_on_resolved,
        reminder_interval_s=draw(st.sampled_from([0, 60, 120, 3600])),
        flap_window=window,
        flap_threshold=draw(st.integers(1, window - 1)),
    )


def _replay(
    actions: list[str], policy: AlertPolicy, gaps_s: list[int]
) -> list[tuple[str, IncidentState, IncidentState, list[Event]]]:
    state, now, steps = IncidentState(), T0, []
    for action, gap in zip(actions, gaps_s, strict=False):
        now += timedelta(seconds=gap)
        if action == "close":
            new, events = close(state, now, "rule disabled")
        else:
            new, events = step(state, action, now, policy)
        steps.append((action, state, new, events))
        state = new
    return steps


@given(actions, policies(send_on_resolved=True), gaps)
def test_it_alternates_firing_and_resolved_whatever_the_statuses(
    actions: list[str], policy: AlertPolicy, gaps_s: list[int]
) -> None:
    kinds = [
        event.kind
        for _, _, _, events in _replay(actions, policy, gaps_s)
        for event in events
        if event.kind in ("firing", "resolved")
    ]
    assert kinds == ["firing", "resolved"] * (len(kinds) // 2) + ["firing"] * (len(kinds) % 2)


@given(actions, policies(), gaps)
def test_it_keeps_every_step_consistent_whatever_the_statuses(
    actions: list[str], policy: AlertPolicy, gaps_s: list[int]
) -> None:
    for action, before, after, events in _replay(actions, policy, gaps_s):
        kinds = Counter(event.kind for event in events)
        assert max(kinds.values(), default=0) <= 1, events
        opened = not before.is_open and after.is_open
        resolved = before.is_open and not after.is_open
        assert kinds["firing"] == opened
        assert kinds["resolved"] == (resolved and (policy.send_on_resolved or action == "close"))
        assert after.is_open or not kinds["reminder"]
        assert not kinds["flapping"] or not (after.is_open or before.flapping)
        assert all(event.since is None or event.since <= event.at for event in events)
        assert len(after.recent) <= policy.flap_window
        assert action != "error" or (before.is_open, before.recent) == (after.is_open, after.recent)
