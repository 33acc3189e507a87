"""Read a certificate's expiry from its DER bytes, which works even when TLS is not verified.

``ssl.SSLObject.getpeercert()`` returns an empty dict unless the certificate was verified, so
the expiry is read from the binary form with ``cryptography``.
"""

from __future__ import annotations

from datetime import datetime

from cryptography import x509


def certificate_not_after(der: bytes) -> datetime | None:
    """The ``notAfter`` instant of a DER certificate, or None when it cannot be read."""
    try:
        return x509.load_der_x509_certificate(der).not_valid_after_utc
    except ValueError:
        return None
