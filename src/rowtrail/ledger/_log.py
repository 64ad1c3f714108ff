"""The append-only Merkle log: batched appends, tree heads, proofs and checkpoints.

Tree state is kept as every perfect-subtree hash (level 0 = leaf hashes), so the root, an
inclusion proof or a consistency proof at any size reads O(log n) stored hashes, also after
reopening: a ragged range ``[start, end)`` is the right fold of the perfect subtrees in the
binary decomposition of its size (RFC 9162 §2.1.1).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from rowtrail.errors import ConsistencyProofError, InvalidInputError, StateError
from rowtrail.ledger._checkpoint import Checkpoint, NoteSigner, NoteVerifier, open_checkpoint
from rowtrail.ledger._events import Event, format_time
from rowtrail.ledger._merkle import (
    EMPTY_ROOT,
    compute_consistency_path,
    compute_inclusion_path,
    extend_tree,
    leaf_hash,
    node_hash,
)
from rowtrail.ledger._proofs import ConsistencyProof, InclusionProof, LedgerEntry, TreeHead
from rowtrail.ledger._store import BlobStore, EntryRow, LedgerStore, StoredCheckpoint

__all__ = ["Ledger", "LedgerBatch"]

Range = tuple[int, int]


def _decompose(start: int, end: int) -> list[tuple[int, int]]:
    """Perfect subtrees ``(level, index)`` covering ``[start, end)``, left to right.

    ``start`` must be aligned as in RFC 9162 ranges (a multiple of the largest power of two not
    above ``end - start``), which holds for every range a proof or root asks for.
    """
    keys = []
    position, remaining = start, end - start
    for level in range(remaining.bit_length() - 1, -1, -1):
        if remaining >> level & 1:
            keys.append((level, position >> level))
            position += 1 << level
    return keys


class Ledger:
    """An append-only, tamper-evident event log (RFC 9162 Merkle tree + C2SP checkpoints).

    Obtain one from a workspace (``rt.open(path).ledger``); the constructor wires a store,
    a blob store and a signer.
    """

    def __init__(
        self,
        store: LedgerStore,
        blobs: BlobStore,
        signer: NoteSigner,
        *,
        origin: str,
        actor: str = "rowtrail",
        now: Callable[[], datetime] | None = None,
        witness: Callable[[str], None] | None = None,
    ) -> None:
        self._store = store
        self.blobs = blobs
        self._signer = signer
        self.origin = origin
        self.actor = actor
        self._now = now or (lambda: datetime.now(UTC))
        self._witness = witness

    # ---------------------------------------------------------------- appends
    @property
    def verifier(self) -> NoteVerifier:
        """The verifier key of this log's checkpoints."""
        return self._signer.verifier

    def make_event(
        self,
        kind: str,
        payload: Mapping[str, Any],
        *,
        actor: str | None = None,
        subjects: Iterable[str] = (),
        blobs: Iterable[str] = (),
        time: datetime | None = None,
    ) -> Event:
        """Build a validated event with this ledger's default actor and clock."""
        return Event(
            kind=kind,
            payload=payload,
            actor=actor or self.actor,
            time=time or self._now(),
            subjects=tuple(subjects),
            blobs=tuple(blobs),
        )

    def append(self, kind: str, payload: Mapping[str, Any], **fields: Any) -> int:
        """Append one event in its own transaction and return its index."""
        return self.append_events([self.make_event(kind, payload, **fields)])[0]

    def append_events(self, events: Sequence[Event]) -> range:
        """Append events in one transaction (all or nothing) and return their indices."""
        for position, event in enumerate(events):
            if not isinstance(event, Event):
                raise InvalidInputError(
                    f"events[{position}] must be a rowtrail.ledger.Event; got {type(event).__name__}"
                )
        if not events:
            size = self.size
            return range(size, size)
        leaves = [event.leaf() for event in events]  # encode before locking: bad input writes nothing
        for event in events:
            for digest in event.blobs:
                if not self.blobs.has(digest):
                    raise InvalidInputError(
                        f"event {event.kind!r} references blob {digest} that is not stored; "
                        "store it first with ledger.put_blob(data)"
                    )
        hashes = [leaf_hash(leaf) for leaf in leaves]
        with self._store.transaction() as tx:
            start = tx.size()
            nodes = extend_tree(start, hashes, tx.read_node)
            rows = [
                EntryRow(start + i, event.kind, leaf, digest, event.subjects)
                for i, (event, leaf, digest) in enumerate(zip(events, leaves, hashes, strict=True))
            ]
            tx.write(rows, [node for node in nodes if node[0] > 0])
        return range(start, start + len(events))

    @contextmanager
    def batch(self, *, max_events: int = 1000) -> Iterator[LedgerBatch]:
        """Buffer appends and commit them in groups of ``max_events`` (group commit).

        Events buffered when the block raises are discarded; committed groups stay.
        """
        writer = LedgerBatch(self, max_events)
        yield writer
        writer.flush()

    def put_blob(self, data: bytes) -> str:
        """Store a large payload durably in the blob store and return its digest."""
        return self.blobs.put(data)

    # ---------------------------------------------------------------- reads
    @property
    def size(self) -> int:
        """Number of committed entries."""
        return self._store.size()

    def _check_size(self, size: int | None, what: str = "size") -> int:
        current = self.size
        if size is None:
            return current
        if not isinstance(size, int) or not 0 <= size <= current:
            raise InvalidInputError(f"{what} must be an int in [0, {current}]; got {size!r}")
        return size

    @staticmethod
    def _fold(values: Sequence[bytes]) -> bytes:
        result = values[-1]
        for value in reversed(values[:-1]):
            result = node_hash(value, result)
        return result

    def _subtree_reader(self, ranges: Sequence[Range]) -> dict[Range, bytes]:
        """Read every perfect subtree the ranges need in one batched call and fold them."""
        plan = [_decompose(start, end) for start, end in ranges]
        flat = [key for keys in plan for key in keys]
        values = self._store.read_nodes(flat)
        result: dict[Range, bytes] = {}
        offset = 0
        for rng, keys in zip(ranges, plan, strict=True):
            result[rng] = self._fold(values[offset : offset + len(keys)])
            offset += len(keys)
        return result

    def root(self, size: int | None = None) -> bytes:
        """Return the Merkle root of the first ``size`` entries (default: all)."""
        size = self._check_size(size)
        if size == 0:
            return EMPTY_ROOT
        return self._subtree_reader([(0, size)])[(0, size)]

    def head(self) -> TreeHead:
        """Return the current tree head (size and root)."""
        size = self.size
        return TreeHead(size, self.root(size))

    def entry(self, index: int) -> LedgerEntry:
        """Return entry ``index`` with its exact leaf bytes and decoded event."""
        return self.entries([index])[0]

    def entries(self, indices: Sequence[int]) -> list[LedgerEntry]:
        """Return several entries in the order asked."""
        size = self.size
        for index in indices:
            if not isinstance(index, int) or not 0 <= index < size:
                raise InvalidInputError(f"index must be an int in [0, {size}); got {index!r}")
        rows = self._store.read_entry_list(list(indices))
        return [LedgerEntry(r.index, r.leaf, r.leaf_hash, Event.from_leaf(r.leaf)) for r in rows]

    def _paths(self, requests: Sequence[tuple[int, int]]) -> list[list[bytes]]:
        wanted: list[Range] = []
        recorder = lambda start, end: wanted.append((start, end)) or b""  # noqa: E731
        for index, size in requests:
            compute_inclusion_path(index, size, recorder)
        values = self._subtree_reader(sorted(set(wanted)))
        return [
            compute_inclusion_path(index, size, lambda a, b: values[(a, b)])
            for index, size in requests
        ]

    def prove(self, index: int, size: int | None = None) -> InclusionProof:
        """Return the inclusion proof of entry ``index`` in the tree of ``size`` entries."""
        return self.prove_many([index], size)[0]

    def prove_many(self, indices: Sequence[int], size: int | None = None) -> list[InclusionProof]:
        """Return inclusion proofs of several entries against one tree head (batched reads)."""
        size = self._check_size(size)
        for index in indices:
            if not isinstance(index, int) or not 0 <= index < size:
                raise InvalidInputError(
                    f"index must be an int in [0, {size}) for a tree of size {size}; got {index!r}"
                )
        if not indices:
            return []
        root = self.root(size)
        leaves = self._store.read_nodes([(0, index) for index in indices])
        paths = self._paths([(index, size) for index in indices])
        return [
            InclusionProof(index, size, leaf, tuple(path), root)
            for index, leaf, path in zip(indices, leaves, paths, strict=True)
        ]

    def consistency(self, old_size: int, new_size: int | None = None) -> ConsistencyProof:
        """Return the consistency proof from ``old_size`` to ``new_size`` (default: current)."""
        new_size = self._check_size(new_size, "new_size")
        old_size = self._check_size(old_size, "old_size")
        if not 0 < old_size <= new_size:
            raise InvalidInputError(
                f"old_size must be in [1, new_size={new_size}]; got {old_size!r}"
            )
        wanted: list[Range] = []
        compute_consistency_path(old_size, new_size, lambda a, b: wanted.append((a, b)) or b"")
        values = self._subtree_reader(sorted(set(wanted) | {(0, old_size), (0, new_size)}))
        path = compute_consistency_path(old_size, new_size, lambda a, b: values[(a, b)])
        return ConsistencyProof(
            old_size, new_size, values[(0, old_size)], values[(0, new_size)], tuple(path)
        )

    def indices(self, *, kind: str | None = None, subject: str | None = None) -> list[int]:
        """Return entry indices by kind and/or subject pseudonym (indexed lookups)."""
        if kind is None and subject is None:
            raise InvalidInputError("indices() needs kind=, subject= or both")
        found: list[int] | None = None
        if subject is not None:
            found = self._store.indices_by_subject(subject)
        if kind is not None:
            by_kind = self._store.indices_by_kind(kind)
            found = by_kind if found is None else sorted(set(found) & set(by_kind))
        return found or []

    def proven_entries(
        self, *, kind: str | None = None, subject: str | None = None
    ) -> list[tuple[LedgerEntry, InclusionProof]]:
        """Return matching entries, each with a verified inclusion proof against the head.

        Records whose proofs fail are never released: the failure raises.
        """
        indices = self.indices(kind=kind, subject=subject)
        entries = self.entries(indices)
        proofs = self.prove_many(indices)
        for entry, proof in zip(entries, proofs, strict=True):
            if leaf_hash(entry.leaf) != proof.leaf_hash:
                raise ConsistencyProofError(f"entry {entry.index} does not hash to its stored leaf")
            proof.verify()
        return list(zip(entries, proofs, strict=True))

    # ---------------------------------------------------------------- checkpoints
    def checkpoints(self) -> list[StoredCheckpoint]:
        """Return every signed checkpoint, ascending by size."""
        return self._store.list_checkpoints()

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        """Return the largest signed checkpoint, or ``None``."""
        stored = self._store.list_checkpoints()
        return stored[-1] if stored else None

    def checkpoint(self) -> Checkpoint:
        """Sign and store a checkpoint of the current head.

        Refuses (raises :class:`ConsistencyProofError`) to sign a head inconsistent with the
        latest checkpoint it signed before, or smaller than it.
        """
        head = self.head()
        if head.size == 0:
            raise StateError("the ledger is empty; append an event before signing a checkpoint")
        previous = self.latest_checkpoint()
        if previous is not None:
            if previous.size > head.size:
                raise ConsistencyProofError(
                    f"log has {head.size} entries but a checkpoint of size {previous.size} "
                    "was signed before: the log was truncated or rolled back"
                )
            signed = self.open_checkpoint(previous.note)
            proof = self.consistency(previous.size, head.size)
            proof.verify()
            if signed.size != previous.size or proof.old_root != signed.root:
                raise ConsistencyProofError(
                    f"stored tree at size {previous.size} no longer matches its checkpoint"
                )
            if previous.size == head.size:
                return signed
        note = self._signer.sign(Checkpoint(self.origin, head.size, head.root).body)
        self._store.save_checkpoint(
            StoredCheckpoint(head.size, head.root, note), created_at=format_time(self._now())
        )
        if self._witness is not None:
            self._witness(note)
        return Checkpoint(self.origin, head.size, head.root, note)

    def open_checkpoint(self, note: str) -> Checkpoint:
        """Verify a note's signature by this log's key and origin, and return its head."""
        return open_checkpoint(note, [self.verifier], origin=self.origin)


class LedgerBatch:
    """Buffers events and appends them in groups (see :meth:`Ledger.batch`)."""

    def __init__(self, ledger: Ledger, max_events: int) -> None:
        if max_events < 1:
            raise InvalidInputError(f"max_events must be >= 1; got {max_events!r}")
        self._ledger = ledger
        self._max = max_events
        self._pending: list[Event] = []
        self.indices: list[int] = []

    def append(self, kind: str, payload: Mapping[str, Any], **fields: Any) -> None:
        """Buffer one event (validated now); commit the group once it is full."""
        self._pending.append(self._ledger.make_event(kind, payload, **fields))
        if len(self._pending) >= self._max:
            self.flush()

    def flush(self) -> None:
        """Commit buffered events in one transaction."""
        if self._pending:
            pending, self._pending = self._pending, []
            self.indices.extend(self._ledger.append_events(pending))
