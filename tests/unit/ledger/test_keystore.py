"""Per-subject data keys: encryption round trip, shredding, tamper detection."""

from __future__ import annotations

from pathlib import Path

import pytest

from rowtrail.errors import ShreddedError, VerificationError
from rowtrail.ledger import (
    SubjectKeyStore,
    decrypt_payload,
    encrypt_payload,
    is_encrypted,
    key_id_of,
)


def test_round_trip_one_key_per_subject(tmp_path: Path) -> None:
    store = SubjectKeyStore(tmp_path / "subjects.db")
    a1 = encrypt_payload(store, "ps:a", b"alpha")
    a2 = encrypt_payload(store, "ps:a", b"alpha")
    b = encrypt_payload(store, "ps:b", b"beta")
    assert is_encrypted(a1)
    assert not is_encrypted(b"alpha")
    assert a1 != a2  # fresh nonce each time
    assert key_id_of(a1) == key_id_of(a2) != key_id_of(b)
    assert decrypt_payload(store, a2) == b"alpha"
    assert decrypt_payload(store, b) == b"beta"
    assert (tmp_path / "subjects.db").stat().st_mode & 0o077 == 0


def test_destroy_shreds_only_that_subject_and_leaves_no_key_bytes(tmp_path: Path) -> None:
    path = tmp_path / "subjects.db"
    store = SubjectKeyStore(path)
    blob = encrypt_payload(store, "ps:a", b"alpha")
    other = encrypt_payload(store, "ps:b", b"beta")
    key_id, key = store.key_for("ps:a")
    assert store.destroy("ps:a") == [key_id]
    assert store.destroy("ps:a") == []
    with pytest.raises(ShreddedError, match="destroyed"):
        decrypt_payload(store, blob)
    assert decrypt_payload(store, other) == b"beta"
    store.close()
    data = path.read_bytes()
    assert key not in data
    assert key_id.encode() not in data
    assert decrypt_payload(SubjectKeyStore(path), other) == b"beta"


def test_an_altered_envelope_fails_authentication(tmp_path: Path) -> None:
    store = SubjectKeyStore(tmp_path / "subjects.db")
    blob = bytearray(encrypt_payload(store, "ps:a", b"alpha"))
    blob[-1] ^= 1
    with pytest.raises(VerificationError, match="altered"):
        decrypt_payload(store, bytes(blob))


def test_a_missing_store_means_shredded(tmp_path: Path) -> None:
    store = SubjectKeyStore(tmp_path / "elsewhere.db")
    blob = encrypt_payload(SubjectKeyStore(tmp_path / "subjects.db"), "ps:a", b"alpha")
    with pytest.raises(ShreddedError):
        decrypt_payload(store, blob)
    assert store.key_ids("ps:a") == []
