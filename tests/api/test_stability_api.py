"""Stability windows from the API and the report page: bad windows are 400s that say why."""

from __future__ import annotations

import pytest
from flask import Flask

WINDOW_URLS = ["/api/v1/stability"]


@pytest.mark.parametrize("url", WINDOW_URLS)
@pytest.mark.parametrize("window", ["99999999999999d", "9" * 5000 + "w"])
def test_it_refuses_a_window_too_long_to_compute(app: Flask, url: str, window: str) -> None:
    response = app.test_client().get(url, query_string={"window": window})
    assert response.status_code == 400
    assert b"out of range" in response.data


@pytest.mark.parametrize("url", WINDOW_URLS)
def test_it_refuses_a_window_shorter_than_the_hourly_rollups(app: Flask, url: str) -> None:
    response = app.test_client().get(url, query_string={"window": "15m"})
    assert response.status_code == 400
    assert b"smallest window is 1h" in response.data


def test_it_names_the_window_parameter_in_the_api_error(app: Flask) -> None:
    response = app.test_client().get("/api/v1/stability?window=0h")
    assert response.get_json()["error"]["errors"][0]["field"] == "window"


def _rules_with_rates(app: Flask) -> None:
    """Three rules with 1/4, 3/4 and no passes recorded in the current hour."""
    from rulewatch.db import transaction
    from rulewatch.models import utcnow
    from rulewatch.services.rollups import Sample, add_samples
    from rulewatch.services.rules import create_rule
    from tests.targets import http_rule

    runtime = app.extensions["rulewatch"]
    now = utcnow()
    with transaction(runtime.factory) as session:
        ids = [create_rule(session, http_rule("http://127.0.0.1:9/", name=n), now).id
               for n in ("alpha", "beta", "gamma")]  # fmt: skip
        samples = [Sample(ids[0], now, s, 1.0) for s in ("pass", "fail", "fail", "fail")]
        samples += [Sample(ids[1], now, s, 1.0) for s in ("pass", "pass", "pass", "fail")]
        add_samples(session, samples)


def test_it_pages_the_rules_and_keeps_the_overall_figures_whole(app: Flask) -> None:
    _rules_with_rates(app)
    body = app.test_client().get("/api/v1/stability?window=24h&limit=1&offset=1").get_json()
    assert body["total"] == 3
    assert [r["name"] for r in body["rules"]] == ["beta"]
    assert body["overall"]["pass"] == 4 and body["overall"]["fail"] == 4
    assert body["overall"]["rules_with_data"] == 2


def test_it_orders_the_worst_rules_first_with_no_data_last(app: Flask) -> None:
    _rules_with_rates(app)
    body = app.test_client().get("/api/v1/stability?window=24h&order=worst").get_json()
    assert [r["name"] for r in body["rules"]] == ["alpha", "beta", "gamma"]
    assert [r["rate"] for r in body["rules"]] == [0.25, 0.75, None]
    assert app.test_client().get("/api/v1/stability?order=best").status_code == 400


def test_it_serves_a_report_computed_seconds_ago_from_the_cache(app: Flask) -> None:
    client = app.test_client()
    first = client.get("/api/v1/stability?window=24h").get_json()
    _rules_with_rates(app)
    cached = client.get("/api/v1/stability?window=24h").get_json()
    other_window = client.get("/api/v1/stability?window=7d").get_json()
    assert cached == first, "a report younger than RULEWATCH_REPORT_CACHE_S is served again"
    assert other_window["total"] == 3
