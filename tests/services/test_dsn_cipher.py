"""DSN encryption at rest and signed report task ids: pure, no database."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.fernet import Fernet

from rulewatch.dsn_cipher import PREFIX, DsnCipher, DsnUndecryptable, derive_fernet_key
from rulewatch.services.report_tasks import ReportTaskIds

KEY = "k" * 40
OLD_KEY = "o" * 40
DSN = "postgresql+psycopg://reader:Pa55-w0rd@db.example/warehouse"


def test_it_derives_a_32_byte_fernet_key_from_the_secret_key_with_hkdf() -> None:
    key = derive_fernet_key(KEY)
    assert len(base64.urlsafe_b64decode(key)) == 32
    assert derive_fernet_key(KEY) == key, "the same secret key must give the same key"
    assert derive_fernet_key(OLD_KEY) != key
    assert base64.urlsafe_b64decode(key) != KEY.encode()[:32], "derived, not the key itself"


def test_it_stores_a_dsn_encrypted_with_a_version_prefix() -> None:
    stored = DsnCipher.from_secret_keys(KEY).encrypt(DSN)
    assert stored.startswith(PREFIX)
    assert "Pa55-w0rd" not in stored and "db.example" not in stored
    token = stored.removeprefix(PREFIX).encode()
    assert Fernet(derive_fernet_key(KEY)).decrypt(token).decode() == DSN
    assert DsnCipher.from_secret_keys(KEY).decrypt(stored) == DSN


def test_it_reads_a_dsn_stored_in_plain_text_by_an_earlier_version() -> None:
    assert DsnCipher.from_secret_keys(KEY).decrypt(DSN) == DSN


def test_it_cannot_decrypt_under_another_secret_key() -> None:
    stored = DsnCipher.from_secret_keys(OLD_KEY).encrypt(DSN)
    with pytest.raises(DsnUndecryptable):
        DsnCipher.from_secret_keys(KEY).decrypt(stored)
    with pytest.raises(DsnUndecryptable):
        DsnCipher.from_secret_keys(KEY).decrypt(PREFIX + "not-a-token")


def test_it_decrypts_with_the_previous_key_and_re_encrypts_under_the_current_one() -> None:
    stored = DsnCipher.from_secret_keys(OLD_KEY).encrypt(DSN)
    rotating = DsnCipher.from_secret_keys(KEY, [OLD_KEY])
    assert rotating.decrypt(stored) == DSN
    again = rotating.reencrypted(stored)
    assert again is not None and again != stored
    assert DsnCipher.from_secret_keys(KEY).decrypt(again) == DSN
    assert rotating.reencrypted(again) is None, "already under the current key: left alone"


def test_re_encrypting_turns_plain_text_into_the_encrypted_form() -> None:
    cipher = DsnCipher.from_secret_keys(KEY)
    again = cipher.reencrypted(DSN)
    assert again is not None and again.startswith(PREFIX)
    assert cipher.decrypt(again) == DSN
    with pytest.raises(DsnUndecryptable):
        cipher.reencrypted(DsnCipher.from_secret_keys(OLD_KEY).encrypt(DSN))


# report task ids

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def test_it_recognises_the_report_task_ids_it_issued() -> None:
    ids = ReportTaskIds.from_secret_keys(KEY)
    task_id = ids.new(NOW)
    assert task_id.startswith("report-")
    assert ids.issued_at(task_id) == NOW
    assert ids.new(NOW) != task_id


@pytest.mark.parametrize(
    "task_id",
    [
        "",
        "report-",
        "00000000-0000-4000-8000-000000000000",
        "report-1-0123456789abcdef-" + "0" * 32,
    ],
)
def test_it_refuses_task_ids_it_did_not_issue(task_id: str) -> None:
    assert ReportTaskIds.from_secret_keys(KEY).issued_at(task_id) is None


def test_it_refuses_an_issued_id_whose_time_was_changed() -> None:
    ids = ReportTaskIds.from_secret_keys(KEY)
    _, _, nonce, mac = ids.new(NOW).split("-")
    later = int((NOW + timedelta(days=9)).timestamp())
    assert ids.issued_at(f"report-{later}-{nonce}-{mac}") is None


def test_a_previous_key_still_recognises_ids_issued_before_a_rotation() -> None:
    task_id = ReportTaskIds.from_secret_keys(OLD_KEY).new(NOW)
    assert ReportTaskIds.from_secret_keys(KEY).issued_at(task_id) is None
    assert ReportTaskIds.from_secret_keys(KEY, [OLD_KEY]).issued_at(task_id) == NOW
