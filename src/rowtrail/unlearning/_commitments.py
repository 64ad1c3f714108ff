"""Salted commitments to the source rows an erasure job resolved (no row id leaves the workspace).

A certificate must show *which* rows were erased to the workspace owner, who can prove that a
given row was included, without telling anyone else which rows those were (row ids are
enumerable: ``source_index << 40 | row_number``). Each row gets its own salt, derived from a
per-job secret kept in the workspace::

    salt       = HMAC-SHA256(job key, "rowtrail.dev/row-salt/v1" || 0x00 || canonical_json(row_id))
    commitment = "sha256:" + hex(SHA-256(salt || canonical_json(row_id)))

``canonical_json(row_id)`` is the row id's decimal ASCII text. Without the salt the commitment
hides the row (SHA-256 of 32 unknown bytes); with it anyone recomputes it. Opening one row
reveals that row's salt only, never the job key, so the other commitments stay closed.

The job key is ``keys/erasure/<job_id>.key`` in the workspace (mode 0600), made by
:func:`commit_rows` on first use: 32 random bytes followed by an HMAC-SHA256 of the job id and
the key under the workspace's secret, so ``Workspace.verify`` detects a flipped, truncated or
swapped key file (:func:`verify_commitment_keys`), and a deleted one when the job issued a
certificate (``erasure.certified``) and no ``erasure.key_destroyed`` event says it was shredded.
:func:`destroy_commitment_key` overwrites and deletes it and records that event; the
commitments can then never be opened again (the crypto-shredding of the job's row list).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import tempfile
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from rowtrail.errors import (
    CertificateError,
    FileIntegrityError,
    InvalidInputError,
    MissingKeyError,
    StateError,
)
from rowtrail.hashing import canonical_json, check_digest
from rowtrail.unlearning._certificate_content import check_job_id

if TYPE_CHECKING:
    from rowtrail._workspace import Workspace

__all__ = [
    "CommitmentOpening",
    "commit_rows",
    "compute_commitment",
    "destroy_commitment_key",
    "open_commitment",
    "verify_commitment",
    "verify_commitment_keys",
]

_SALT_LABEL = b"rowtrail.dev/row-salt/v1\x00"
_KEY_BYTES = 32


def _key_path(ws: Workspace, job_id: str) -> Path:
    return Path(ws.path) / "keys" / "erasure" / f"{check_job_id(job_id, caller='commit_rows')}.key"


_SEAL_LABEL = b"rowtrail.dev/commitment-key/v1\x00"


def _seal(secret: bytes, job_id: str, key: bytes) -> bytes:
    return hmac.new(secret, _SEAL_LABEL + job_id.encode() + b"\x00" + key, hashlib.sha256).digest()


def _open_sealed(secret: bytes, job_id: str, data: bytes, path: Path) -> bytes:
    """Return the key of a sealed key file, or raise ``FileIntegrityError``."""
    key, mac = data[:_KEY_BYTES], data[_KEY_BYTES:]
    if len(data) != 2 * _KEY_BYTES or not hmac.compare_digest(mac, _seal(secret, job_id, key)):
        raise FileIntegrityError(
            f"the commitment key {path} of job {job_id!r} was edited, truncated or swapped "
            "(its seal does not verify); restore it from your backup",
            path=str(path),
        )
    return key


def _create_key(path: Path, secret: bytes, job_id: str) -> bytes:
    """Create the sealed job key atomically (mode 0600) unless it exists; return the file."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    key = secrets.token_bytes(_KEY_BYTES)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key + _seal(secret, job_id, key))
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)  # create-if-absent: concurrent callers agree on one key
    finally:
        os.unlink(tmp)
    return path.read_bytes()


def _job_key(ws: Workspace, job_id: str, *, create: bool) -> bytes:
    path = _key_path(ws, job_id)
    if path.is_file():
        data = path.read_bytes()
    elif not create:
        raise MissingKeyError(
            f"the commitment key of job {job_id!r} ({path}) does not exist: it was never made "
            "or was destroyed, so the job's row commitments cannot be opened"
        )
    elif getattr(ws, "read_only", False):
        raise StateError(f"workspace {ws.path} is open read-only; commit_rows writes a key")
    else:
        data = _create_key(path, ws.secret, job_id)
    return _open_sealed(ws.secret, job_id, data, path)


def _row_ids(row_ids: ArrayLike, caller: str) -> list[int]:
    array = np.asarray(row_ids)
    if array.ndim != 1 or not (array.size == 0 or np.issubdtype(array.dtype, np.integer)):
        raise InvalidInputError(
            f"row_ids of {caller} must be a 1-d sequence of int row ids; got dtype "
            f"{array.dtype} and shape {array.shape}"
        )
    if array.size and int(array.min()) < 0:
        raise InvalidInputError(f"row_ids of {caller} must be >= 0; got {int(array.min())}")
    return [int(value) for value in np.unique(array.astype(np.int64))]


def _salt(key: bytes, row_id: int) -> bytes:
    return hmac.new(key, _SALT_LABEL + canonical_json(row_id), hashlib.sha256).digest()


def compute_commitment(row_id: int, salt: bytes) -> str:
    """Return ``sha256:`` + hex of ``SHA-256(salt || canonical_json(row_id))``.

    Examples
    --------
    >>> compute_commitment(7, bytes(32))[:15]
    'sha256:6e9be5fe'
    """
    return "sha256:" + hashlib.sha256(_check_salt(salt) + canonical_json(_check_row(row_id)))\
        .hexdigest()


def _check_row(row_id: object) -> int:
    if isinstance(row_id, bool) or not isinstance(row_id, int | np.integer) or row_id < 0:
        raise InvalidInputError(f"row_id of compute_commitment must be an int >= 0; "
                                f"got {row_id!r}")
    return int(row_id)


def _check_salt(salt: object) -> bytes:
    if not isinstance(salt, bytes) or len(salt) != _KEY_BYTES:
        raise InvalidInputError(f"salt of compute_commitment must be 32 bytes; got {salt!r:.80}")
    return salt


def commit_rows(ws: Workspace, row_ids: ArrayLike, *, job_id: str) -> list[str]:
    """Return the salted commitments of the resolved rows of a job, sorted.

    Makes the job's commitment key in the workspace on first use (see the module docstring).
    The list is sorted by commitment and has one element per distinct row, so it reveals
    neither the rows nor their order.

    Parameters
    ----------
    ws : Workspace
        The workspace of the erasure job (holds the key).
    row_ids : array_like of int
        Row ids (``source_index << 40 | row_number``) the request resolved to.
    job_id : str
        The erasure job; one key per job.

    Examples
    --------
    >>> import tempfile, rowtrail as rt
    >>> with rt.init(tempfile.mkdtemp()) as ws:
    ...     len(commit_rows(ws, [3, 1, 3], job_id="job-1"))
    2
    """
    rows = _row_ids(row_ids, "commit_rows")
    key = _job_key(ws, job_id, create=True)
    return sorted(compute_commitment(row, _salt(key, row)) for row in rows)


@dataclass(frozen=True, slots=True)
class CommitmentOpening:
    """Everything needed to check that one row is behind one commitment of a certificate.

    The workspace owner makes it with :func:`open_commitment` and hands it to whoever must
    be shown that the row was erased; they check it with :func:`verify_commitment`.
    """

    row_id: int
    salt: bytes
    commitment: str

    def to_json(self) -> dict[str, Any]:
        """Return ``{"row_id", "salt" (hex), "commitment"}``."""
        return {"row_id": self.row_id, "salt": self.salt.hex(), "commitment": self.commitment}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CommitmentOpening:
        """Parse the form written by :meth:`to_json`."""
        try:
            return cls(int(data["row_id"]), bytes.fromhex(data["salt"]),
                       check_digest(data["commitment"], name="commitment"))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"not a commitment opening: {exc!r}") from exc


def open_commitment(ws: Workspace, row_id: int, *, job_id: str) -> CommitmentOpening:
    """Open the commitment of one row of a job (needs the job key; reveals this row only).

    Raises
    ------
    MissingKeyError
        The job's key was never made or has been destroyed.
    """
    (row,) = _row_ids([row_id], "open_commitment")
    salt = _salt(_job_key(ws, job_id, create=False), row)
    return CommitmentOpening(row, salt, compute_commitment(row, salt))


def verify_commitment(opening: CommitmentOpening, commitments: Collection[str]) -> None:
    """Raise :class:`CertificateError` unless ``opening`` opens one of ``commitments``.

    ``commitments`` is typically ``verify_certificate(...).row_commitments``.
    """
    recomputed = compute_commitment(opening.row_id, opening.salt)
    if not hmac.compare_digest(recomputed, opening.commitment):
        raise CertificateError(
            f"the opening of row {opening.row_id} gives {recomputed}, not the commitment "
            f"{opening.commitment} it claims"
        )
    if opening.commitment not in set(commitments):
        raise CertificateError(
            f"row {opening.row_id} (commitment {opening.commitment}) is not among the "
            f"{len(commitments)} rows the certificate commits to"
        )


def destroy_commitment_key(ws: Workspace, job_id: str) -> bool:
    """Overwrite and delete a job's commitment key; return whether there was one.

    Afterwards no commitment of the job can be opened by anyone, the owner included. The
    ``erasure.key_destroyed`` event is written first, so a crash leaves a key to destroy
    again, never a missing key without a record.
    """
    path = _key_path(ws, job_id)
    if not path.is_file():
        return False
    ws.ledger.append("erasure.key_destroyed", {"job": job_id, "key": "commitment"})
    with open(path, "r+b") as handle:
        handle.write(bytes(path.stat().st_size))
        handle.flush()
        os.fsync(handle.fileno())
    path.unlink()
    return True


def verify_commitment_keys(ws: Workspace) -> int:
    """Check every commitment key file, and that no certified job's key is missing.

    Returns the number of key files checked; raises ``FileIntegrityError`` otherwise.
    """
    folder = Path(ws.path) / "keys" / "erasure"
    files = sorted(folder.glob("*.key")) if folder.is_dir() else []
    for path in files:
        _open_sealed(ws.secret, path.stem, path.read_bytes(), path)
    ledger = ws.ledger
    destroyed = {str(e.event.payload.get("job")) for e in ledger.entries_of_kind(
        "erasure.key_destroyed")}
    for entry in ledger.entries_of_kind("erasure.certified"):
        job = str(entry.event.payload.get("job"))
        if job not in destroyed and not (folder / f"{job}.key").is_file():
            raise FileIntegrityError(
                f"the commitment key of certified job {job!r} is missing from {folder} and no "
                "erasure.key_destroyed event records its destruction; restore it from your "
                "backup",
                path=str(folder / f"{job}.key"),
            )
    return len(files)
