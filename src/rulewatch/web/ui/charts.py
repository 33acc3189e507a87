"""SVG charts for the pages: pure functions from numbers to markup, escaped and deterministic.

The pages' Content-Security-Policy refuses inline styles, so colours are presentation
attributes (``fill``, ``stroke``), which the classes in app.css override where they apply.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from statistics import median

from markupsafe import Markup, escape

from rulewatch.domain.history import HistoryPoint

SVG_NS = "http://www.w3.org/2000/svg"
COLOURS = {"pass": "#0a6b2d", "fail": "#b3141b", "error": "#e07b00", "maintenance": "#9aa1ab",
           "gap": "#e9ebee"}  # fmt: skip
LINE, GRID, TEXT = "#1f5fbf", "#dde1e6", "#5b6470"
# Ticks are drawn in this order, so where they overlap the worst outcome is on top.
SEVERITY = ("maintenance", "pass", "error", "fail")
# Chart margins: room for the ms labels on the left, the outcome strip and times below.
LEFT, RIGHT, TOP, BOTTOM = 56.0, 20.0, 10.0, 36.0
STRIP_GAP, STRIP_HEIGHT = 4.0, 7.0
# Time label steps in minutes, from a minute to a quarter; a chart shows at most 6 labels.
TIME_STEPS_MIN = (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 10080, 20160,
                  43200, 86400, 129600)  # fmt: skip
MAX_TIME_LABELS = 6
EMPTY_TEXT = "No verifications in this window"


def sparkline(
    points: Sequence[float | None], width: int = 120, height: int = 24, *, label: str
) -> Markup:
    """Pass rate per bucket (0 to 1) as bars, oldest first; a bucket of None is a gap."""
    step = width / max(len(points), 1)
    gap = 1.0 if step >= 3 else 0.0
    bars: dict[str, list[str]] = {"pass": [], "fail": []}
    for i, rate in enumerate(points):
        if rate is None:
            continue
        rate = min(max(rate, 0.0), 1.0)
        bar = max(height * rate, 1.0)  # a bucket at 0% still shows, unlike one with no data
        kind = "pass" if rate >= 1.0 else "fail"
        bars[kind].append(_box(i * step, height - bar, step - gap, bar))
    attrs = f'class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}"'
    return _svg(attrs, _spark_text(points, label), _paths(bars))


def history_chart(
    points: Sequence[HistoryPoint],
    start: datetime,
    end: datetime,
    width: int = 800,
    height: int = 220,
    gaps: Sequence[tuple[datetime, datetime]] = (),
) -> Markup:
    """Response time (ms) as a line over [start, end], outcome ticks along the bottom, and
    the monitor's ``gaps`` (times it could not verify the rule) as grey bands behind them."""
    if end <= start:
        raise ValueError(f"chart end {end.isoformat()} must be after start {start.isoformat()}")
    ordered = sorted(points, key=lambda p: p.at)
    durations = [p.duration_ms for p in ordered if p.duration_ms is not None]
    y_ticks = _y_ticks(max(durations, default=0.0))
    frame = _Frame(start, end, width, height, y_ticks[-1])
    body = [*_gap_bands(frame, gaps), *(_y_axis(frame, y_ticks) if durations else ()),
            *_x_axis(frame)]  # fmt: skip
    if ordered:
        body += [*_line(frame, ordered), *_strip(frame, ordered)]
    else:
        body.append(
            f'<text class="empty" x="{_n((frame.left + frame.right) / 2)}" '
            f'y="{_n((frame.top + frame.bottom) / 2)}" text-anchor="middle" '
            f'fill="{TEXT}">{EMPTY_TEXT}</text>'
        )
    attrs = f'class="chart" viewBox="0 0 {width} {height}" preserveAspectRatio="xMidYMid meet"'
    text = _history_text(ordered, start, end, durations) + _gaps_text(gaps)
    return _svg(attrs, text, body)


def _gap_bands(frame: _Frame, gaps: Sequence[tuple[datetime, datetime]]) -> Iterable[str]:
    """A band over the plot's height for each gap within the window."""
    bands = []
    for began, ended in gaps:
        if ended > frame.start and began < frame.end:
            left, right = frame.x(began), frame.x(ended)
            bands.append(_box(left, frame.top, max(right - left, 1.0), frame.bottom - frame.top))
    return _paths({"gap": bands})


def _gaps_text(gaps: Sequence[tuple[datetime, datetime]]) -> str:
    if not gaps:
        return ""
    return f"; not verified in {len(gaps)} gap{'s' if len(gaps) > 1 else ''} (grey)"


@dataclass(frozen=True)
class _Frame:
    """Where the plot area sits in the SVG, and how time and ms map onto it."""

    start: datetime
    end: datetime
    width: float
    height: float
    y_max: float

    @property
    def left(self) -> float:
        return LEFT

    @property
    def right(self) -> float:
        return self.width - RIGHT

    @property
    def top(self) -> float:
        return TOP

    @property
    def bottom(self) -> float:
        return self.height - BOTTOM

    def x(self, at: datetime) -> float:
        share = (at - self.start) / (self.end - self.start)
        return self.left + min(max(share, 0.0), 1.0) * (self.right - self.left)

    def y(self, ms: float) -> float:
        return self.bottom - min(max(ms / self.y_max, 0.0), 1.0) * (self.bottom - self.top)


def _y_ticks(slowest: float) -> list[float]:
    """0 and two or three round steps, the last at or above ``slowest``."""
    top = slowest if slowest > 0 else 1.0
    step = _round_step(top / 3)
    return [round(step * i, 6) for i in range(math.ceil(top / step - 1e-9) + 1)]


def _round_step(value: float) -> float:
    """The smallest of 1, 2, 2.5 and 5 times a power of ten that is at least ``value``."""
    power = 10.0 ** math.floor(math.log10(value))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= value * (1 - 1e-9))


def _y_axis(frame: _Frame, ticks: list[float]) -> Iterable[str]:
    for value in ticks:
        y = _n(frame.y(value))
        yield (
            f'<line class="grid" x1="{_n(frame.left)}" x2="{_n(frame.right)}" y1="{y}" y2="{y}" '
            f'stroke="{GRID}"/><text class="y-label" x="{_n(frame.left - 6)}" y="{y}" '
            f'dy="4" text-anchor="end" fill="{TEXT}">{_ms(value)}</text>'
        )


def _x_axis(frame: _Frame) -> Iterable[str]:
    span = frame.end - frame.start
    step_min = next(
        (m for m in TIME_STEPS_MIN if span / timedelta(minutes=m) <= MAX_TIME_LABELS),
        TIME_STEPS_MIN[-1],
    )
    step_s = step_min * 60
    fmt = "%H:%M" if span <= timedelta(days=2) else "%m-%d"
    at_s = math.ceil(frame.start.timestamp() / step_s) * step_s  # whole steps of UTC time
    while at_s <= frame.end.timestamp():
        at = datetime.fromtimestamp(at_s, UTC)
        yield (
            f'<text class="x-label" x="{_n(frame.x(at))}" y="{_n(frame.height - 6)}" '
            f'text-anchor="middle" fill="{TEXT}">{at.strftime(fmt)}</text>'
        )
        at_s += step_s


def _line(frame: _Frame, points: list[HistoryPoint]) -> Iterable[str]:
    """The response time line, broken where there is no duration or a long silence."""
    runs = _runs(points)
    d = "".join(
        "M" + "L".join(f"{_n(frame.x(p.at))} {_n(frame.y(ms))}" for p, ms in run)
        for run in runs
        if len(run) > 1
    )
    if d:
        yield f'<path class="line" d="{d}" fill="none" stroke="{LINE}" stroke-width="1.5"/>'
    for p, ms in (run[0] for run in runs if len(run) == 1):  # a lone point: a dot
        yield (
            f'<circle class="dot" cx="{_n(frame.x(p.at))}" cy="{_n(frame.y(ms))}" r="2" '
            f'fill="{LINE}"/>'
        )


def _runs(points: list[HistoryPoint]) -> list[list[tuple[HistoryPoint, float]]]:
    """Consecutive points with durations; a gap of over 3 typical spacings starts a new run."""
    spacings = [(b.at - a.at).total_seconds() for a, b in pairwise(points)]
    longest = 3 * median(spacings) if len(spacings) >= 2 else math.inf
    runs: list[list[tuple[HistoryPoint, float]]] = [[]]
    previous: datetime | None = None
    for p in points:
        silent = previous is not None and (p.at - previous).total_seconds() > longest
        if p.duration_ms is None or silent:
            runs.append([])
        if p.duration_ms is not None:
            runs[-1].append((p, p.duration_ms))
        previous = p.at
    return [run for run in runs if run]


def _strip(frame: _Frame, points: list[HistoryPoint]) -> Iterable[str]:
    """A tick per point along the bottom, coloured by the point's worst outcome."""
    width = min(max((frame.right - frame.left) / len(points), 1.0), 6.0)
    ticks: dict[str, list[str]] = {name: [] for name in SEVERITY}
    for p in points:
        if p.outcome is not None:
            x = min(max(frame.x(p.at) - width / 2, frame.left), frame.right - width)
            ticks[p.outcome].append(_box(x, frame.bottom + STRIP_GAP, width, STRIP_HEIGHT))
    return _paths(ticks)


def _paths(boxes: dict[str, list[str]]) -> Iterable[str]:
    """One path per class: far smaller than a rect per box."""
    for name, parts in boxes.items():
        if parts:
            yield f'<path class="{name}" d="{"".join(parts)}" fill="{COLOURS[name]}"/>'


def _box(x: float, y: float, width: float, height: float) -> str:
    return f"M{_n(x)} {_n(y)}h{_n(width)}v{_n(height)}h{_n(-width)}z"


def _spark_text(points: Sequence[float | None], label: str) -> str:
    rates = [p for p in points if p is not None]
    if not rates:
        return f"{label}: no data"
    latest = next(p for p in reversed(points) if p is not None)
    text = f"{label}: latest {_percent(latest)}, lowest {_percent(min(rates))}"
    missing = len(points) - len(rates)
    return text + (f", no data in {missing} of {len(points)}" if missing else "")


def _history_text(
    points: list[HistoryPoint], start: datetime, end: datetime, durations: list[float]
) -> str:
    span = f"{_utc(start)} to {_utc(end)} UTC"
    if not points:
        return f"Response time and outcomes from {span}: no verifications"
    passed, failed, errors = (sum(p.passed for p in points), sum(p.failed for p in points),
                              sum(p.errors for p in points))  # fmt: skip
    slowest = f", slowest {_ms(max(durations))}" if durations else ""
    return (
        f"Response time and outcomes from {span}: {passed} passed, {failed} failed, "
        f"{errors} errored{slowest}"
    )


def _svg(attrs: str, title: str, body: Iterable[str]) -> Markup:
    """The SVG element; ``title`` is the only text from data, so it alone is escaped."""
    text = escape(title)
    return Markup(
        f'<svg xmlns="{SVG_NS}" {attrs} role="img" aria-label="{text}">'
        f"<title>{text}</title>{''.join(body)}</svg>"
    )


def _n(value: float) -> str:
    """A coordinate with at most one decimal, never "-0"."""
    text = f"{round(value, 1) + 0.0:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _ms(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") + " ms"


def _percent(rate: float) -> str:
    # rounded down, so a rate below 1 never reads 100%
    return f"{math.floor(rate * 10000 + 1e-6) / 100:.2f}".rstrip("0").rstrip(".") + "%"


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
