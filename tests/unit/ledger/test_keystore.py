"""Per-subject data keys: encryption round trip, shredding, tamper detection."""

from __future__ import annotations

from pathlib import Path

import pytest

from rowtrail.errors import FileIntegrityError, ShreddedError, VerificationError
from rowtrail.ledger import (
    SubjectKeyStore,
    decrypt_payload,
    encrypt_payload,
    is_encrypted,
    key_id_of,
)

SECRET = bytes(range(32))


def store_at(path: Path) -> SubjectKeyStore:
    return SubjectKeyStore(path / "subjects", SECRET)


def test_round_trip_one_key_per_subject(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    a1 = encrypt_payload(store, "ps:a", b"alpha")
    a2 = encrypt_payload(store, "ps:a", b"alpha")
    b = encrypt_payload(store, "ps:b", b"beta")
    assert is_encrypted(a1)
    assert not is_encrypted(b"alpha")
    assert a1 != a2  # fresh nonce each time
    assert key_id_of(a1) == key_id_of(a2) != key_id_of(b)
    assert decrypt_payload(store, a2) == b"alpha"
    assert decrypt_payload(store, b) == b"beta"
    assert store.verify() == 2
    for path in [store.root, *store.root.rglob("*")]:
        assert path.stat().st_mode & 0o077 == 0, path


def test_destroy_shreds_only_that_subject_and_leaves_no_key_file(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    blob = encrypt_payload(store, "ps:a", b"alpha")
    other = encrypt_payload(store, "ps:b", b"beta")
    key_id, key = store.key_for("ps:a")
    assert store.destroy("ps:a") == [key_id]
    assert store.destroy("ps:a") == []
    with pytest.raises(ShreddedError, match="destroyed"):
        decrypt_payload(store, blob)
    assert decrypt_payload(store, other) == b"beta"
    assert not store.has(key_id)
    assert all(key not in p.read_bytes() for p in store.iter_files())
    assert decrypt_payload(store_at(tmp_path), other) == b"beta"


def test_an_altered_envelope_fails_authentication(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    blob = bytearray(encrypt_payload(store, "ps:a", b"alpha"))
    blob[-1] ^= 1
    with pytest.raises(VerificationError, match="altered"):
        decrypt_payload(store, bytes(blob))


@pytest.mark.parametrize("position", [0, 10, 40, -1])
def test_a_flipped_or_truncated_key_file_is_detected(tmp_path: Path, position: int) -> None:
    store = store_at(tmp_path)
    blob = encrypt_payload(store, "ps:a", b"alpha")
    (path,) = store.iter_files()
    data = bytearray(path.read_bytes())
    data[position] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(FileIntegrityError, match="altered"):
        store.verify()
    with pytest.raises(FileIntegrityError):
        decrypt_payload(store, blob)
    path.write_bytes(bytes(data[:20]))
    with pytest.raises(FileIntegrityError):
        store.verify()


def test_a_key_file_moved_to_another_subject_is_detected(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    encrypt_payload(store, "ps:a", b"alpha")
    encrypt_payload(store, "ps:b", b"beta")
    (a,) = store.key_ids("ps:a")
    (b,) = store.key_ids("ps:b")
    source = tmp_path / "subjects" / a[:16] / f"{a}.key"
    target = tmp_path / "subjects" / b[:16] / f"{b}.key"
    target.write_bytes(source.read_bytes())  # a's key under b's id
    with pytest.raises(FileIntegrityError):
        store.verify()


def test_a_missing_store_means_shredded(tmp_path: Path) -> None:
    blob = encrypt_payload(store_at(tmp_path), "ps:a", b"alpha")
    elsewhere = SubjectKeyStore(tmp_path / "elsewhere", SECRET)
    with pytest.raises(ShreddedError):
        decrypt_payload(elsewhere, blob)
    assert elsewhere.key_ids("ps:a") == []
    assert elsewhere.verify() == 0
