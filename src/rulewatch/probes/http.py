"""The http probe: one request with aiohttp; status, headers, body, timing, peer and certificate."""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import aiohttp
from pydantic import Field, StringConstraints

from rulewatch.domain.observation import Observation
from rulewatch.probes.certificate import certificate_not_after
from rulewatch.probes.connect_failure import describe_connect_failure
from rulewatch.probes.context import ProbeContext, ms_since
from rulewatch.probes.kind import Kind, Target, Timeout

MAX_BODY_BYTES = 1024 * 1024


class HttpTarget(Target):
    """One HTTP request: where, how, and what may be waited for."""

    url: Annotated[str, StringConstraints(pattern=r"^https?://[^\s/]+", max_length=2048)]
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = None
    timeout_s: Timeout = 10.0
    follow_redirects: bool = True
    verify_tls: bool = True


@dataclass(frozen=True)
class _Peer:
    ip: str | None = None
    certificate_expiration_ms: float | None = None


async def probe_http(target: Mapping[str, Any], ctx: ProbeContext) -> Observation:
    """Send the target's request and observe the response (the timeout is run_probe's job)."""
    url = target.get("url")
    if not isinstance(url, str) or not url:
        return Observation(connected=False, fault="an http target needs a url")
    started = time.perf_counter()
    try:
        async with _session(ctx) as session:
            return await _exchange(session, url, target, started)
    except aiohttp.ClientError as exc:
        return _from_client_error(exc, started)
    except (TypeError, ValueError) as exc:  # a method or header aiohttp refuses to send
        return Observation(connected=False, fault=f"invalid http request: {exc}")


@asynccontextmanager
async def _session(ctx: ProbeContext) -> AsyncIterator[aiohttp.ClientSession]:
    if ctx.http_session is not None:
        yield ctx.http_session
        return
    async with aiohttp.ClientSession() as session:
        yield session


async def _exchange(
    session: aiohttp.ClientSession, url: str, target: Mapping[str, Any], started: float
) -> Observation:
    async with session.request(
        str(target.get("method") or "GET").upper(),
        url,
        headers=dict(target.get("headers") or {}),
        data=_encoded(target.get("body")),
        allow_redirects=bool(target.get("follow_redirects", True)),
        ssl=bool(target.get("verify_tls", True)),
    ) as response:
        peer = _peer_of(response)
        body = await _read_capped(response)
        return Observation(
            connected=True,
            response_time_ms=ms_since(started),
            status=response.status,
            headers=_headers_of(response),
            body=body.decode(_charset_of(response), errors="replace"),
            ip=peer.ip or _literal_ip(response.url.host),
            certificate_expiration_ms=peer.certificate_expiration_ms,
        )


def _literal_ip(host: str | None) -> str | None:
    """The host itself when it is an IP address: known even if the connection has closed."""
    try:
        return str(ipaddress.ip_address((host or "").strip("[]")))
    except ValueError:
        return None


def _encoded(body: Any) -> bytes | None:
    if body is None:
        return None
    return body if isinstance(body, bytes) else str(body).encode()


def _peer_of(response: aiohttp.ClientResponse) -> _Peer:
    """Peer address and certificate expiry, read while the connection is still attached."""
    transport = _transport_of(response)
    if transport is None:
        return _Peer()
    peername = transport.get_extra_info("peername")
    ip = str(peername[0]) if isinstance(peername, tuple) and peername else None
    ssl_object = transport.get_extra_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    not_after = certificate_not_after(der) if der else None
    if not_after is None:
        return _Peer(ip)
    return _Peer(ip, (not_after - datetime.now(UTC)).total_seconds() * 1000)


def _transport_of(response: aiohttp.ClientResponse) -> asyncio.Transport | None:
    if response.connection is not None:
        return response.connection.transport
    # aiohttp releases the connection as soon as a short body has arrived with the headers;
    # its protocol (private, but stable across 3.x) still holds the kept-alive transport.
    protocol = getattr(response, "_protocol", None)
    transport = getattr(protocol, "transport", None)
    return transport if isinstance(transport, asyncio.Transport) else None


async def _read_capped(response: aiohttp.ClientResponse) -> bytes:
    """At most MAX_BODY_BYTES of the body; the rest is left unread."""
    chunks: list[bytes] = []
    size = 0
    while size < MAX_BODY_BYTES:
        chunk = await response.content.read(MAX_BODY_BYTES - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _headers_of(response: aiohttp.ClientResponse) -> dict[str, str]:
    """Headers under their original names; repeated headers are joined with ', '."""
    headers: dict[str, str] = {}
    for key, value in response.headers.items():
        name = str(key)
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def _charset_of(response: aiohttp.ClientResponse) -> str:
    charset = response.charset or "utf-8"
    try:
        "".encode(charset)
    except LookupError:
        return "utf-8"
    return charset


def _from_client_error(exc: aiohttp.ClientError, started: float) -> Observation:
    """A failure when the target misbehaved; a fault when the request itself was unusable."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return _failed(started, describe_connect_failure(exc.os_error, exc.host, exc.port))
    if isinstance(exc, aiohttp.RedirectClientError):
        return _failed(started, f"redirected to an unusable URL: {exc}")
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return Observation(connected=False, fault=f"invalid url: {exc}")
    if isinstance(exc, aiohttp.TooManyRedirects):
        return _failed(started, f"too many redirects (last status {exc.status})")
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return _failed(started, "the server closed the connection without a response")
    return _failed(started, f"{type(exc).__name__}: {exc}")


def _failed(started: float, failure: str) -> Observation:
    return Observation(connected=False, failure=failure, response_time_ms=ms_since(started))


KIND = Kind(
    name="http",
    probe=probe_http,
    target=HttpTarget,
    placeholders=frozenset(
        {"STATUS", "RESPONSE_TIME", "BODY", "HEADERS", "CONNECTED", "IP", "CERTIFICATE_EXPIRATION"}
    ),
    example="[STATUS] == 200",
)
