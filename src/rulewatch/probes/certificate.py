"""Read a certificate's expiry from its DER bytes, which works even when TLS is not verified.

``ssl.SSLObject.getpeercert()`` returns an empty dict unless the certificate was verified, so
this reads ``notAfter`` from the binary form with a tiny DER walk instead of adding a
dependency.
"""

from __future__ import annotations

from datetime import UTC, datetime

_SEQUENCE = 0x30
_VERSION_TAG = 0xA0
_UTC_TIME = 0x17
_GENERALIZED_TIME = 0x18


def certificate_not_after(der: bytes) -> datetime | None:
    """The ``notAfter`` instant of a DER certificate, or None when it cannot be read."""
    try:
        _, start, _ = _element(der, 0)  # Certificate
        _, pos, _ = _element(der, start)  # TBSCertificate
        if der[pos] == _VERSION_TAG:
            pos = _element(der, pos)[2]
        for _ in range(3):  # serialNumber, signature, issuer
            pos = _element(der, pos)[2]
        tag, validity, _ = _element(der, pos)
        if tag != _SEQUENCE:
            return None
        not_after = _element(der, _element(der, validity)[2])
        return _parse_time(not_after[0], der[not_after[1] : not_after[2]])
    except (IndexError, ValueError):
        return None


def _element(der: bytes, pos: int) -> tuple[int, int, int]:
    """Tag, content start and content end of the DER element at ``pos``."""
    tag, length = der[pos], der[pos + 1]
    pos += 2
    if length & 0x80:
        size = length & 0x7F
        length = int.from_bytes(der[pos : pos + size], "big")
        pos += size
    if pos + length > len(der):
        raise ValueError("truncated DER element")
    return tag, pos, pos + length


def _parse_time(tag: int, raw: bytes) -> datetime | None:
    text = raw.decode("ascii")
    if tag == _UTC_TIME:
        parsed = datetime.strptime(text, "%y%m%d%H%M%SZ")
    elif tag == _GENERALIZED_TIME:
        parsed = datetime.strptime(text, "%Y%m%d%H%M%SZ")
    else:
        return None
    return parsed.replace(tzinfo=UTC)
