"""Schedule arithmetic: validation, spread first runs, drift-free next runs, DST."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rulewatch.domain.schedule import (
    Schedule,
    ScheduleError,
    first_due,
    lateness_s,
    leaves_gap,
    next_due,
)

NOW = datetime(2024, 5, 15, 10, 30, 12, 345678, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")
DAILY_0230_BERLIN = Schedule(interval_s=None, cron="30 2 * * *", timezone="Europe/Berlin")


def _utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# Validation


@pytest.mark.parametrize(
    "schedule",
    [
        Schedule(interval_s=1),
        Schedule(interval_s=2678400),
        Schedule(cron="*/5 * * * *"),
        Schedule(cron="@daily", timezone="America/New_York"),
        DAILY_0230_BERLIN,
    ],
)
def test_it_accepts_a_valid_schedule(schedule: Schedule) -> None:
    schedule.validate()


@pytest.mark.parametrize(
    "schedule", [Schedule(), Schedule(interval_s=60, cron="* * * * *")], ids=["neither", "both"]
)
def test_it_wants_exactly_one_of_interval_and_cron(schedule: Schedule) -> None:
    with pytest.raises(ScheduleError, match="exactly one of interval_s or cron"):
        schedule.validate()


@pytest.mark.parametrize("interval_s", [0, -5, 2678401, True])
def test_it_names_the_allowed_interval_range(interval_s: int) -> None:
    with pytest.raises(ScheduleError, match="interval_s must be between 1 and 2678400 seconds"):
        Schedule(interval_s=interval_s).validate()


def test_it_names_the_cron_expression_it_cannot_parse() -> None:
    with pytest.raises(ScheduleError, match=r"cron '61 \* \* \* \*' is not valid: "):
        Schedule(cron="61 * * * *").validate()


@pytest.mark.parametrize("cron", ["", "* * *", "every day", "@reboot"])
def test_it_refuses_malformed_cron_expressions(cron: str) -> None:
    with pytest.raises(ScheduleError, match="is not valid"):
        Schedule(cron=cron).validate()


def test_it_refuses_a_cron_expression_that_never_fires() -> None:
    with pytest.raises(ScheduleError, match=r"cron '0 0 30 2 \*' is not valid: it never fires"):
        Schedule(cron="0 0 30 2 *").validate()


@pytest.mark.parametrize("zone", ["Mars/Base", "", "../etc/passwd"])
def test_it_names_an_unknown_timezone(zone: str) -> None:
    with pytest.raises(ScheduleError, match=f"timezone '{zone}' is unknown"):
        Schedule(interval_s=60, timezone=zone).validate()


def test_it_raises_schedule_errors_as_value_errors() -> None:
    assert issubclass(ScheduleError, ValueError)


# First runs


def test_it_starts_an_interval_rule_within_one_interval() -> None:
    schedule = Schedule(interval_s=300)
    for key in range(1, 200):
        due = first_due(schedule, key, NOW)
        assert NOW <= due < NOW + timedelta(seconds=300)


def test_it_gives_a_rule_the_same_first_offset_every_time() -> None:
    schedule = Schedule(interval_s=3600)
    assert first_due(schedule, 42, NOW) == first_due(schedule, 42, NOW)


def test_it_spreads_100000_new_rules_evenly_over_the_interval() -> None:
    schedule = Schedule(interval_s=60)
    buckets = Counter(
        int((first_due(schedule, key, NOW) - NOW).total_seconds()) for key in range(1, 100_001)
    )
    assert sorted(buckets) == list(range(60))
    expected = 100_000 / 60
    assert all(abs(n - expected) / expected < 0.02 for n in buckets.values())


def test_it_spreads_rules_whose_ids_share_a_stride() -> None:
    schedule = Schedule(interval_s=60)
    buckets = Counter(
        int((first_due(schedule, key, NOW) - NOW).total_seconds())
        for key in range(0, 60 * 10_000, 60)
    )
    expected = 10_000 / 60
    assert len(buckets) == 60
    assert all(abs(n - expected) / expected < 0.05 for n in buckets.values())


def test_it_starts_a_cron_rule_at_its_next_fire_time() -> None:
    schedule = Schedule(cron="*/15 * * * *")
    assert first_due(schedule, 1, NOW) == _utc(2024, 5, 15, 10, 45)


def test_it_reads_cron_times_in_the_rules_timezone() -> None:
    # 02:30 in Berlin in May is 00:30 UTC (CEST, +02:00).
    assert first_due(DAILY_0230_BERLIN, 1, NOW) == _utc(2024, 5, 16, 0, 30)


def test_it_returns_due_times_in_utc() -> None:
    for schedule in (Schedule(interval_s=60), DAILY_0230_BERLIN):
        assert first_due(schedule, 1, NOW).tzinfo is UTC
        assert next_due(schedule, NOW, NOW).tzinfo is UTC


# Next runs: intervals


def test_it_keeps_interval_rules_on_their_grid_over_1000_late_runs() -> None:
    schedule = Schedule(interval_s=60)
    due = first = first_due(schedule, 7, NOW)
    for step in range(1, 1001):
        started = due + timedelta(seconds=step % 50, microseconds=999)  # late, never by a slot
        due = next_due(schedule, due, started)
        assert due == first + step * timedelta(seconds=60)


def test_it_skips_missed_interval_slots_instead_of_replaying_them() -> None:
    schedule = Schedule(interval_s=60)
    previous = _utc(2024, 5, 15, 10, 0)
    late = _utc(2024, 5, 15, 10, 5) + timedelta(seconds=30)
    assert next_due(schedule, previous, late) == _utc(2024, 5, 15, 10, 6)


def test_it_moves_past_now_when_now_is_exactly_on_a_slot() -> None:
    schedule = Schedule(interval_s=60)
    previous = _utc(2024, 5, 15, 10, 0)
    assert next_due(schedule, previous, _utc(2024, 5, 15, 10, 2)) == _utc(2024, 5, 15, 10, 3)


def test_it_advances_one_interval_when_run_before_it_was_due() -> None:
    schedule = Schedule(interval_s=60)
    previous = _utc(2024, 5, 15, 10, 0)
    assert next_due(schedule, previous, previous - timedelta(seconds=5)) == _utc(2024, 5, 15, 10, 1)


@given(
    interval_s=st.integers(1, 2678400),
    previous=st.datetimes(
        min_value=datetime(2001, 1, 1), max_value=datetime(2099, 1, 1), timezones=st.just(UTC)
    ),
    elapsed=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=800)),
)
def test_it_picks_the_first_slot_on_the_grid_after_now(
    interval_s: int, previous: datetime, elapsed: timedelta
) -> None:
    step = timedelta(seconds=interval_s)
    now = previous + elapsed
    due = next_due(Schedule(interval_s=interval_s), previous, now)
    assert due > now >= due - step
    assert (due - previous) % step == timedelta(0)


# Next runs: cron


def test_it_keeps_cron_rules_on_their_grid_over_1000_late_runs() -> None:
    schedule = Schedule(cron="*/5 * * * *")
    due = first = first_due(schedule, 1, NOW)
    for step in range(1, 1001):
        due = next_due(schedule, due, due + timedelta(seconds=step % 290))
        assert due == first + step * timedelta(minutes=5)


def test_it_skips_missed_cron_times_instead_of_replaying_them() -> None:
    schedule = Schedule(cron="*/5 * * * *")
    previous = _utc(2024, 5, 15, 10, 0)
    assert next_due(schedule, previous, _utc(2024, 5, 15, 11, 2)) == _utc(2024, 5, 15, 11, 5)


def test_it_moves_a_cron_rule_past_its_previous_due_when_run_early() -> None:
    schedule = Schedule(cron="*/5 * * * *")
    previous = _utc(2024, 5, 15, 10, 0)
    assert next_due(schedule, previous, previous - timedelta(minutes=3)) == _utc(2024, 5, 15, 10, 5)


def test_it_runs_a_daily_berlin_job_at_0300_when_spring_skips_0230() -> None:
    # 2024-03-31: Berlin clocks jump from 02:00 CET to 03:00 CEST.
    due = next_due(DAILY_0230_BERLIN, _utc(2024, 3, 30, 1, 30), _utc(2024, 3, 30, 1, 30))
    assert due == _utc(2024, 3, 31, 1, 0)
    assert due.astimezone(BERLIN).strftime("%H:%M %Z") == "03:00 CEST"
    after = next_due(DAILY_0230_BERLIN, due, due)
    assert after.astimezone(BERLIN).strftime("%Y-%m-%d %H:%M %Z") == "2024-04-01 02:30 CEST"


def test_it_runs_a_daily_berlin_job_once_when_autumn_repeats_0230() -> None:
    # 2024-10-27: Berlin clocks fall back from 03:00 CEST to 02:00 CET; 02:30 happens twice.
    due = next_due(DAILY_0230_BERLIN, _utc(2024, 10, 26, 0, 30), _utc(2024, 10, 26, 0, 30))
    assert due == _utc(2024, 10, 27, 0, 30)
    after = next_due(DAILY_0230_BERLIN, due, due)
    assert after == _utc(2024, 10, 28, 1, 30)
    assert after.astimezone(BERLIN).strftime("%Y-%m-%d %H:%M %Z") == "2024-10-28 02:30 CET"


def test_it_skips_the_repeated_0230_when_started_inside_the_repeated_hour() -> None:
    inside = _utc(2024, 10, 27, 1, 10)  # 02:10 CET, after the first 02:30 (CEST)
    assert first_due(DAILY_0230_BERLIN, 1, inside) == _utc(2024, 10, 28, 1, 30)


def test_it_runs_a_daily_berlin_job_once_a_day_for_a_year() -> None:
    due = first_due(DAILY_0230_BERLIN, 1, _utc(2024, 1, 1))
    runs = []
    for _ in range(366):
        runs.append(due.astimezone(BERLIN))
        due = next_due(DAILY_0230_BERLIN, due, due)
    assert len({run.date() for run in runs}) == 366
    off_time = [run.strftime("%Y-%m-%d %H:%M") for run in runs if run.strftime("%H:%M") != "02:30"]
    assert off_time == ["2024-03-31 03:00"]


def test_it_runs_an_hourly_cron_every_real_hour_across_the_autumn_change() -> None:
    hourly = Schedule(cron="0 * * * *", timezone="Europe/Berlin")
    due = first_due(hourly, 1, _utc(2024, 10, 26, 21, 30))
    runs = [due]
    for _ in range(26):
        runs.append(next_due(hourly, runs[-1], runs[-1]))
    assert all(b - a == timedelta(hours=1) for a, b in pairwise(runs))


def test_it_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        first_due(Schedule(interval_s=60), 1, datetime(2024, 5, 15, 10, 30))
    with pytest.raises(ValueError, match="previous_due must be timezone-aware"):
        next_due(Schedule(interval_s=60), datetime(2024, 5, 15), NOW)


def test_it_refuses_to_compute_with_an_invalid_schedule() -> None:
    with pytest.raises(ScheduleError, match="interval_s must be between"):
        next_due(Schedule(interval_s=0), NOW, NOW)


# Lateness


def test_it_measures_how_late_a_run_started() -> None:
    assert lateness_s(NOW, NOW + timedelta(seconds=2, milliseconds=500)) == 2.5


def test_it_counts_an_early_start_as_on_time() -> None:
    assert lateness_s(NOW, NOW - timedelta(seconds=3)) == 0.0


class TestLeavesGap:
    due = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def _after(self, seconds: float) -> datetime:
        return self.due + timedelta(seconds=seconds)

    def test_it_sees_no_gap_in_a_run_late_by_less_than_ten_s(self) -> None:
        every_second = Schedule(interval_s=1)
        assert not leaves_gap(every_second, self.due, self._after(9.9), timeout_s=5)

    def test_it_sees_a_gap_when_a_later_due_time_passed_unverified(self) -> None:
        every_5s = Schedule(interval_s=5)
        assert leaves_gap(every_5s, self.due, self._after(12), timeout_s=10)
        every_minute = Schedule(interval_s=60)
        assert not leaves_gap(every_minute, self.due, self._after(12), timeout_s=10)

    def test_it_sees_a_gap_in_a_run_later_than_a_crashed_worker_may_make_it(self) -> None:
        hourly = Schedule(interval_s=3600)
        assert not leaves_gap(hourly, self.due, self._after(40), timeout_s=10)
        assert leaves_gap(hourly, self.due, self._after(41), timeout_s=10)

    def test_it_reads_a_cron_rules_next_fire(self) -> None:
        every_minute = Schedule(cron="* * * * *")
        assert leaves_gap(every_minute, self.due, self._after(61), timeout_s=60)
        assert not leaves_gap(every_minute, self.due, self._after(59), timeout_s=60)
