"""The SVG charts: pure functions, no app, no database."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from rulewatch.domain.history import HistoryPoint
from rulewatch.web.ui.charts import history_chart, sparkline

NS = {"svg": "http://www.w3.org/2000/svg"}
END = datetime(2024, 5, 15, 12, 30, tzinfo=UTC)
DAY_AGO = END - timedelta(hours=24)


def _svg(markup: str) -> ET.Element:
    return ET.fromstring(markup)


def _boxes_x(svg: ET.Element, cls: str) -> list[float]:
    """The left edges of the boxes drawn in the path of class ``cls``."""
    path = svg.find(f"svg:path[@class='{cls}']", NS)
    return (
        [] if path is None else [float(x) for x in re.findall(r"M(-?[\d.]+) ", path.get("d", ""))]
    )


def _hourly(n: int, **counts: int) -> list[HistoryPoint]:
    return [HistoryPoint(DAY_AGO + timedelta(hours=i), 100.0, **counts) for i in range(n)]


def test_it_leaves_a_gap_in_the_sparkline_for_a_bucket_without_data() -> None:
    svg = _svg(sparkline([1.0, None, 0.5, 0.0], width=120, height=24, label="pass rate"))
    assert _boxes_x(svg, "pass") == [0.0]
    assert _boxes_x(svg, "fail") == [60.0, 90.0], "a 0% bucket is drawn; the None one is not"
    assert svg.get("class") == "spark" and svg.get("role") == "img"


def test_it_summarizes_the_sparkline_for_screen_readers() -> None:
    svg = _svg(sparkline([0.98, None, 0.992], label="pass rate, last 3 hours"))
    expected = "pass rate, last 3 hours: latest 99.2%, lowest 98%, no data in 1 of 3"
    assert svg.get("aria-label") == expected
    assert svg.findtext("svg:title", namespaces=NS) == expected


def test_it_never_rounds_a_rate_below_one_up_to_100_percent() -> None:
    assert "latest 99.99%" in sparkline([0.99999], label="r")


def test_it_escapes_the_label() -> None:
    markup = sparkline([1.0], label='<script>alert("x")</script>')
    assert "<script>" not in markup
    assert _svg(markup).findtext("svg:title", namespaces=NS).startswith('<script>alert("x")')


def test_it_colours_each_bucket_by_its_worst_outcome() -> None:
    points = [
        HistoryPoint(DAY_AGO + timedelta(hours=2), 10.0, passed=5, failed=1, errors=1),
        HistoryPoint(DAY_AGO + timedelta(hours=8), 10.0, passed=5, failed=0, errors=1),
        HistoryPoint(DAY_AGO + timedelta(hours=14), 10.0, passed=5, failed=0, errors=0),
        HistoryPoint(DAY_AGO + timedelta(hours=20), 10.0, 0, 0, 0, maintenance=2),
    ]
    svg = _svg(history_chart(points, DAY_AGO, END))
    assert [len(_boxes_x(svg, c)) for c in ("fail", "error", "pass", "maintenance")] == [1, 1, 1, 1]
    assert _boxes_x(svg, "fail")[0] < _boxes_x(svg, "error")[0] < _boxes_x(svg, "pass")[0]
    colours = [
        svg.find(f"svg:path[@class='{c}']", NS).get("fill") for c in ("fail", "error", "pass")
    ]
    assert len(set(colours)) == 3


def test_it_says_there_is_nothing_to_draw_when_there_are_no_points() -> None:
    svg = _svg(history_chart([], DAY_AGO, END))
    assert (
        svg.findtext("svg:text[@class='empty']", namespaces=NS) == "No verifications in this window"
    )
    assert svg.find("svg:path[@class='line']", NS) is None
    assert "no verifications" in svg.findtext("svg:title", namespaces=NS)


def test_it_labels_three_or_four_y_ticks_covering_the_slowest_point() -> None:
    for slowest in (0.4, 7.0, 99.0, 101.0, 1234.0, 48_000.0):
        points = [*_hourly(3, passed=1, failed=0, errors=0),
                  HistoryPoint(DAY_AGO + timedelta(hours=5), slowest, 1, 0, 0)]  # fmt: skip
        labels = _svg(history_chart(points, DAY_AGO, END)).findall("svg:text[@class='y-label']", NS)
        values = [float(label.text.removesuffix(" ms")) for label in labels]
        assert values[0] == 0 and values[-1] >= slowest and 3 <= len(values) <= 4, values


def test_it_breaks_the_line_where_a_point_has_no_duration() -> None:
    points = _hourly(6, passed=1, failed=0, errors=0)
    points[3] = HistoryPoint(points[3].at, None, 0, 0, 1)
    d = _svg(history_chart(points, DAY_AGO, END)).find("svg:path[@class='line']", NS).get("d")
    assert d.count("M") == 2
    assert len(_boxes_x(_svg(history_chart(points, DAY_AGO, END)), "error")) == 1


def test_it_labels_times_by_the_hour_for_a_day_and_by_the_date_for_a_week() -> None:
    def labels(start: datetime) -> list[str]:
        svg = _svg(history_chart(_hourly(2, passed=1, failed=0, errors=0), start, END))
        return [t.text or "" for t in svg.findall("svg:text[@class='x-label']", NS)]

    assert labels(DAY_AGO) == ["18:00", "00:00", "06:00", "12:00"]
    week = labels(END - timedelta(days=7))
    assert 3 <= len(week) <= 6 and all(re.fullmatch(r"05-\d\d", t) for t in week), week


def test_it_scales_to_its_container_with_a_view_box() -> None:
    svg = _svg(history_chart(_hourly(3, passed=1, failed=0, errors=0), DAY_AGO, END))
    assert svg.get("class") == "chart" and svg.get("viewBox") == "0 0 800 220"
    assert svg.get("preserveAspectRatio") and svg.get("role") == "img"


def test_it_draws_the_same_markup_for_the_same_input_with_one_decimal_numbers() -> None:
    points = [HistoryPoint(DAY_AGO + timedelta(minutes=7 * i), 100 / 3 + i, 1, int(i % 4 == 0), 0)
              for i in range(200)]  # fmt: skip
    first, second = history_chart(points, DAY_AGO, END), history_chart(list(points), DAY_AGO, END)
    assert first == second
    assert not re.search(r"\d\.\d\d", first.split("</title>")[1]), "coordinates keep one decimal"
    assert "style=" not in first and "style=" not in sparkline([0.5, None], label="r")


def test_it_refuses_a_chart_that_ends_before_it_starts() -> None:
    with pytest.raises(ValueError, match="must be after start"):
        history_chart([], END, DAY_AGO)
