"""Full verification of a stored log: every leaf, node, index, blob and checkpoint.

``verify_log`` recomputes every leaf hash from the stored leaf bytes, decodes every event
(which must be canonical), checks the kind and subject indexes and the referenced blobs,
rebuilds every perfect-subtree hash and compares it with the stored tree, and checks every
stored checkpoint (signature, origin, root at its size) and the witness's latest checkpoint.
The first problem raises :class:`~rowtrail.errors.LogIntegrityError` (or the more specific
:class:`~rowtrail.errors.CheckpointError`) naming the first bad index.
"""

from __future__ import annotations

import hmac
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from rowtrail.errors import (
    BlobNotFoundError,
    CheckpointError,
    LogIntegrityError,
    RowtrailError,
    VerificationError,
)
from rowtrail.ledger._events import Event
from rowtrail.ledger._log import Ledger
from rowtrail.ledger._merkle import extend_tree, leaf_hash

__all__ = ["VerifyReport", "verify_log"]


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What a successful full verification covered."""

    size: int
    root: bytes
    n_nodes: int
    n_blobs: int
    n_checkpoints: int
    witnessed_size: int | None

    def to_json(self) -> dict[str, object]:
        """Return a JSON-ready summary."""
        return {
            "ok": True,
            "size": self.size,
            "root": self.root.hex(),
            "nodes": self.n_nodes,
            "blobs": self.n_blobs,
            "checkpoints": self.n_checkpoints,
            "witnessed_size": self.witnessed_size,
        }


def _check_entries(
    ledger: Ledger, size: int, batch: int, progress: Callable[[int], None] | None
) -> tuple[int, int]:
    store = ledger._store  # noqa: SLF001 - verification reads raw storage on purpose
    frontier: dict[tuple[int, int], bytes] = {}
    subjects_index = _subject_index(ledger)
    n_nodes = 0
    blobs_seen: set[str] = set()
    for start in range(0, size, batch):
        rows = store.read_entries(start, min(size, start + batch))
        hashes = []
        for expected, row in enumerate(rows, start):
            if row.index != expected:
                raise LogIntegrityError(f"entry {expected} is missing", index=expected)
            _check_entry(ledger, row.index, row.kind, row.leaf, row.leaf_hash, row.subjects,
                         subjects_index.pop(row.index, ()), blobs_seen)
            hashes.append(row.leaf_hash)
        if len(rows) != min(size, start + batch) - start:
            missing = start + len(rows)
            raise LogIntegrityError(f"entry {missing} is missing", index=missing)
        nodes = extend_tree(start, hashes, lambda level, index: frontier[(level, index)])
        interior = [node for node in nodes if node[0] > 0]
        stored = _read_nodes(ledger, [(level, index) for level, index, _ in interior])
        for (level, index, value), found in zip(interior, stored, strict=True):
            if not hmac.compare_digest(value, found):
                first = index << level
                raise LogIntegrityError(
                    f"stored tree node (level {level}, index {index}) disagrees with the "
                    f"entries from index {first}",
                    index=first,
                )
        n_nodes += len(interior)
        for level, index, value in nodes:
            frontier[(level, index)] = value  # keep only what later appends can pair with
        frontier = _trim_frontier(frontier, start + len(rows))
        if progress is not None:
            progress(len(rows))
    if subjects_index:
        index = min(subjects_index)
        raise LogIntegrityError(f"subject index names entry {index}, which does not exist", index=index)
    if store.count_nodes() != n_nodes:
        raise LogIntegrityError(
            f"{store.count_nodes()} tree nodes are stored but {size} entries make {n_nodes}: "
            "entries were removed or nodes added",
            index=size,
        )
    return n_nodes, len(blobs_seen)


def _trim_frontier(frontier: dict[tuple[int, int], bytes], size: int) -> dict[tuple[int, int], bytes]:
    keep = {}
    for level in range(size.bit_length()):
        if size >> level & 1:
            key = (level, (size >> level) - 1)
            keep[key] = frontier[key]
    return keep


def _read_nodes(ledger: Ledger, keys: list[tuple[int, int]]) -> list[bytes]:
    try:
        return ledger._store.read_nodes(keys)  # noqa: SLF001
    except RowtrailError as exc:
        first = min((index << level for level, index in keys), default=0)
        raise LogIntegrityError(f"stored tree is missing nodes: {exc}", index=first) from exc


def _subject_index(ledger: Ledger) -> dict[int, tuple[str, ...]]:
    grouped: dict[int, list[str]] = defaultdict(list)
    for subject, index in ledger._store.iter_subject_index():  # noqa: SLF001
        grouped[index].append(subject)
    return {index: tuple(sorted(values)) for index, values in grouped.items()}


def _check_entry(
    ledger: Ledger,
    index: int,
    kind: str,
    leaf: bytes,
    stored_hash: bytes,
    subjects: tuple[str, ...],
    indexed_subjects: tuple[str, ...],
    blobs_seen: set[str],
) -> None:
    if not hmac.compare_digest(leaf_hash(leaf), stored_hash):
        raise LogIntegrityError(f"entry {index}: leaf bytes do not hash to the stored leaf hash", index=index)
    try:
        event = Event.from_leaf(leaf)
    except RowtrailError as exc:
        raise LogIntegrityError(f"entry {index}: leaf is not a canonical event ({exc})", index=index) from exc
    if event.kind != kind:
        raise LogIntegrityError(f"entry {index}: kind index says {kind!r}, event says {event.kind!r}", index=index)
    if tuple(event.subjects) != tuple(sorted(indexed_subjects)):
        raise LogIntegrityError(f"entry {index}: subject index disagrees with the event", index=index)
    for digest in event.blobs:
        if digest in blobs_seen:
            continue
        try:
            ledger.blobs.get(digest)
        except BlobNotFoundError as exc:
            raise LogIntegrityError(f"entry {index}: blob {digest} is missing", index=index) from exc
        except VerificationError as exc:
            raise LogIntegrityError(f"entry {index}: blob {digest} was altered", index=index) from exc
        blobs_seen.add(digest)


def _check_checkpoints(ledger: Ledger, size: int, witness_note: str | None) -> int | None:
    for stored in ledger.checkpoints():
        checkpoint = ledger.open_checkpoint(stored.note)
        if checkpoint.size != stored.size or checkpoint.root != stored.root:
            raise CheckpointError(f"stored checkpoint row of size {stored.size} disagrees with its note")
        _check_head(ledger, checkpoint.size, checkpoint.root, size, "stored checkpoint")
    if witness_note is None:
        return None
    witnessed = ledger.open_checkpoint(witness_note)
    _check_head(ledger, witnessed.size, witnessed.root, size, "witnessed checkpoint")
    return witnessed.size


def _check_head(ledger: Ledger, head_size: int, head_root: bytes, size: int, what: str) -> None:
    if head_size > size:
        raise CheckpointError(
            f"{what} covers {head_size} entries but the log holds {size}: entries from index "
            f"{size} were truncated, or an older log state was replayed"
        )
    if head_size and not hmac.compare_digest(ledger.root(head_size), head_root):
        raise CheckpointError(f"{what} root at size {head_size} does not match the stored log")


def verify_log(
    ledger: Ledger,
    *,
    witness_note: str | None = None,
    batch: int = 20_000,
    progress: Callable[[int], None] | None = None,
) -> VerifyReport:
    """Verify everything stored for ``ledger``; raise on the first problem."""
    size = ledger.size
    n_nodes, n_blobs = _check_entries(ledger, size, batch, progress)
    witnessed = _check_checkpoints(ledger, size, witness_note)
    return VerifyReport(
        size=size,
        root=ledger.root(size),
        n_nodes=n_nodes,
        n_blobs=n_blobs,
        n_checkpoints=len(ledger.checkpoints()),
        witnessed_size=witnessed,
    )
