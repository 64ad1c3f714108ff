"""``reconcile``: re-hash every artifact and blob against its digest (issue 13, DESIGN §8).

Every stored blob file (model artifacts, prediction payloads, row maps, features) is named by
the SHA-256 of its bytes, and every blob a ledger event names must be stored unless a later
``erasure.redacted`` or ``retention.expired`` event accounts for it. :func:`reconcile` reads
each file in 1 MiB chunks, compares the digest with its name, and checks every blob the log
names is present. Each mismatch is recorded as a ``registry.reconcile_failed`` event, and the
run as a ``registry.reconciled`` summary event (files, bytes, MB/s, mismatches); with
``check=True`` (the default) a mismatch then raises
:class:`~rowtrail.errors.FileIntegrityError`.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rowtrail.errors import FileIntegrityError

if TYPE_CHECKING:
    from rowtrail._workspace import Workspace

__all__ = [
    "RECONCILED_KIND",
    "RECONCILE_FAILED_KIND",
    "Mismatch",
    "ReconcileReport",
    "hash_file",
    "reconcile",
]

RECONCILED_KIND = "registry.reconciled"
RECONCILE_FAILED_KIND = "registry.reconcile_failed"
_CHUNK = 1 << 20
_ACCOUNTED = {"erasure.redacted": "replaces", "retention.expired": "blobs"}


@dataclass(frozen=True)
class Mismatch:
    """A blob whose bytes do not hash to its name, or a named blob that is missing."""

    blob: str
    problem: str  # "altered" or "missing"
    detail: str
    ledger_index: int | None = None  # the first event naming it, for a missing blob

    def to_json(self) -> dict[str, Any]:
        """Return it as JSON-ready data."""
        return {
            "blob": self.blob,
            "problem": self.problem,
            "detail": self.detail,
            "ledger_index": self.ledger_index,
        }


@dataclass(frozen=True)
class ReconcileReport:
    """What :func:`reconcile` checked: files, bytes, throughput and mismatches."""

    n_files: int
    n_bytes: int
    seconds: float
    n_named: int
    mismatches: list[Mismatch] = field(default_factory=list)
    event_indices: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every blob matched its digest and every named blob is present."""
        return not self.mismatches

    @property
    def mb_per_s(self) -> float:
        """Throughput of the re-hash in MB/s (10^6 bytes)."""
        return self.n_bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        """Return the report as JSON-ready data."""
        return {
            "ok": self.ok,
            "n_files": self.n_files,
            "n_bytes": self.n_bytes,
            "seconds": round(self.seconds, 6),
            "mb_per_s": round(self.mb_per_s, 3),
            "n_named_blobs": self.n_named,
            "mismatches": [m.to_json() for m in self.mismatches],
            "event_indices": self.event_indices,
        }


def hash_file(path: Path, progress: Callable[[int], None] | None = None) -> tuple[str, int]:
    """Return ``("sha256:<hex>", size)`` of a file read in 1 MiB chunks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            if progress is not None:
                progress(len(chunk))
    return "sha256:" + digest.hexdigest(), size


def _named_blobs(ws: Workspace) -> tuple[dict[str, int], set[str]]:
    """Return every blob the log names (with its first event) and those it accounts gone."""
    named: dict[str, int] = {}
    gone: set[str] = set()
    with ws.ledger.snapshot():
        size = ws.ledger.size
        for start in range(0, size, 5000):
            for entry in ws.ledger.entries(range(start, min(size, start + 5000))):
                for digest in entry.event.blobs:
                    named.setdefault(digest, entry.index)
                # The same rule as the ledger's verification: a redaction's "replaces" digest,
                # a retention event's "blobs" list of digests.
                key = _ACCOUNTED.get(entry.event.kind)
                value = entry.event.payload.get(key) if key else None
                if key == "replaces" and isinstance(value, str):
                    gone.add(value)
                elif key == "blobs" and isinstance(value, list):
                    gone.update(v for v in value if isinstance(v, str))
    return named, gone


def total_blob_bytes(ws: Workspace) -> int:
    """Return the bytes of every stored blob file (what a progress bar counts to)."""
    return sum(ws.blobs.path_of(d).stat().st_size for d in ws.blobs.iter_digests())


def reconcile(
    ws: Workspace,
    *,
    progress: Callable[[int], None] | None = None,
    record: bool = True,
    check: bool = True,
) -> ReconcileReport:
    """Re-hash every blob file against its name and check every named blob is present.

    Parameters
    ----------
    ws : Workspace
        The workspace (opened for writing when ``record``).
    progress : callable, optional
        Called with the number of bytes hashed, chunk by chunk.
    record : bool
        Append a ``registry.reconcile_failed`` event per mismatch and a
        ``registry.reconciled`` summary event.
    check : bool
        Raise :class:`FileIntegrityError` on a mismatch (after recording it).

    Returns
    -------
    ReconcileReport

    Examples
    --------
    >>> import tempfile, rowtrail as rt
    >>> ws = rt.init(tempfile.mkdtemp())
    >>> _ = ws.ledger.append("model.saved", {}, blobs=[ws.ledger.put_blob(b"weights")])
    >>> reconcile(ws).ok
    True
    """
    named, gone = _named_blobs(ws)
    mismatches: list[Mismatch] = []
    n_files = n_bytes = 0
    started = time.perf_counter()
    present = sorted(ws.blobs.iter_digests())
    for digest in present:
        path = ws.blobs.path_of(digest)
        actual, size = hash_file(path, progress)
        n_files += 1
        n_bytes += size
        if not hmac.compare_digest(actual, digest):
            mismatches.append(
                Mismatch(digest, "altered", f"{path} hashes to {actual}", named.get(digest))
            )
    seconds = time.perf_counter() - started
    stored = set(present)
    for digest, index in sorted(named.items(), key=lambda item: item[1]):
        if digest not in stored and digest not in gone:
            mismatches.append(
                Mismatch(digest, "missing", f"named by ledger entry {index}, not stored", index)
            )
    indices: list[int] = []
    if record:
        with ws.ledger.transaction():
            for m in mismatches:
                indices.append(ws.ledger.append(RECONCILE_FAILED_KIND, m.to_json()))
            summary = {
                "n_files": n_files,
                "n_bytes": n_bytes,
                "n_named_blobs": len(named),
                "n_mismatches": len(mismatches),
                "mb_per_s": round(n_bytes / 1e6 / seconds, 3) if seconds > 0 else 0.0,
            }
            indices.append(ws.ledger.append(RECONCILED_KIND, summary))
    report = ReconcileReport(n_files, n_bytes, seconds, len(named), mismatches, indices)
    if check and mismatches:
        first = mismatches[0]
        raise FileIntegrityError(
            f"reconcile found {len(mismatches)} blob(s) that do not match the ledger; first: "
            f"{first.blob} is {first.problem} ({first.detail}). Each is recorded as a "
            f"{RECONCILE_FAILED_KIND} event. Restore the blobs from a backup.",
            path=str(ws.blobs.root),
        )
    return report
