"""Redact erased samples' rows of a stored gradient feature set in place.

A feature set is one memory-mapped float16 matrix for many samples: encrypting each row under
its subject's key would cost every attribution query a decryption per row, so an erasure
overwrites the erased samples' rows with zeros instead and appends an ``erasure.redacted``
event that binds the rewritten files (new digests), names the job and records the redacted
positions (as a blob). The event carries every field of the set's ``features.computed``
event, so the set opens as before; :func:`~rowtrail.training.verify_feature_stores` checks
the files against the latest of the two, so the redacted file (and nothing else) verifies.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from rowtrail.training._bound import describe_files
from rowtrail.training._codec import encode_positions
from rowtrail.training._features import (
    _DTYPE,
    _FILES,
    REDACTED_KIND,
    _binding,
    open_feature_set,
)

__all__ = ["redact_feature_rows", "redact_signal_values"]


def redact_feature_rows(workspace: Any, key: str, row_ids: ArrayLike, *, job: str) -> int | None:
    """Overwrite the rows of ``row_ids`` in feature set ``key``; record ``erasure.redacted``.

    Parameters
    ----------
    workspace : Workspace
        Holds the feature set and the ledger.
    key : str
        The feature set's key (see :func:`~rowtrail.training.list_feature_sets`).
    row_ids : array_like of int64
        Sample row ids whose feature rows are overwritten with zeros.
    job : str
        The erasure job's id, recorded with the event.

    Returns
    -------
    int or None
        The ledger index of the ``erasure.redacted`` event, or ``None`` when the set holds
        none of the rows (nothing is written then).

    Raises
    ------
    FileIntegrityError
        The set's files do not match their record before the redaction (never overwritten).
    """
    feature_set = open_feature_set(workspace, key)  # checked against its record first
    positions = np.flatnonzero(np.isin(feature_set.row_ids, np.asarray(row_ids, np.int64)))
    if not positions.size:
        return None
    binding = _binding(workspace, key)
    if binding is None:  # pragma: no cover - open_feature_set raised already
        return None
    dim = int(feature_set.meta["proj_dim"])
    row_bytes = dim * np.dtype(_DTYPE).itemsize
    zeros = np.zeros(dim, dtype=_DTYPE).tobytes()
    del feature_set  # release the read-only map before writing
    path = workspace.path / "features" / key
    with open(path / "features.f16", "r+b") as handle:
        for position in positions.tolist():
            handle.seek(position * row_bytes)
            handle.write(zeros)
        handle.flush()
        os.fsync(handle.fileno())
    files = describe_files(path, _FILES)
    payload = {
        k: v
        for k, v in binding.payload.items()
        if k not in ("files", "features_digest", "job", "n_redacted", "redacts")
    }
    payload.update(
        files=files,
        features_digest=files["features.f16"]["digest"],
        job=job,
        n_redacted=int(positions.size),
        redacts=binding.index,
    )
    blob = workspace.ledger.put_blob(encode_positions(positions.astype(np.int64)))
    payload["positions_blob"] = blob
    index: int = workspace.ledger.append(REDACTED_KIND, payload, blobs=[blob])
    return index


def redact_signal_values(
    workspace: Any,
    signal_events: list[int],
    positions_by_chunk: dict[int, set[int]],
    *,
    job: str,
) -> list[int]:
    """Replace per-sample signal blobs by copies with the erased sample-uses' values removed.

    A ``training.signals`` blob holds one float32 per sample-use of its chunk (many subjects).
    For each event in ``signal_events`` whose chunk drew an erased sample (the chunk positions
    in ``positions_by_chunk``), a copy with NaN at those positions is stored, an
    ``erasure.redacted`` event names the blob it ``replaces``, the new blob and the positions,
    and the old blob file is overwritten and deleted (unless another event still names it).
    Ledger verification accepts the missing blob only because that later event replaces it,
    so the chain and every proof stay intact. Returns the indices of the events written.
    """
    from rowtrail.training._signals import decode_signal

    ledger = workspace.ledger
    written: list[int] = []
    retired: list[str] = []
    for entry in ledger.proven(sorted(signal_events)):
        positions = sorted(positions_by_chunk.get(int(entry.event.payload.get("chunk", -1)), ()))
        if not positions or not entry.event.blobs:
            continue
        old = entry.event.blobs[0]
        values = decode_signal(ledger.blobs.get(old)).copy()
        values[[p for p in positions if p < values.size]] = np.nan
        new = ledger.put_blob(np.ascontiguousarray(values, dtype="<f4").tobytes())
        where = ledger.put_blob(encode_positions(np.asarray(positions, dtype=np.int64)))
        payload = {
            "job": job,
            "kind": "signals",
            "event": entry.index,
            "replaces": old,
            "blob": new,
            "positions_blob": where,
            "n_redacted": len(positions),
        }
        written.append(ledger.append(REDACTED_KIND, payload, blobs=[new, where]))
        retired.append(old)
    _retire_blobs(ledger, retired, replaced={int(i) for i in signal_events})
    return written


def _retire_blobs(ledger: Any, digests: list[str], replaced: set[int]) -> None:
    """Overwrite and delete the blob files of ``digests`` that no other event names.

    ``replaced`` are the events whose blob a redaction replaced; any other event naming the
    same bytes (content addressing shares identical blobs) keeps the file.
    """
    if not digests:
        return
    wanted = set(digests)
    still: set[str] = set()
    size = ledger.size
    for start in range(0, size, 4096):
        for entry in ledger.entries(range(start, min(size, start + 4096))):
            if entry.index not in replaced and entry.event.kind != REDACTED_KIND:
                still.update(wanted.intersection(entry.event.blobs))
    for digest in wanted - still:
        if not ledger.blobs.has(digest):
            continue
        path = ledger.blobs.path_of(digest)
        with open(path, "r+b") as handle:
            handle.write(bytes(path.stat().st_size))
            handle.flush()
            os.fsync(handle.fileno())
        path.unlink()
