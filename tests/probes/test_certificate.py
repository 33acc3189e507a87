"""Reading a certificate's expiry from the DER bytes a TLS peer sent."""

from __future__ import annotations

from datetime import UTC, datetime

from conftest import self_signed_certificate
from cryptography.hazmat.primitives import serialization

from rulewatch.probes.certificate import certificate_not_after


def _der_expiring_at(not_after: datetime) -> bytes:
    certificate, _ = self_signed_certificate(not_after)
    return certificate.public_bytes(serialization.Encoding.DER)


def test_it_reads_an_expiry_written_as_utc_time() -> None:
    not_after = datetime(2031, 4, 5, 6, 7, 8, tzinfo=UTC)
    assert certificate_not_after(_der_expiring_at(not_after)) == not_after


def test_it_reads_an_expiry_after_2049_written_as_generalized_time() -> None:
    not_after = datetime(2061, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert certificate_not_after(_der_expiring_at(not_after)) == not_after


def test_it_answers_none_for_bytes_that_are_not_a_certificate() -> None:
    assert certificate_not_after(b"\x30\x03\x02\x01\x05") is None
    assert certificate_not_after(_der_expiring_at(datetime(2031, 1, 1, tzinfo=UTC))[:40]) is None
