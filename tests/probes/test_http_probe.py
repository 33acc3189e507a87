"""The http probe against a real aiohttp server on this machine."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from conftest import WebServer, closed_port

from rulewatch.domain.observation import Observation
from rulewatch.probes import ProbeContext, run_probe
from rulewatch.probes.http import MAX_BODY_BYTES

CTX = ProbeContext(datasources={})


async def _json(request: web.Request) -> web.Response:
    return web.json_response({"data": {"items": [{"id": 7}]}}, headers={"X-Trace-Id": "abc"})


async def _error(request: web.Request) -> web.Response:
    return web.Response(status=500, text="boom")


async def _slow(request: web.Request) -> web.Response:
    await asyncio.sleep(5)
    return web.Response(text="late")


async def _redirect(request: web.Request) -> web.Response:
    raise web.HTTPFound("/json")


async def _empty(request: web.Request) -> web.Response:
    return web.Response(status=204)


async def _big(request: web.Request) -> web.Response:
    return web.Response(body=b"a" * (MAX_BODY_BYTES * 2), content_type="text/plain")


async def _garbled(request: web.Request) -> web.Response:
    return web.Response(body=b"ok \xff\xfe end", content_type="text/plain", charset="utf-8")


async def _echo(request: web.Request) -> web.Response:
    peer_port = request.transport.get_extra_info("peername")[1] if request.transport else None
    echoed = {
        "method": request.method,
        "body": await request.text(),
        "header": request.headers.get("X-Probe"),
        "peer_port": peer_port,
    }
    return web.json_response(echoed)


def _app() -> web.Application:
    app = web.Application()
    routes = {"/json": _json, "/error": _error, "/slow": _slow, "/redirect": _redirect}
    routes |= {"/empty": _empty, "/big": _big, "/garbled": _garbled}
    for path, handler in routes.items():
        app.router.add_get(path, handler)
    app.router.add_route("*", "/echo", _echo)
    return app


@pytest.fixture(scope="module")
def server() -> Iterator[WebServer]:
    with WebServer(_app()) as running:
        yield running


@pytest.fixture(scope="module")
def tls_server(self_signed_cert: tuple[Path, Path]) -> Iterator[WebServer]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*self_signed_cert)
    with WebServer(_app(), context) as running:
        yield running


def _probe(target: dict[str, Any], ctx: ProbeContext = CTX) -> Observation:
    return asyncio.run(run_probe("http", target, ctx))


def test_it_observes_status_headers_body_ip_and_response_time(server: WebServer) -> None:
    observed = _probe({"url": f"{server.url}/json"})
    assert observed.connected and observed.failure is None and observed.fault is None
    assert observed.status == 200
    assert observed.headers["X-Trace-Id"] == "abc"
    assert observed.headers["Content-Type"].startswith("application/json")
    assert json.loads(observed.body or "") == {"data": {"items": [{"id": 7}]}}
    assert observed.ip == "127.0.0.1"
    assert observed.response_time_ms is not None and 0 < observed.response_time_ms < 5000
    assert observed.certificate_expiration_ms is None


def test_it_records_a_500_as_an_answer_not_a_failure(server: WebServer) -> None:
    observed = _probe({"url": f"{server.url}/error"})
    assert observed.connected and observed.failure is None
    assert (observed.status, observed.body) == (500, "boom")


def test_it_follows_redirects_by_default(server: WebServer) -> None:
    observed = _probe({"url": f"{server.url}/redirect"})
    assert observed.status == 200 and "items" in (observed.body or "")


def test_it_reports_the_redirect_itself_when_not_following(server: WebServer) -> None:
    observed = _probe({"url": f"{server.url}/redirect", "follow_redirects": False})
    assert observed.status == 302
    assert observed.headers["Location"] == "/json"


def test_it_fails_after_timeout_s_when_the_server_is_slow(server: WebServer) -> None:
    started = time.perf_counter()
    observed = _probe({"url": f"{server.url}/slow", "timeout_s": 0.5})
    elapsed = time.perf_counter() - started
    assert not observed.connected and observed.fault is None
    assert observed.failure == "timed out after 0.5s"
    assert elapsed < 2
    assert observed.response_time_ms is not None and observed.response_time_ms >= 500


def test_it_reports_a_refused_connection_as_a_failure_not_a_fault() -> None:
    port = closed_port()
    observed = _probe({"url": f"http://127.0.0.1:{port}/"})
    assert not observed.connected and observed.fault is None
    assert observed.failure == f"connection refused to 127.0.0.1:{port}"
    assert observed.response_time_ms is not None


def test_it_reports_an_unknown_host_as_a_dns_failure() -> None:
    observed = _probe({"url": "http://no-such-host.invalid/", "timeout_s": 5})
    assert not observed.connected and observed.fault is None
    assert observed.failure is not None
    assert observed.failure.startswith("DNS lookup failed for no-such-host.invalid")


def test_it_sends_the_method_headers_and_body(server: WebServer) -> None:
    target = {
        "url": f"{server.url}/echo",
        "method": "post",
        "headers": {"X-Probe": "yes"},
        "body": '{"ping": "é"}',
    }
    echoed = json.loads(_probe(target).body or "")
    assert echoed["method"] == "POST"
    assert echoed["header"] == "yes"
    assert echoed["body"] == '{"ping": "é"}'


def test_it_keeps_at_most_one_mebibyte_of_body(server: WebServer) -> None:
    observed = _probe({"url": f"{server.url}/big"})
    assert observed.status == 200
    assert observed.body == "a" * MAX_BODY_BYTES


def test_it_replaces_bytes_that_do_not_decode(server: WebServer) -> None:
    observed = _probe({"url": f"{server.url}/garbled"})
    assert observed.body == "ok \ufffd\ufffd end"


def test_it_observes_the_peer_ip_of_an_empty_response(server: WebServer) -> None:
    observed = _probe({"url": f"{server.url}/empty"})
    assert (observed.status, observed.body, observed.ip) == (204, "", "127.0.0.1")


def test_it_reuses_the_connections_of_a_shared_session(server: WebServer) -> None:
    async def twice() -> list[Observation]:
        async with aiohttp.ClientSession() as session:
            ctx = ProbeContext(datasources={}, http_session=session)
            first = await run_probe("http", {"url": f"{server.url}/echo"}, ctx)
            second = await run_probe("http", {"url": f"{server.url}/echo"}, ctx)
            assert not session.closed
            return [first, second]

    ports = {json.loads(o.body or "")["peer_port"] for o in asyncio.run(twice())}
    assert len(ports) == 1


def test_it_reads_the_certificate_expiration_even_without_verifying(
    tls_server: WebServer,
) -> None:
    observed = _probe({"url": f"{tls_server.url}/json", "verify_tls": False})
    assert observed.status == 200
    thirty_days_ms = 30 * 86_400_000
    expiration = observed.certificate_expiration_ms
    assert expiration is not None and thirty_days_ms - 3_600_000 < expiration <= thirty_days_ms


def test_it_fails_an_untrusted_certificate_when_verifying(tls_server: WebServer) -> None:
    observed = _probe({"url": f"{tls_server.url}/json"})
    assert not observed.connected and observed.fault is None
    assert observed.failure is not None
    assert observed.failure.startswith("TLS certificate verification failed for 127.0.0.1:")
    assert "self-signed" in observed.failure or "self signed" in observed.failure


def test_it_reports_a_missing_url_as_a_fault() -> None:
    observed = _probe({"method": "GET"})
    assert observed.fault == "an http target needs a url" and observed.failure is None
