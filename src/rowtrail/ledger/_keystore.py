"""Per-subject data keys: subject-derived payloads encrypted so that erasure can shred them.

A payload derived from one data subject's rows (a decision's input vector, a per-sample
signal) is stored as a blob encrypted with AES-256-GCM under a data key of that subject. The
ledger binds the *ciphertext's* digest, so destroying the key makes the payload unreadable
while every blob still hashes to its name and every proof still holds (crypto-shredding,
DESIGN §6).

Keys are secrets and live outside the ledger and the blob store, in ``keys/subjects.db`` of
the workspace (SQLite, mode 0600, ``secure_delete`` on). :meth:`SubjectKeyStore.destroy`
overwrites a key with zeros before deleting its row, then ``VACUUM`` rewrites the file so that
no free page keeps the old bytes. The key id (random, not derived from the subject) is what
events record, never the key.

Envelope of an encrypted blob (NIST SP 800-38D, 96-bit nonce)::

    b"RTENC1" | key id (32 ASCII hex) | nonce (12 bytes) | ciphertext + tag

The key id and the magic are authenticated as associated data.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from rowtrail.errors import InvalidInputError, ShreddedError, StorageError, VerificationError

__all__ = [
    "SubjectKeyStore",
    "decrypt_payload",
    "encrypt_payload",
    "is_encrypted",
    "key_id_of",
    "subject_keys",
]

_MAGIC = b"RTENC1"
_ID_LEN = 32
_NONCE = 12
_FILE = "subjects.db"
_EXT = "rowtrail.subject_keys"


class SubjectKeyStore:
    """The data keys of data subjects, one live key per subject pseudonym.

    Parameters
    ----------
    path : path
        The SQLite file (``<workspace>/keys/subjects.db``); created on first write.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> store = SubjectKeyStore(pathlib.Path(tempfile.mkdtemp()) / "subjects.db")
    >>> blob = encrypt_payload(store, "ps:ab", b"secret")
    >>> decrypt_payload(store, blob)
    b'secret'
    >>> len(store.destroy("ps:ab"))
    1
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            new = not self.path.exists()
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            try:
                conn = sqlite3.connect(self.path, isolation_level=None)
                if new:
                    os.chmod(self.path, 0o600)
                conn.execute("PRAGMA secure_delete = ON")
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS data_keys (key_id TEXT PRIMARY KEY, "
                    "subject TEXT NOT NULL, key BLOB NOT NULL)"
                )
                conn.execute("CREATE INDEX IF NOT EXISTS data_keys_subject ON data_keys(subject)")
            except sqlite3.Error as exc:
                raise StorageError(
                    f"could not open the subject key store {self.path}: {exc}"
                ) from exc
            self._conn = conn
        return self._conn

    def key_for(self, subject: str) -> tuple[str, bytes]:
        """Return ``(key id, key)`` of the subject's live data key, creating one if needed."""
        if not subject:
            raise InvalidInputError(
                f"subject of SubjectKeyStore.key_for must be a subject pseudonym; got {subject!r}"
            )
        db = self._db()
        row = db.execute(
            "SELECT key_id, key FROM data_keys WHERE subject = ? ORDER BY rowid LIMIT 1",
            (subject,),
        ).fetchone()
        if row is not None:
            return str(row[0]), bytes(row[1])
        key_id, key = secrets.token_hex(_ID_LEN // 2), AESGCM.generate_key(bit_length=256)
        db.execute("INSERT INTO data_keys VALUES (?, ?, ?)", (key_id, subject, key))
        return key_id, key

    def get(self, key_id: str) -> bytes:
        """Return a key by id; raise :class:`ShreddedError` when it was destroyed."""
        if not self.path.exists():
            raise ShreddedError(f"data key {key_id} does not exist (no key store): shredded")
        row = self._db().execute("SELECT key FROM data_keys WHERE key_id = ?", (key_id,)).fetchone()
        if row is None:
            raise ShreddedError(f"data key {key_id} was destroyed: the payload is shredded")
        return bytes(row[0])

    def key_ids(self, subject: str) -> list[str]:
        """Return the ids of the subject's live keys (empty when it has none)."""
        if not self.path.exists():
            return []
        rows = (
            self._db()
            .execute("SELECT key_id FROM data_keys WHERE subject = ? ORDER BY key_id", (subject,))
            .fetchall()
        )
        return [str(r[0]) for r in rows]

    def destroy(self, subject: str) -> list[str]:
        """Destroy every key of ``subject`` (overwrite, delete, VACUUM); return their ids."""
        ids = self.key_ids(subject)
        if not ids:
            return []
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(
                "UPDATE data_keys SET key = zeroblob(length(key)) WHERE subject = ?", (subject,)
            )
            db.execute("DELETE FROM data_keys WHERE subject = ?", (subject,))
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            db.execute("ROLLBACK")
            raise StorageError(f"could not destroy the keys of {subject}: {exc}") from exc
        db.execute("VACUUM")  # no free page keeps the old key bytes
        return ids

    def close(self) -> None:
        """Close the database connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def subject_keys(workspace: Any) -> SubjectKeyStore:
    """Return the workspace's key store (``<workspace>/keys/subjects.db``), one per handle."""
    found = workspace.extensions.get(_EXT)
    if not isinstance(found, SubjectKeyStore):
        found = SubjectKeyStore(Path(workspace.path) / "keys" / _FILE)
        workspace.extensions[_EXT] = found
    return found


def is_encrypted(blob: bytes) -> bool:
    """Whether ``blob`` is an encrypted subject payload (see the module docstring)."""
    return blob.startswith(_MAGIC)


def encrypt_payload(store: SubjectKeyStore, subject: str, plaintext: bytes) -> bytes:
    """Encrypt ``plaintext`` under the subject's data key; return the envelope bytes."""
    key_id, key = store.key_for(subject)
    header = _MAGIC + key_id.encode("ascii")
    nonce = secrets.token_bytes(_NONCE)
    return header + nonce + AESGCM(key).encrypt(nonce, plaintext, header)


def key_id_of(blob: bytes) -> str:
    """Return the key id an encrypted blob names."""
    if not is_encrypted(blob) or len(blob) < len(_MAGIC) + _ID_LEN + _NONCE:
        raise InvalidInputError("blob of key_id_of must be an encrypted subject payload")
    return blob[len(_MAGIC) : len(_MAGIC) + _ID_LEN].decode("ascii")


def decrypt_payload(store: SubjectKeyStore, blob: bytes) -> bytes:
    """Return the plaintext of an envelope; raise :class:`ShreddedError` if its key is gone."""
    key_id = key_id_of(blob)
    header = blob[: len(_MAGIC) + _ID_LEN]
    nonce = blob[len(header) : len(header) + _NONCE]
    try:
        return AESGCM(store.get(key_id)).decrypt(nonce, blob[len(header) + _NONCE :], header)
    except InvalidTag:
        raise VerificationError(
            f"an encrypted payload under data key {key_id} fails authentication: it was altered"
        ) from None
