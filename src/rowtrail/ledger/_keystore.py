"""Per-subject data keys: subject-derived payloads encrypted so that erasure can shred them.

A payload derived from one data subject's rows (a decision's input vector) is stored as a blob
encrypted with AES-256-GCM under a data key of that subject. The ledger binds the
*ciphertext's* digest, so destroying the key makes the payload unreadable while every blob
still hashes to its name and every proof still holds (crypto-shredding, DESIGN §6).

Keys are secrets and live outside the ledger and the blob store, one file per key (mode 0600)
under ``keys/subjects/<tag>/<key id>.key`` of the workspace, where ``tag`` is a keyed hash of
the subject pseudonym (so a subject's keys are found without reading the others). Each file
holds the key and the subject, sealed by an HMAC under the workspace's secret: every byte of
it is checked (:meth:`SubjectKeyStore.verify`, called by ``Workspace.verify``), so a flipped,
truncated or swapped key file is detected, and a deleted one is detected by the check that
every encrypted payload's key is alive or destroyed by a recorded erasure. Destroying a key
overwrites its file with zeros (fsynced) before unlinking it; the key id, not the key, is what
events record.

Envelope of an encrypted blob (NIST SP 800-38D, 96-bit nonce)::

    b"RTENC1" | key id (32 ASCII hex) | nonce (12 bytes) | ciphertext + tag

The key id and the magic are authenticated as associated data.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from rowtrail.errors import (
    FileIntegrityError,
    InvalidInputError,
    ShreddedError,
    StorageError,
    VerificationError,
)

__all__ = [
    "SubjectKeyStore",
    "decrypt_payload",
    "encrypt_payload",
    "is_encrypted",
    "key_id_of",
    "subject_keys",
]

_MAGIC = b"RTENC1"
_FILE_MAGIC = b"RTKEY1"
_ID_LEN = 32
_TAG_LEN = 16
_KEY_LEN = 32
_MAC_LEN = 32
_NONCE = 12
_EXT = "rowtrail.subject_keys"
_LABEL = b"rowtrail.dev/data-key/v1"


class SubjectKeyStore:
    """The data keys of data subjects, one live key per subject pseudonym.

    Parameters
    ----------
    root : path
        The directory of key files (``<workspace>/keys/subjects``); created on first write.
    secret : bytes
        The workspace secret that tags subjects and seals each key file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> store = SubjectKeyStore(pathlib.Path(tempfile.mkdtemp()) / "subjects", b"s" * 32)
    >>> blob = encrypt_payload(store, "ps:ab", b"secret")
    >>> decrypt_payload(store, blob)
    b'secret'
    >>> len(store.destroy("ps:ab"))
    1
    """

    def __init__(self, root: Path, secret: bytes) -> None:
        self.root = root
        self._secret = secret

    # ------------------------------------------------------------------ layout
    def _tag(self, subject: str) -> str:
        digest = hmac.new(self._secret, b"tag\x00" + subject.encode("utf-8"), hashlib.sha256)
        return digest.hexdigest()[:_TAG_LEN]

    def _path(self, key_id: str) -> Path:
        if len(key_id) != _ID_LEN or any(c not in "0123456789abcdef" for c in key_id):
            raise InvalidInputError(
                f"key_id of SubjectKeyStore must be 32 hex digits; got {key_id!r}"
            )
        return self.root / key_id[:_TAG_LEN] / f"{key_id}.key"

    def _seal(self, key_id: str, key: bytes, subject: str) -> bytes:
        body = key + subject.encode("utf-8")
        mac = hmac.new(self._secret, _LABEL + key_id.encode("ascii") + body, hashlib.sha256)
        return _FILE_MAGIC + mac.digest() + body

    def _open(self, path: Path) -> tuple[bytes, str]:
        """Return ``(key, subject)`` of a key file, checking every byte of it."""
        key_id = path.stem
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise StorageError(f"cannot read data key file {path}: {exc}") from exc
        head = len(_FILE_MAGIC) + _MAC_LEN
        body = data[head:]
        expected = hmac.new(self._secret, _LABEL + key_id.encode("ascii") + body, hashlib.sha256)
        ok = data.startswith(_FILE_MAGIC) and len(body) > _KEY_LEN
        if not ok or not hmac.compare_digest(data[len(_FILE_MAGIC) : head], expected.digest()):
            raise FileIntegrityError(
                f"data key file {path} was altered, truncated or moved: its seal does not match. "
                "Restore the workspace's keys/ from your backup.",
                path=str(path),
            )
        try:
            subject = body[_KEY_LEN:].decode("utf-8")
        except UnicodeDecodeError as exc:  # pragma: no cover - the seal covers these bytes
            raise FileIntegrityError(f"data key file {path} is malformed", path=str(path)) from exc
        if self._tag(subject) != key_id[:_TAG_LEN] or path.parent.name != key_id[:_TAG_LEN]:
            raise FileIntegrityError(
                f"data key file {path} is not filed under its subject. Restore keys/ from your "
                "backup.",
                path=str(path),
            )
        return body[:_KEY_LEN], subject

    # ------------------------------------------------------------------ keys
    def key_for(self, subject: str) -> tuple[str, bytes]:
        """Return ``(key id, key)`` of the subject's live data key, creating one if needed."""
        if not subject:
            raise InvalidInputError(
                f"subject of SubjectKeyStore.key_for must be a subject pseudonym; got {subject!r}"
            )
        ids = self.key_ids(subject)
        if ids:
            return ids[0], self.get(ids[0])
        key_id = self._tag(subject) + secrets.token_hex(_ID_LEN // 4)
        key = AESGCM.generate_key(bit_length=256)
        path = self._path(key_id)
        try:
            for folder in (self.root.parent, self.root, path.parent):  # each one 0700
                folder.mkdir(mode=0o700, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as handle:
                os.fchmod(handle.fileno(), 0o600)
                handle.write(self._seal(key_id, key, subject))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            raise StorageError(f"could not store a data key under {self.root}: {exc}") from exc
        return key_id, key

    def get(self, key_id: str) -> bytes:
        """Return a key by id; raise :class:`ShreddedError` when it was destroyed."""
        path = self._path(key_id)
        if not path.exists():
            raise ShreddedError(f"data key {key_id} was destroyed: the payload is shredded")
        return self._open(path)[0]

    def key_ids(self, subject: str) -> list[str]:
        """Return the ids of the subject's live keys (empty when it has none)."""
        folder = self.root / self._tag(subject)
        if not folder.is_dir():
            return []
        return sorted(p.stem for p in folder.glob("*.key"))

    def has(self, key_id: str) -> bool:
        """Whether the key ``key_id`` is alive."""
        return self._path(key_id).exists()

    def destroy(self, subject: str) -> list[str]:
        """Destroy every key of ``subject`` (overwrite with zeros, fsync, unlink); return ids."""
        ids = self.key_ids(subject)
        for key_id in ids:
            path = self._path(key_id)
            try:
                size = path.stat().st_size
                with open(path, "r+b") as handle:
                    handle.write(b"\x00" * size)
                    handle.flush()
                    os.fsync(handle.fileno())
                path.unlink()
            except OSError as exc:
                raise StorageError(f"could not destroy data key {key_id}: {exc}") from exc
        with contextlib.suppress(OSError):
            (self.root / self._tag(subject)).rmdir()
        return ids

    def iter_files(self) -> Iterator[Path]:
        """Yield every file under the store (key files and anything else placed there)."""
        if self.root.is_dir():
            yield from sorted(p for p in self.root.rglob("*") if p.is_file())

    def verify(self) -> int:
        """Check every key file's seal and place; return the number of keys.

        Raises
        ------
        FileIntegrityError
            A key file was altered, truncated, moved, or a foreign file lies in the store.
        """
        n = 0
        for path in self.iter_files():
            if path.suffix != ".key":
                raise FileIntegrityError(
                    f"{path} is not a data key file rowtrail wrote; remove it.", path=str(path)
                )
            self._path(path.stem)  # a valid id
            self._open(path)
            n += 1
        return n


def subject_keys(workspace: Any) -> SubjectKeyStore:
    """Return the workspace's key store (``<workspace>/keys/subjects``), one per handle."""
    found = workspace.extensions.get(_EXT)
    if not isinstance(found, SubjectKeyStore):
        found = SubjectKeyStore(Path(workspace.path) / "keys" / "subjects", workspace.secret)
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
