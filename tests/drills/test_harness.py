"""The drill harness's own accounting, without services: when a missed slot is a late
run's doing (overtaken) and when it is lost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.drills.harness import OVERTAKE_MARGIN_S, _overtaken

T0 = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_a_slot_a_late_run_of_the_slot_before_ended_after_is_overtaken() -> None:
    ends = [(_at(0), _at(2.01))]  # due at 0, every 2 s, its check ended just past 2
    assert _overtaken(ends, _at(2))
    assert not _overtaken(ends, _at(4)), "the next slot after it is due again"


def test_a_slot_no_run_ended_near_is_not_overtaken() -> None:
    ends = [(_at(0), _at(0.5)), (_at(4), _at(4.5))]
    assert not _overtaken(ends, _at(2)), "the run of 0 was done long before 2: a lost slot"
    assert not _overtaken(ends, _at(0)), "a run never overtakes its own due time"
    assert _overtaken([(_at(0), _at(2 - OVERTAKE_MARGIN_S))], _at(2)), "the margin counts"
