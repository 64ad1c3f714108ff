"""Storage protocols the ledger needs; ``rowtrail.store`` implements them.

The ledger never imports SQLite or psycopg: a backend implements :class:`LedgerStore` (events,
perfect-subtree hashes, checkpoints, subject and kind indexes) and :class:`BlobStore`
(content-addressed bytes), and the workspace wires them together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, NamedTuple, Protocol

__all__ = [
    "BlobStore",
    "EntryBatch",
    "EntryRow",
    "LedgerStore",
    "LedgerTransaction",
    "Projection",
    "StoredCheckpoint",
]


class EntryRow(NamedTuple):
    """One stored ledger entry as the backend keeps it."""

    # ``index`` shadows ``tuple.index``; the name matches LedgerEntry and the CLI's JSON.
    index: int  # type: ignore[assignment]
    kind: str
    leaf: bytes
    leaf_hash: bytes
    subjects: tuple[str, ...]


class EntryBatch(NamedTuple):
    """Entries ``start, start + 1, ...`` of one append, column by column (the write path).

    Columns rather than one object per entry, because building a million small objects costs
    more than the database insert they feed.
    """

    start: int
    kinds: Sequence[str]
    leaves: Sequence[bytes]
    leaf_hashes: Sequence[bytes]
    subjects: Sequence[tuple[str, ...]]


class StoredCheckpoint(NamedTuple):
    """A signed checkpoint as stored: size, root, the exact note text, and its signed record.

    ``record`` is the signed :class:`~rowtrail.ledger.CheckpointRecord` note (when it was
    signed and the digest of the record before it); ``created_at`` is the time it names.
    """

    size: int
    root: bytes
    note: str
    record: str = ""
    created_at: str = ""


#: Applies appended events to a backend's cache tables in the append's own transaction:
#: called with the backend's transaction handle and the ``(index, leaf bytes)`` of every
#: appended entry of the kinds it was registered for; returns ``(old, new)`` bucket hashes of
#: every bucket of cache rows it changed (see ``rowtrail.ledger.bucket_hash``), by which the
#: checkpoint record's signed cache digest is updated.
Projection = Callable[[Any, Sequence[tuple[int, bytes]]], Sequence[tuple[int, int]]]


class LedgerTransaction(Protocol):
    """An exclusive write transaction: reads see the committed tree, writes commit together."""

    def size(self) -> int:
        """Return the number of entries committed so far."""
        ...

    def read_node(self, level: int, index: int) -> bytes:
        """Return a stored perfect-subtree hash (level 0 is a leaf hash)."""
        ...

    def write(self, batch: EntryBatch, nodes: Sequence[tuple[int, int, bytes]]) -> None:
        """Stage entries and the interior tree nodes (level >= 1) their append completed.

        They commit when the context exits cleanly, together with the cache rows the
        backend's projections derive from them.
        """
        ...

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        """Return the largest stored checkpoint as this transaction sees it."""
        ...

    def take_projected_changes(self) -> list[tuple[int, int]]:
        """Return (and forget) the ``(old, new)`` cache bucket hashes changed since last asked."""
        ...

    def subject_bucket(self, bucket: int) -> list[tuple[int, str]]:
        """Return ``(index, subject_ref_text)`` of every subject index row in one bucket."""
        ...

    def save_checkpoint(self, checkpoint: StoredCheckpoint) -> None:
        """Stage a signed checkpoint of the tree as this transaction leaves it."""
        ...


class LedgerStore(Protocol):
    """Persistent state of one Merkle log."""

    def transaction(self) -> AbstractContextManager[LedgerTransaction]:
        """Open an exclusive write transaction (one per batch: group commit)."""
        ...

    def snapshot(self) -> AbstractContextManager[None]:
        """Make every read inside the block see one committed state (for full verification).

        Other processes keep appending meanwhile; the reads must not see their commits.
        """
        ...

    def fresh_view(self) -> AbstractContextManager[LedgerStore]:
        """Open a second, read-only store on the same log that sees its latest commit.

        For a reader whose snapshot another process has overtaken: what was committed since
        is read there, outside the snapshot. Closed when the block ends.
        """
        ...

    def size(self) -> int:
        """Return the number of committed entries."""
        ...

    def read_nodes(self, keys: Sequence[tuple[int, int]]) -> list[bytes]:
        """Return stored perfect-subtree hashes for ``(level, index)`` keys, in order."""
        ...

    def read_entries(self, start: int, end: int) -> list[EntryRow]:
        """Return entries ``[start, end)`` in index order."""
        ...

    def read_leaves(self, indices: Sequence[int]) -> list[tuple[int, bytes, bytes]]:
        """Return ``(index, leaf bytes, stored leaf hash)`` of the given entries, in order.

        The lean read of :meth:`read_entry_list`: no kind or subject index rows.
        """
        ...

    def read_entry_list(self, indices: Sequence[int]) -> list[EntryRow]:
        """Return the given entries in the order asked."""
        ...

    def indices_by_subject(self, subject: str) -> list[int]:
        """Return the indices of entries naming ``subject``, ascending."""
        ...

    def indices_by_kind(self, kind: str, *, start: int = 0, limit: int | None = None) -> list[int]:
        """Return the indices of entries of ``kind``, ascending."""
        ...

    def subject_index_buckets(self) -> dict[int, list[str]]:
        """Return the ``subject_ref_text`` of every subject index row, by bucket."""
        ...

    def kind_runs(self) -> list[tuple[str, int, int]]:
        """Return every ``(kind, start, stop)`` run of the kind index, ordered by start."""
        ...

    def iter_subject_index(self) -> Iterator[tuple[str, int]]:
        """Yield every ``(subject, index)`` row of the subject index, ordered by index."""
        ...

    def count_kind_index(self) -> int:
        """Return how many entries the kind index covers in total, counting overlaps twice."""
        ...

    def count_nodes(self) -> int:
        """Return how many interior nodes (level >= 1) are stored."""
        ...

    def outside_changes(self) -> int:
        """Return a counter that changes whenever another connection or process commits.

        The ledger drops its cache of interior tree hashes when it changes, so a rewrite made
        behind this handle's back is always read fresh.
        """
        ...

    def list_checkpoints(self) -> list[StoredCheckpoint]:
        """Return all stored checkpoints, ascending by size."""
        ...

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        """Return the largest stored checkpoint, or ``None``."""
        ...


class BlobStore(Protocol):
    """Content-addressed storage of large payloads, keyed by ``sha256:<hex>`` digests."""

    def put(self, data: bytes) -> str:
        """Store ``data`` durably and return its digest."""
        ...

    def get(self, digest: str) -> bytes:
        """Return the bytes of ``digest`` after checking they still hash to it."""
        ...

    def has(self, digest: str) -> bool:
        """Return whether ``digest`` is stored."""
        ...
