"""The report cache: fresh reports shared, stale ones served while one refresh runs."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

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
    cache.settle(5)
    assert cache.get(KEY, later, Computer(later)).end == later
    assert refresh.calls == 1


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
    cache.settle(5)
    assert failed.is_set()
    retry = Computer(later)  # the failed refresh has ended: the next stale read starts another
    assert cache.get(KEY, later, retry) is old
    cache.settle(5)
    assert retry.calls == 1 and cache.get(KEY, later, Computer(later)).end == later


class Blocking:
    """A compute function that says when it starts and then waits to be released."""

    def __init__(self, end: datetime) -> None:
        self.end, self.calls = end, 0
        self.started, self.release = threading.Event(), threading.Event()

    def __call__(self) -> StabilityReport:
        self.calls += 1
        self.started.set()
        assert self.release.wait(5)
        return _report(self.end)


def _read_in_thread(
    cache: ReportCache, key: tuple[str, str | None], compute: Callable[[], StabilityReport]
) -> tuple[threading.Thread, list[StabilityReport]]:
    got: list[StabilityReport] = []
    thread = threading.Thread(target=lambda: got.append(cache.get(key, T0, compute)))
    thread.start()
    return thread, got


def test_it_serves_other_keys_while_a_cold_report_is_computed() -> None:
    cache = ReportCache(30)
    slow = Blocking(T0)
    cold, _ = _read_in_thread(cache, ("30d", None), slow)
    assert slow.started.wait(5)
    other, got = _read_in_thread(cache, ("7d", None), Computer(T0))
    other.join(5)
    try:
        assert got and got[0].end == T0  # answered while the 30-day report is still computing
    finally:
        slow.release.set()
        cold.join(5)


def test_it_computes_a_cold_report_once_for_concurrent_readers() -> None:
    cache = ReportCache(30)
    slow = Blocking(T0)
    first, got = _read_in_thread(cache, KEY, slow)
    assert slow.started.wait(5)
    readers = [_read_in_thread(cache, KEY, slow) for _ in range(4)]
    slow.release.set()
    for thread, _ in [(first, got), *readers]:
        thread.join(5)
    reports = got + [report for _, out in readers for report in out]
    assert slow.calls == 1
    assert len(reports) == 5 and all(report is got[0] for report in reports)


def test_it_gives_every_waiting_reader_the_error_and_computes_again_next_time() -> None:
    cache = ReportCache(30)

    def broken() -> StabilityReport:
        raise RuntimeError("database gone")

    with pytest.raises(RuntimeError, match="database gone"):
        cache.get(KEY, T0, broken)
    compute = Computer(T0)
    assert cache.get(KEY, T0, compute).end == T0 and compute.calls == 1
