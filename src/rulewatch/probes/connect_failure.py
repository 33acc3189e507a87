"""Plain-words descriptions of why a network connection could not be made."""

from __future__ import annotations

import errno
import socket
import ssl

_ERRNO_WORDS = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
    errno.ETIMEDOUT: "connection timed out",
}


def describe_connect_failure(exc: BaseException, host: str, port: int | None) -> str:
    """Say why connecting to host:port failed, e.g. ``connection refused to 127.0.0.1:9``."""
    where = host if port is None else f"{host}:{port}"
    if isinstance(exc, socket.gaierror):
        return f"DNS lookup failed for {host}: {exc.strerror or exc}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed for {where}: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error with {where}: {exc.reason or exc}"
    if isinstance(exc, OSError) and exc.errno in _ERRNO_WORDS:
        return f"{_ERRNO_WORDS[exc.errno]} to {where}"
    if isinstance(exc, OSError) and exc.strerror:
        return f"cannot connect to {where}: {exc.strerror}"
    return f"cannot connect to {where}: {exc or type(exc).__name__}"
