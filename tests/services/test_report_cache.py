"""The report cache: fresh reports shared, stale ones served while one refresh runs."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from rulewatch.domain.stability import summarize
from rulewatch.services.stability import ReportCache, StabilityReport

T0 = datetime(2026, 11, 27, 12, 0)
KEY = ("7d", None)


def _report(end: datetime) -> StabilityReport:
    return StabilityReport("7d", end - timedelta(days=7), end, None, [], summarize([]))


class Computer:
    """A compute function that counts its calls and can be held until released."""

    def __init__(self, end: datetime) -> None:
        self.end, self.calls = end, 0
        self.release = threading.Event()
        self.release.set()
        self.done = threading.Event()

    def __call__(self) -> StabilityReport:
        self.calls += 1
        self.release.wait(5)
        self.done.set()
        return _report(self.end)


def test_it_shares_a_fresh_report() -> None:
    cache = ReportCache(30)
    first = cache.get(KEY, T0, Computer(T0))
    again = Computer(T0)
    assert cache.get(KEY, T0 + timedelta(seconds=29), again) is first
    assert again.calls == 0


def test_it_serves_a_stale_report_at_once_and_refreshes_it_in_the_background() -> None:
    cache = ReportCache(30)
    old = cache.get(KEY, T0, Computer(T0))
    later = T0 + timedelta(seconds=60)
    refresh = Computer(later)
    refresh.release.clear()  # the refresh is slow: readers must not wait for it
    assert cache.get(KEY, later, refresh) is old
    assert cache.get(KEY, later, refresh) is old  # one refresh at a time
    refresh.release.set()
    assert refresh.done.wait(5)
    for _ in range(50):
        newer = cache.get(KEY, later, Computer(later))
        if newer is not old:
            break
        threading.Event().wait(0.02)
    assert newer.end == later and refresh.calls == 1


def test_it_computes_again_once_a_report_is_too_old_to_serve() -> None:
    cache = ReportCache(30)
    cache.get(KEY, T0, Computer(T0))
    much_later = T0 + timedelta(seconds=301)
    compute = Computer(much_later)
    assert cache.get(KEY, much_later, compute).end == much_later
    assert compute.calls == 1


def test_it_never_serves_a_stale_report_when_caching_is_off() -> None:
    cache = ReportCache(0)
    cache.get(KEY, T0, Computer(T0))
    compute = Computer(T0 + timedelta(seconds=1))
    assert cache.get(KEY, T0 + timedelta(seconds=1), compute).end == T0 + timedelta(seconds=1)
    assert compute.calls == 1


def test_it_keeps_the_stale_report_when_a_refresh_fails() -> None:
    cache = ReportCache(30)
    old = cache.get(KEY, T0, Computer(T0))
    failed = threading.Event()

    def broken() -> StabilityReport:
        failed.set()
        raise RuntimeError("database gone")

    later = T0 + timedelta(seconds=60)
    assert cache.get(KEY, later, broken) is old
    assert failed.wait(5)
    for _ in range(50):  # the failed refresh ends, and the next stale read starts another
        retry = Computer(later)
        assert cache.get(KEY, later, retry) is old
        if retry.done.wait(0.05):
            break
    assert retry.calls == 1
