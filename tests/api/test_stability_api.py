"""Stability windows from the API and the report page: bad windows are 400s that say why."""

from __future__ import annotations

import pytest
from flask import Flask

WINDOW_URLS = ["/api/v1/stability", "/reports/stability"]


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
