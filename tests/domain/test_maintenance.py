"""Maintenance windows: validation, one-off and recurring occurrences, DST, scopes."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from rulewatch.domain.maintenance import (
    MAX_DURATION_S,
    MIN_DURATION_S,
    MaintenanceError,
    MaintenanceWindow,
    covers,
    in_maintenance,
    next_occurrence,
    occurrence_at,
)
from rulewatch.domain.schedule import Schedule, next_due

BERLIN = ZoneInfo("Europe/Berlin")
TICK = timedelta(microseconds=1)
HOUR = timedelta(hours=1)
START = datetime(2024, 1, 1, tzinfo=UTC)


def _utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def _recurring(cron: str, duration_s: int = 3600, **fields: Any) -> MaintenanceWindow:
    window = MaintenanceWindow(starts_at=START, duration_s=duration_s, cron=cron)
    return dataclasses.replace(window, **fields)


# Validation


@pytest.mark.parametrize(
    "window",
    [
        MaintenanceWindow(START, MIN_DURATION_S),
        MaintenanceWindow(START, MAX_DURATION_S),
        MaintenanceWindow(START, 600, scope="rule", rule_id=7),
        MaintenanceWindow(START, 600, scope="tag", tag="prod.db:eu-1"),
        MaintenanceWindow(START, 600, cron="@daily", timezone="America/New_York"),
        MaintenanceWindow(START, 600, cron="0 2 * * 6", ends_at=START + timedelta(days=30)),
        MaintenanceWindow(datetime(2024, 1, 1, 9, tzinfo=BERLIN), 600, cron="*/5 * * * *"),
    ],
)
def test_it_accepts_a_valid_window(window: MaintenanceWindow) -> None:
    window.validate()


@pytest.mark.parametrize("duration_s", [59, MAX_DURATION_S + 1, 0, -60, True, 600.0])
def test_it_names_the_allowed_duration_range(duration_s: int) -> None:
    with pytest.raises(
        MaintenanceError,
        match="duration_s must be a whole number of seconds between 60 and 2678400",
    ):
        MaintenanceWindow(START, duration_s).validate()


def test_it_refuses_a_naive_starts_at() -> None:
    with pytest.raises(MaintenanceError, match="starts_at must be timezone-aware"):
        MaintenanceWindow(datetime(2024, 1, 1), 600).validate()


def test_it_refuses_a_starts_at_that_is_not_a_datetime() -> None:
    with pytest.raises(MaintenanceError, match="starts_at must be a timezone-aware datetime"):
        MaintenanceWindow("2024-01-01T00:00:00Z", 600).validate()  # type: ignore[arg-type]


def test_it_refuses_a_naive_ends_at() -> None:
    with pytest.raises(MaintenanceError, match="ends_at must be timezone-aware"):
        _recurring("0 2 * * *", ends_at=datetime(2024, 2, 1)).validate()


@pytest.mark.parametrize("cron", ["", "* * *", "every day", "@reboot", "61 * * * *"])
def test_it_refuses_malformed_cron_expressions(cron: str) -> None:
    with pytest.raises(MaintenanceError, match=r"^cron .* is not valid: .*use five fields"):
        _recurring(cron).validate()


@pytest.mark.parametrize("cron", ["0 0 * * * *", "0 0 1 1 * 0 2030"])
def test_it_refuses_cron_expressions_with_seconds_or_years(cron: str) -> None:
    with pytest.raises(MaintenanceError, match="has seconds or years; use five fields"):
        _recurring(cron).validate()


def test_it_refuses_a_cron_expression_that_never_fires() -> None:
    with pytest.raises(MaintenanceError, match=r"cron '0 0 30 2 \*' is not valid: it never fires"):
        _recurring("0 0 30 2 *").validate()


@pytest.mark.parametrize("cron", [None, "0 2 * * *"], ids=["one-off", "recurring"])
def test_it_names_an_unknown_timezone(cron: str | None) -> None:
    with pytest.raises(MaintenanceError, match="timezone 'Mars/Base' is unknown"):
        MaintenanceWindow(START, 600, cron=cron, timezone="Mars/Base").validate()


def test_it_refuses_ends_at_on_a_one_off_window() -> None:
    window = MaintenanceWindow(START, 600, ends_at=START + HOUR)
    with pytest.raises(MaintenanceError, match="ends_at is for recurring windows only"):
        window.validate()


@pytest.mark.parametrize("ends_at", [START, START - TICK], ids=["equal", "before"])
def test_it_wants_ends_at_after_starts_at(ends_at: datetime) -> None:
    with pytest.raises(MaintenanceError, match="ends_at must be after starts_at"):
        _recurring("0 2 * * *", ends_at=ends_at).validate()


def test_it_refuses_an_ends_at_that_leaves_no_occurrence() -> None:
    window = _recurring("0 2 * * *", ends_at=_utc(2024, 1, 1, 2))  # the first 02:00 is excluded
    with pytest.raises(MaintenanceError, match="ends_at leaves no time of cron '0 2 \\* \\* \\*'"):
        window.validate()
    dataclasses.replace(window, ends_at=_utc(2024, 1, 1, 2) + TICK).validate()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"scope": "everything"}, "scope must be 'all', 'rule' or 'tag', got 'everything'"),
        ({"scope": "rule"}, "rule_id is needed for scope 'rule'"),
        ({"scope": "rule", "rule_id": 0}, "rule_id is needed for scope 'rule'"),
        ({"scope": "rule", "rule_id": True}, "rule_id is needed for scope 'rule'"),
        ({"scope": "rule", "rule_id": 3, "tag": "db"}, "tag is only for scope 'tag'"),
        ({"rule_id": 3}, "rule_id is only for scope 'rule'"),
        ({"scope": "tag"}, "tag is needed for scope 'tag'"),
        ({"scope": "tag", "tag": ""}, "tag is needed for scope 'tag'"),
        ({"scope": "tag", "tag": "two words"}, "tag is needed for scope 'tag'"),
        ({"scope": "tag", "tag": "db\n"}, "tag is needed for scope 'tag'"),
        ({"scope": "tag", "tag": "db", "rule_id": 3}, "rule_id is only for scope 'rule'"),
        ({"tag": "db"}, "tag is only for scope 'tag'"),
    ],
)
def test_it_names_the_wrong_scope_field(fields: dict[str, Any], message: str) -> None:
    window = dataclasses.replace(MaintenanceWindow(START, 600), **fields)
    with pytest.raises(MaintenanceError, match=message):
        window.validate()


def test_it_names_the_first_wrong_field() -> None:
    window = MaintenanceWindow(START, 5, cron="nonsense", timezone="Mars/Base", scope="x")
    with pytest.raises(MaintenanceError, match=r"^duration_s"):
        window.validate()
    with pytest.raises(MaintenanceError, match=r"^cron"):
        dataclasses.replace(window, duration_s=600).validate()
    with pytest.raises(MaintenanceError, match=r"^timezone"):
        dataclasses.replace(window, duration_s=600, cron="@daily").validate()


def test_it_raises_maintenance_errors_as_value_errors() -> None:
    assert issubclass(MaintenanceError, ValueError)


def test_it_keeps_windows_immutable() -> None:
    window = MaintenanceWindow(START, 600)
    with pytest.raises(dataclasses.FrozenInstanceError):
        window.duration_s = 60  # type: ignore[misc]


@pytest.mark.parametrize(
    "call",
    [
        lambda w: occurrence_at(w, START),
        lambda w: next_occurrence(w, START),
        lambda w: covers(w, 1, ()),
        lambda w: in_maintenance([w], 1, (), START),
    ],
    ids=["occurrence_at", "next_occurrence", "covers", "in_maintenance"],
)
def test_it_refuses_to_compute_with_an_invalid_window(
    call: Callable[[MaintenanceWindow], object],
) -> None:
    with pytest.raises(MaintenanceError, match="rule_id is needed for scope 'rule'"):
        call(MaintenanceWindow(START, 600, scope="rule"))


def test_it_refuses_a_naive_instant_to_look_at() -> None:
    window = MaintenanceWindow(START, 600)
    for call in (occurrence_at, next_occurrence):
        with pytest.raises(ValueError, match="at must be timezone-aware"):
            call(window, datetime(2024, 1, 1))
    with pytest.raises(ValueError, match="at must be timezone-aware"):
        in_maintenance([], 1, (), datetime(2024, 1, 1))


# One-off windows


def test_it_covers_a_one_off_window_from_its_start_up_to_not_including_its_end() -> None:
    window = MaintenanceWindow(_utc(2024, 5, 1, 22), 7200)
    span = (_utc(2024, 5, 1, 22), _utc(2024, 5, 2, 0))
    assert occurrence_at(window, _utc(2024, 5, 1, 22) - TICK) is None
    assert occurrence_at(window, _utc(2024, 5, 1, 22)) == span
    assert occurrence_at(window, _utc(2024, 5, 2, 0) - TICK) == span
    assert occurrence_at(window, _utc(2024, 5, 2, 0)) is None


def test_it_gives_a_one_off_window_as_next_until_it_has_ended() -> None:
    window = MaintenanceWindow(_utc(2024, 5, 1, 22), 7200)
    span = (_utc(2024, 5, 1, 22), _utc(2024, 5, 2, 0))
    assert next_occurrence(window, _utc(2024, 4, 1)) == span
    assert next_occurrence(window, _utc(2024, 5, 1, 23)) == span
    assert next_occurrence(window, _utc(2024, 5, 2, 0)) is None


def test_it_returns_occurrences_in_utc() -> None:
    starts = datetime(2024, 7, 1, 2, tzinfo=BERLIN)  # 00:00 UTC
    for window in (MaintenanceWindow(starts, 600), _recurring("0 2 * * *", timezone="UTC")):
        at = _utc(2024, 7, 1, 2, 5) if window.cron else _utc(2024, 7, 1, 0, 5)
        found = occurrence_at(window, at.astimezone(BERLIN))
        assert found is not None
        assert all(value.tzinfo is UTC for value in found)
        upcoming = next_occurrence(window, _utc(2024, 6, 30))
        assert upcoming is not None
        assert all(value.tzinfo is UTC for value in upcoming)
    assert occurrence_at(MaintenanceWindow(starts, 600), _utc(2024, 7, 1, 0, 5)) == (
        _utc(2024, 7, 1, 0),
        _utc(2024, 7, 1, 0, 10),
    )


@settings(deadline=None)
@given(
    starts_at=st.datetimes(
        min_value=datetime(2001, 1, 1),
        max_value=datetime(2099, 1, 1),
        timezones=st.sampled_from([UTC, BERLIN, ZoneInfo("America/New_York")]),
        allow_imaginary=False,
    ),
    duration_s=st.integers(MIN_DURATION_S, MAX_DURATION_S),
    offset=st.timedeltas(min_value=timedelta(days=-40), max_value=timedelta(days=40)),
)
def test_it_finds_a_one_off_occurrence_exactly_inside_its_span(
    starts_at: datetime, duration_s: int, offset: timedelta
) -> None:
    window = MaintenanceWindow(starts_at, duration_s)
    start = starts_at.astimezone(UTC)  # UTC arithmetic: zone-aware "+" would add wall time
    end, at = start + timedelta(seconds=duration_s), start + offset
    inside = start <= at < end
    assert (occurrence_at(window, at) is not None) == inside
    assert occurrence_at(window, at) == ((start, end) if inside else None)
    assert next_occurrence(window, at) == ((start, end) if at < end else None)


# Recurring windows


def test_it_opens_an_occurrence_at_each_cron_time() -> None:
    window = _recurring("0 3 * * *")
    assert occurrence_at(window, _utc(2024, 5, 15, 3, 30)) == (
        _utc(2024, 5, 15, 3),
        _utc(2024, 5, 15, 4),
    )
    assert occurrence_at(window, _utc(2024, 5, 15, 4)) is None
    assert occurrence_at(window, _utc(2024, 5, 15, 3) - TICK) is None
    assert next_occurrence(window, _utc(2024, 5, 15, 4)) == (
        _utc(2024, 5, 16, 3),
        _utc(2024, 5, 16, 4),
    )


def test_it_runs_an_occurrence_across_midnight() -> None:
    window = _recurring("0 22 * * 5", duration_s=4 * 3600)  # Fridays 22:00 to Saturday 02:00
    assert occurrence_at(window, _utc(2024, 5, 18, 1, 59)) == (
        _utc(2024, 5, 17, 22),
        _utc(2024, 5, 18, 2),
    )
    assert occurrence_at(window, _utc(2024, 5, 18, 2)) is None


def test_it_opens_no_occurrence_for_a_cron_time_before_starts_at() -> None:
    window = _recurring("0 * * * *", duration_s=7200, starts_at=_utc(2024, 5, 15, 10, 30))
    assert occurrence_at(window, _utc(2024, 5, 15, 10, 45)) is None
    assert next_occurrence(window, _utc(2024, 5, 15, 10, 45)) == (
        _utc(2024, 5, 15, 11),
        _utc(2024, 5, 15, 13),
    )
    assert next_occurrence(window, _utc(2024, 5, 1)) == (
        _utc(2024, 5, 15, 11),
        _utc(2024, 5, 15, 13),
    )


def test_it_opens_an_occurrence_at_a_cron_time_equal_to_starts_at() -> None:
    window = _recurring("0 * * * *", starts_at=_utc(2024, 5, 15, 10))
    assert occurrence_at(window, _utc(2024, 5, 15, 10)) == (
        _utc(2024, 5, 15, 10),
        _utc(2024, 5, 15, 11),
    )


def test_it_finds_the_latest_of_overlapping_occurrences() -> None:
    window = _recurring("0 * * * *", duration_s=3 * 3600)
    assert occurrence_at(window, _utc(2024, 5, 15, 10, 30)) == (
        _utc(2024, 5, 15, 10),
        _utc(2024, 5, 15, 13),
    )


def test_it_covers_every_instant_when_occurrences_overlap_for_days() -> None:
    window = _recurring("0 0 * * *", duration_s=2 * 86400, starts_at=_utc(2024, 5, 1))
    at = _utc(2024, 5, 1)
    while at < _utc(2024, 5, 20):
        found = occurrence_at(window, at)
        assert found is not None
        assert found[0] == at.replace(hour=0, minute=0)
        at += timedelta(hours=5, minutes=7)


def test_it_lets_ends_at_bound_starts_not_ends() -> None:
    # The last occurrence starts at 10:00, just before ends_at, and runs its full 3 hours.
    window = _recurring("0 * * * *", duration_s=3 * 3600, ends_at=_utc(2024, 5, 15, 10) + TICK)
    last = (_utc(2024, 5, 15, 10), _utc(2024, 5, 15, 13))
    assert occurrence_at(window, _utc(2024, 5, 15, 12, 59)) == last
    assert next_occurrence(window, _utc(2024, 5, 15, 12, 59)) == last
    assert occurrence_at(window, _utc(2024, 5, 15, 13)) is None
    assert next_occurrence(window, _utc(2024, 5, 15, 13)) is None


def test_it_opens_no_occurrence_at_ends_at_itself() -> None:
    window = _recurring("0 * * * *", duration_s=3 * 3600, ends_at=_utc(2024, 5, 15, 10))
    assert occurrence_at(window, _utc(2024, 5, 15, 10, 30)) == (
        _utc(2024, 5, 15, 9),
        _utc(2024, 5, 15, 12),
    )
    assert occurrence_at(window, _utc(2024, 5, 15, 12)) is None
    assert next_occurrence(window, _utc(2024, 5, 15, 12)) is None


def test_it_finds_a_rare_cron_time_years_back() -> None:
    window = _recurring("0 0 29 2 *", duration_s=MAX_DURATION_S)  # leap days only
    assert occurrence_at(window, _utc(2024, 3, 20)) == (
        _utc(2024, 2, 29),
        _utc(2024, 2, 29) + timedelta(days=31),
    )
    assert occurrence_at(window, _utc(2025, 3, 20)) is None
    assert next_occurrence(window, _utc(2025, 3, 20)) == (
        _utc(2028, 2, 29),
        _utc(2028, 2, 29) + timedelta(days=31),
    )


# Daylight saving time (Europe/Berlin: 2024-03-31 02:00 -> 03:00, 2024-10-27 03:00 -> 02:00)


def test_it_opens_a_0200_berlin_window_at_0300_on_the_spring_forward_day() -> None:
    window = _recurring("0 2 * * *", timezone="Europe/Berlin")
    spring = (_utc(2024, 3, 31, 1), _utc(2024, 3, 31, 2))  # 03:00 to 04:00 CEST
    assert spring[0].astimezone(BERLIN).strftime("%H:%M %Z") == "03:00 CEST"
    assert next_occurrence(window, _utc(2024, 3, 30, 12)) == spring
    assert occurrence_at(window, _utc(2024, 3, 31, 0, 30)) is None  # 01:30 CET
    assert occurrence_at(window, _utc(2024, 3, 31, 1, 30)) == spring
    assert occurrence_at(window, _utc(2024, 3, 30, 1, 30)) == (
        _utc(2024, 3, 30, 1),  # 02:00 CET
        _utc(2024, 3, 30, 2),
    )
    assert next_occurrence(window, spring[1]) == (_utc(2024, 4, 1, 0), _utc(2024, 4, 1, 1))


def test_it_opens_a_0130_berlin_window_once_on_the_fall_back_day() -> None:
    # 01:30 is before the repeated hour: 01:30 CEST is 23:30 UTC the day before.
    window = _recurring("30 1 * * *", timezone="Europe/Berlin")
    fall = (_utc(2024, 10, 26, 23, 30), _utc(2024, 10, 27, 0, 30))
    assert occurrence_at(window, _utc(2024, 10, 27, 0)) == fall
    assert next_occurrence(window, fall[1]) == (
        _utc(2024, 10, 28, 0, 30),
        _utc(2024, 10, 28, 1, 30),
    )


def test_it_opens_a_0230_berlin_window_once_when_fall_back_repeats_0230() -> None:
    window = _recurring("30 2 * * *", duration_s=600, timezone="Europe/Berlin")
    first = (_utc(2024, 10, 27, 0, 30), _utc(2024, 10, 27, 0, 40))  # 02:30 CEST
    assert occurrence_at(window, _utc(2024, 10, 27, 0, 35)) == first
    assert occurrence_at(window, _utc(2024, 10, 27, 1, 35)) is None  # 02:35 CET, the repeat
    assert next_occurrence(window, first[1]) == (
        _utc(2024, 10, 28, 1, 30),
        _utc(2024, 10, 28, 1, 40),
    )


def test_it_keeps_the_first_0230_berlin_occurrence_open_through_the_repeated_0230() -> None:
    window = _recurring("30 2 * * *", duration_s=2 * 3600, timezone="Europe/Berlin")
    first = (_utc(2024, 10, 27, 0, 30), _utc(2024, 10, 27, 2, 30))  # 02:30 CEST to 03:30 CET
    assert occurrence_at(window, _utc(2024, 10, 27, 1, 35)) == first  # after the skipped repeat
    assert next_occurrence(window, _utc(2024, 10, 27, 1, 35)) == first


def test_it_opens_a_0130_new_york_window_once_when_fall_back_repeats_0130() -> None:
    window = _recurring("30 1 * * *", duration_s=1800, timezone="America/New_York")
    first = (_utc(2024, 11, 3, 5, 30), _utc(2024, 11, 3, 6))  # 01:30 EDT
    assert occurrence_at(window, _utc(2024, 11, 3, 5, 45)) == first
    assert occurrence_at(window, _utc(2024, 11, 3, 6, 45)) is None  # 01:45 EST, the repeat
    assert next_occurrence(window, first[1]) == (_utc(2024, 11, 4, 6, 30), _utc(2024, 11, 4, 7))


def test_it_opens_an_hourly_berlin_window_every_real_hour_across_fall_back() -> None:
    window = _recurring("0 * * * *", duration_s=1800, timezone="Europe/Berlin")
    for hour in range(22, 22 + 6):  # 2024-10-26 22:00 UTC to 2024-10-27 03:00 UTC
        start = _utc(2024, 10, 26) + timedelta(hours=hour)
        assert occurrence_at(window, start + timedelta(minutes=10)) == (
            start,
            start + timedelta(minutes=30),
        )


def test_it_keeps_a_long_berlin_occurrence_open_across_spring_forward() -> None:
    window = _recurring("0 2 * * *", duration_s=2 * 86400, timezone="Europe/Berlin")
    assert occurrence_at(window, _utc(2024, 3, 31, 0, 59)) == (
        _utc(2024, 3, 30, 1),
        _utc(2024, 4, 1, 1),
    )


# Recurring windows: properties

CRONS = [
    "*/7 * * * *",
    "0 * * * *",
    "*/20 1-3 * * *",
    "0 2 * * *",
    "30 2 * * *",
    "30 1 * * *",
    "15 3 * * 0",
    "0 0 1 * *",
    "@daily",
]
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]


def _first_fire_from(window: MaintenanceWindow, at: datetime) -> datetime:
    """The first cron time at or after ``at``, as schedule.py computes it."""
    schedule = Schedule(cron=window.cron, timezone=window.timezone)
    return next_due(schedule, at - TICK, at - TICK)


@st.composite
def recurring_windows(draw: st.DrawFn) -> MaintenanceWindow:
    """Valid recurring windows, with and without ends_at, around DST changes."""
    starts_at = draw(st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1)))
    duration_s = draw(
        st.one_of(
            st.integers(MIN_DURATION_S, 6 * 3600), st.integers(MIN_DURATION_S, MAX_DURATION_S)
        )
    )
    ends_after = draw(st.none() | st.timedeltas(min_value=TICK, max_value=timedelta(days=60)))
    starts_at = starts_at.replace(tzinfo=UTC)
    window = MaintenanceWindow(
        starts_at=starts_at,
        duration_s=duration_s,
        cron=draw(st.sampled_from(CRONS)),
        timezone=draw(st.sampled_from(ZONES)),
        ends_at=None if ends_after is None else starts_at + ends_after,
    )
    try:
        window.validate()
    except MaintenanceError:
        assume(False)  # ends_at before the first cron time: covered by its own test
    return window


def _valid_start(window: MaintenanceWindow, start: datetime) -> bool:
    return start >= window.starts_at and (window.ends_at is None or start < window.ends_at)


@settings(deadline=None, max_examples=150)
@given(window=recurring_windows(), offset=st.timedeltas(timedelta(days=-2), timedelta(days=90)))
def test_it_finds_the_latest_cron_time_whose_occurrence_covers_the_instant(
    window: MaintenanceWindow, offset: timedelta
) -> None:
    at = window.starts_at + offset
    duration = timedelta(seconds=window.duration_s)
    found = occurrence_at(window, at)
    # The first valid cron time that would still cover ``at``, if any.
    candidate = _first_fire_from(window, max(window.starts_at, at - duration + TICK))
    if found is None:
        assert candidate > at or not _valid_start(window, candidate)
        return
    start, end = found
    assert start <= at < end
    assert end - start == duration
    assert _valid_start(window, start)
    assert _first_fire_from(window, start) == start  # a cron time
    later = _first_fire_from(window, start + TICK)
    assert later > at or not _valid_start(window, later)  # no later one covers ``at``


@settings(deadline=None, max_examples=150)
@given(window=recurring_windows(), offset=st.timedeltas(timedelta(days=-2), timedelta(days=90)))
def test_it_gives_the_covering_occurrence_or_the_first_to_start_after_the_instant(
    window: MaintenanceWindow, offset: timedelta
) -> None:
    at = window.starts_at + offset
    upcoming = next_occurrence(window, at)
    current = occurrence_at(window, at)
    if current is not None:
        assert upcoming == current
        return
    first = _first_fire_from(window, max(window.starts_at, at + TICK))
    if upcoming is None:
        assert window.ends_at is not None and first >= window.ends_at
        return
    start, end = upcoming
    assert end > at  # never one that is already over
    assert start == first > at
    assert _valid_start(window, start)
    assert end - start == timedelta(seconds=window.duration_s)


@settings(deadline=None)
@given(
    starts_at=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1)),
    duration_s=st.integers(MIN_DURATION_S, 5 * 3600),
    offset=st.timedeltas(timedelta(hours=-3), timedelta(days=3)),
)
def test_it_matches_hand_computed_hourly_occurrences_in_a_half_hour_zone(
    starts_at: datetime, duration_s: int, offset: timedelta
) -> None:
    # Kolkata is UTC+05:30 all year: "0 * * * *" fires at every half past the hour UTC.
    starts_at = starts_at.replace(tzinfo=UTC)
    window = MaintenanceWindow(starts_at, duration_s, cron="0 * * * *", timezone="Asia/Kolkata")
    at = starts_at + offset
    half_past = at.replace(minute=30, second=0, microsecond=0)
    latest = half_past if half_past <= at else half_past - HOUR
    expected = None
    if latest >= starts_at and at < latest + timedelta(seconds=duration_s):
        expected = (latest, latest + timedelta(seconds=duration_s))
    assert occurrence_at(window, at) == expected


# Scopes


def test_it_covers_every_rule_with_scope_all() -> None:
    window = MaintenanceWindow(START, 600)
    assert covers(window, 1, ())
    assert covers(window, 99, ["db"])


def test_it_covers_only_its_rule_with_scope_rule() -> None:
    window = MaintenanceWindow(START, 600, scope="rule", rule_id=7)
    assert covers(window, 7, ())
    assert not covers(window, 8, ["7"])


def test_it_covers_only_rules_with_its_tag_with_scope_tag() -> None:
    window = MaintenanceWindow(START, 600, scope="tag", tag="db")
    assert covers(window, 1, {"web", "db"})
    assert not covers(window, 1, ["web"])
    assert not covers(window, 1, ["prod-db", "DB"])
    assert not covers(window, 1, ())


def test_it_refuses_tags_given_as_one_string() -> None:
    window = MaintenanceWindow(START, 600, scope="tag", tag="db")
    with pytest.raises(TypeError, match="tags must be a collection of tag names"):
        covers(window, 1, "prod-db")
    with pytest.raises(TypeError, match="tags must be a collection of tag names"):
        in_maintenance([window], 1, "prod-db", START)


# Being in maintenance


def test_it_is_not_in_maintenance_without_windows() -> None:
    assert not in_maintenance([], 1, ["db"], START)


def test_it_is_in_maintenance_when_a_covering_window_is_active() -> None:
    windows = [
        MaintenanceWindow(_utc(2024, 5, 1), 3600, scope="rule", rule_id=2),  # active, other rule
        MaintenanceWindow(_utc(2024, 5, 2), 3600, scope="rule", rule_id=1),  # this rule, later
        _recurring("0 0 * * *", scope="tag", tag="db"),  # this tag, daily 00:00 to 01:00
    ]
    assert not in_maintenance(windows[:2], 1, ["db"], _utc(2024, 5, 1, 0, 30))
    assert in_maintenance(windows, 1, ["db"], _utc(2024, 5, 1, 0, 30))
    assert not in_maintenance(windows, 1, ["web"], _utc(2024, 5, 1, 0, 30))
    assert in_maintenance(windows, 1, ["web"], _utc(2024, 5, 2, 0, 30))
    assert not in_maintenance(windows, 1, ["db"], _utc(2024, 5, 2, 1))


def test_it_reads_windows_from_any_iterable() -> None:
    windows = (MaintenanceWindow(START, 600) for _ in range(1))
    assert in_maintenance(windows, 1, (), START)


@settings(deadline=None)
@given(
    rule_id=st.integers(1, 3),
    tags=st.frozensets(st.sampled_from(["db", "web"])),
    offset=st.timedeltas(timedelta(0), timedelta(days=3)),
)
def test_it_is_in_maintenance_exactly_when_a_covering_window_has_an_occurrence(
    rule_id: int, tags: frozenset[str], offset: timedelta
) -> None:
    windows = [
        _recurring("0 */6 * * *", duration_s=3600, scope="rule", rule_id=2),
        _recurring("30 1 * * *", duration_s=7200, scope="tag", tag="db"),
        MaintenanceWindow(_utc(2024, 1, 2, 12), 3600),
    ]
    at = START + offset
    expected = any(covers(w, rule_id, tags) and occurrence_at(w, at) is not None for w in windows)
    assert in_maintenance(windows, rule_id, tags, at) == expected
