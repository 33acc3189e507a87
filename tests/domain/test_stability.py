"""Stability arithmetic: rates, targets, error budgets, windows and rollup plans."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rulewatch.domain.stability import (
    BucketPlan,
    Counts,
    RuleStability,
    parse_window,
    plan_buckets,
    rule_stability,
    stability_rate,
    summarize,
)

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
NOW = datetime(2024, 5, 15, 10, 30, 12, tzinfo=UTC)


# Counts and rates


def test_it_adds_counts_field_by_field() -> None:
    assert Counts(1, 2, 3) + Counts(10, 20, 30) == Counts(11, 22, 33)


def test_it_totals_errors_with_passes_and_fails() -> None:
    assert Counts(passed=5, failed=2, errors=1).total == 8


def test_it_refuses_negative_counts() -> None:
    with pytest.raises(ValueError, match="negative"):
        Counts(passed=-1)


def test_it_reports_no_data_without_samples() -> None:
    assert stability_rate(Counts()) is None


def test_it_reports_no_data_when_there_are_only_errors() -> None:
    assert stability_rate(Counts(errors=7)) is None


def test_it_computes_the_rate_from_passes_and_fails() -> None:
    assert stability_rate(Counts(passed=3, failed=1)) == 0.75


def test_it_leaves_errors_out_of_the_rate() -> None:
    assert stability_rate(Counts(passed=3, failed=1, errors=100)) == 0.75


def test_it_reports_zero_when_everything_failed() -> None:
    assert stability_rate(Counts(failed=4)) == 0.0


# Per rule: target and error budget


def test_it_meets_a_target_that_the_rate_reaches_exactly() -> None:
    result = rule_stability(1, "api", Counts(passed=999, failed=1), target=0.999)
    assert result.rate == 0.999
    assert result.meets_target is True


def test_it_misses_a_target_the_rate_falls_short_of() -> None:
    result = rule_stability(1, "api", Counts(passed=998, failed=2), target=0.999)
    assert result.meets_target is False


def test_it_has_no_verdict_and_no_budget_without_data() -> None:
    result = rule_stability(7, "api", Counts(errors=3), target=0.99)
    assert (result.rate, result.meets_target, result.error_budget_left) == (None, None, None)
    assert (result.rule_id, result.name, result.target) == (7, "api", 0.99)


def test_it_keeps_the_whole_budget_without_failures() -> None:
    result = rule_stability(1, "api", Counts(passed=1000), target=0.99)
    assert result.error_budget_left == 1.0


def test_it_reports_the_fraction_of_the_budget_left() -> None:
    # 1000 samples at 99% allow 10 failures; 4 used leaves 60%.
    result = rule_stability(1, "api", Counts(passed=996, failed=4), target=0.99)
    assert result.error_budget_left == pytest.approx(0.6)


def test_it_reports_an_overspent_budget_as_negative() -> None:
    # 20 failures against 10 allowed: the budget is spent twice over.
    result = rule_stability(1, "api", Counts(passed=980, failed=20), target=0.99)
    assert result.error_budget_left == pytest.approx(-1.0)


def test_it_has_no_budget_for_a_target_of_one_hundred_percent() -> None:
    result = rule_stability(1, "api", Counts(passed=10), target=1.0)
    assert result.error_budget_left is None
    assert result.meets_target is True


def test_it_ignores_errors_when_spending_the_budget() -> None:
    result = rule_stability(1, "api", Counts(passed=100, errors=50), target=0.9)
    assert result.error_budget_left == 1.0


@pytest.mark.parametrize("target", [-0.1, 1.01, 99.9])
def test_it_refuses_a_target_outside_zero_and_one(target: float) -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        rule_stability(1, "api", Counts(), target=target)


# Summaries


def _rule(rule_id: int, counts: Counts, target: float = 0.9) -> RuleStability:
    return rule_stability(rule_id, f"rule {rule_id}", counts, target)


def test_it_pools_counts_rather_than_averaging_rates() -> None:
    summary = summarize([_rule(1, Counts(passed=1)), _rule(2, Counts(passed=9, failed=90))])
    assert summary.counts == Counts(passed=10, failed=90)
    assert summary.rate == 0.1


def test_it_counts_rules_with_data_and_rules_meeting_their_target() -> None:
    items = [
        _rule(1, Counts(passed=10)),
        _rule(2, Counts(passed=5, failed=5)),
        _rule(3, Counts(errors=4)),
    ]
    summary = summarize(items)
    assert (summary.rules_total, summary.rules_with_data, summary.rules_meeting_target) == (
        3,
        2,
        1,
    )
    assert summary.counts.errors == 4


def test_it_summarizes_no_rules_as_no_data() -> None:
    summary = summarize([])
    assert summary.counts == Counts()
    assert summary.rate is None
    assert summary.rules_total == 0


# Windows


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1h", HOUR),
        ("24h", DAY),
        ("7d", 7 * DAY),
        ("30d", 30 * DAY),
        ("90d", 90 * DAY),
        ("365d", 365 * DAY),
        ("60m", HOUR),
        ("90m", timedelta(minutes=90)),
        ("2w", 14 * DAY),
        ("400d", 400 * DAY),
        ("0007d", 7 * DAY),
        (" 7d ", 7 * DAY),
    ],
)
def test_it_reads_a_number_and_a_unit_as_a_window(text: str, expected: timedelta) -> None:
    assert parse_window(text) == expected


@pytest.mark.parametrize(
    "text",
    ["7x", "", "d", "7", "7 d", "-7d", "1.5h", "7D", "1M", "7dd", "\u0667d", "\uff17d", "²h"],
)
def test_it_explains_a_window_it_does_not_understand(text: str) -> None:
    with pytest.raises(ValueError, match="not understood: use a number and a unit"):
        parse_window(text)


def test_it_quotes_the_window_it_could_not_read() -> None:
    with pytest.raises(ValueError, match=r"window '7x' not understood.*like 24h or 7d"):
        parse_window("7x")


@pytest.mark.parametrize(
    "text", ["0m", "0h", "0d", "401d", "58w", "9601h", "99999999999999d", "9" * 5000 + "w"]
)
def test_it_refuses_windows_shorter_than_an_hour_or_longer_than_400_days(text: str) -> None:
    with pytest.raises(ValueError, match="out of range: use between 1h and 400d"):
        parse_window(text)


@pytest.mark.parametrize("text", ["1m", "15m", "59m"])
def test_it_says_the_smallest_window_is_one_hour(text: str) -> None:
    with pytest.raises(ValueError, match=r"rollups are hourly, so the smallest window is 1h"):
        parse_window(text)


# Bucket plans


def _hours(ranges: list[tuple[datetime, datetime]], step: timedelta) -> list[datetime]:
    hours: list[datetime] = []
    for start, end in ranges:
        bucket = start
        while bucket < end:
            hours.extend(bucket + i * HOUR for i in range(step // HOUR))
            bucket += step
    return hours


def test_it_reads_a_30_day_window_mostly_from_daily_rollups() -> None:
    plan = plan_buckets(30 * DAY, NOW)
    assert plan.daily == [(datetime(2024, 4, 16, tzinfo=UTC), datetime(2024, 5, 15, tzinfo=UTC))]
    assert plan.hourly == [
        (datetime(2024, 4, 15, 10, tzinfo=UTC), datetime(2024, 4, 16, tzinfo=UTC)),
        (datetime(2024, 5, 15, tzinfo=UTC), datetime(2024, 5, 15, 11, tzinfo=UTC)),
    ]


def test_it_includes_the_current_partial_hour() -> None:
    plan = plan_buckets(HOUR, NOW)
    start, end = datetime(2024, 5, 15, 9, tzinfo=UTC), datetime(2024, 5, 15, 11, tzinfo=UTC)
    assert plan == BucketPlan(hourly=[(start, end)], daily=[])


def test_it_reads_a_window_shorter_than_a_day_from_hourly_rollups_only() -> None:
    plan = plan_buckets(DAY, NOW)
    assert plan.daily == []
    assert len(_hours(plan.hourly, HOUR)) == 25


def test_it_covers_each_hour_of_a_window_exactly_once() -> None:
    plan = plan_buckets(7 * DAY, NOW)
    hours = sorted(_hours(plan.hourly, HOUR) + _hours(plan.daily, DAY))
    start = datetime(2024, 5, 8, 10, tzinfo=UTC)
    assert hours == [start + i * HOUR for i in range(7 * 24 + 1)]


def test_it_converts_now_to_utc_before_planning() -> None:
    berlin_summer = timezone(timedelta(hours=2))
    assert plan_buckets(7 * DAY, NOW.astimezone(berlin_summer)) == plan_buckets(7 * DAY, NOW)


def test_it_refuses_a_naive_now() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        plan_buckets(DAY, datetime(2024, 5, 15, 10, 30))


def test_it_refuses_an_empty_window() -> None:
    with pytest.raises(ValueError, match="positive"):
        plan_buckets(timedelta(0), NOW)


@given(
    now=st.datetimes(
        min_value=datetime(2001, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
    ),
    window=st.timedeltas(min_value=timedelta(minutes=1), max_value=timedelta(days=400)),
)
def test_it_plans_contiguous_aligned_ranges_that_cover_the_window(
    now: datetime, window: timedelta
) -> None:
    plan = plan_buckets(window, now)
    ranges = sorted(plan.hourly + plan.daily)
    expected_start = (now - window).replace(minute=0, second=0, microsecond=0)
    expected_end = now.replace(minute=0, second=0, microsecond=0) + HOUR
    # Sorted, non-empty and end-to-start adjacent: every hour once, no gap, no overlap.
    assert ranges[0][0] == expected_start
    assert ranges[-1][1] == expected_end
    assert all(a < b for a, b in ranges)
    assert all(ranges[i][1] == ranges[i + 1][0] for i in range(len(ranges) - 1))
    for a, b in plan.hourly + plan.daily:
        assert a.minute == a.second == a.microsecond == 0
        assert b.minute == b.second == b.microsecond == 0
    for a, b in plan.daily:
        assert a.hour == b.hour == 0
    # No full UTC day is left inside an hourly range.
    for a, b in plan.hourly:
        next_midnight = a.replace(hour=0) + (DAY if a.hour else timedelta(0))
        assert next_midnight + DAY > b
    assert len(plan.hourly) <= 2 and len(plan.daily) <= 1
    assert sum(((b - a) // HOUR for a, b in plan.hourly), 0) < 48
