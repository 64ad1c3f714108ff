"""The append-only Merkle log: batched appends, tree heads, proofs and checkpoints.

Tree state is kept as every perfect-subtree hash (level 0 = leaf hashes), so the root, an
inclusion proof or a consistency proof at any size reads O(log n) stored hashes, also after
reopening: a ragged range ``[start, end)`` is the right fold of the perfect subtrees in the
binary decomposition of its size (RFC 9162 §2.1.1).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from rowtrail.errors import (
    ConsistencyProofError,
    InclusionProofError,
    InvalidInputError,
    LogIntegrityError,
    StateError,
)
from rowtrail.ledger._checkpoint import Checkpoint, NoteSigner, NoteVerifier, open_checkpoint
from rowtrail.ledger._events import BatchLeafEncoder, Event, format_time
from rowtrail.ledger._merkle import (
    EMPTY_ROOT,
    compute_consistency_path,
    compute_inclusion_path,
    extend_tree,
    leaf_hash,
    leaf_hashes,
    node_hash,
)
from rowtrail.ledger._proofs import ConsistencyProof, InclusionProof, LedgerEntry, TreeHead
from rowtrail.ledger._store import BlobStore, EntryBatch, LedgerStore, StoredCheckpoint

__all__ = ["Ledger", "LedgerBatch"]

Range = tuple[int, int]
_NODE_CACHE_SIZE = 1 << 16


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
        witnessed: Callable[[], str | None] | None = None,
    ) -> None:
        self._store = store
        self.blobs = blobs
        self._signer = signer
        self.origin = origin
        self.actor = actor
        self._now = now or (lambda: datetime.now(UTC))
        self._witness = witness
        self._witnessed = witnessed
        # Interior perfect-subtree hashes never change once written, so proofs may reuse them;
        # the cache is dropped whenever another connection commits (a rewrite behind this
        # handle's back is read fresh), leaf hashes are always read fresh, and full
        # verification reads raw storage only.
        self._node_cache: dict[tuple[int, int], bytes] = {}
        self._cache_version: int | None = None

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
            actor=self.actor if actor is None else actor,  # "" is bad input, not "default"
            time=self._now() if time is None else time,
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
                    f"events[{position}] must be a rowtrail.ledger.Event; "
                    f"got {type(event).__name__}"
                )
        # Encode before locking: bad input writes nothing.
        leaves = [event.leaf() for event in events]
        self._check_blobs(digest for event in events for digest in event.blobs)
        return self._append_leaves(
            [event.kind for event in events], leaves, [event.subjects for event in events]
        )

    def _check_blobs(self, digests: Iterable[str]) -> None:
        for digest in set(digests):
            if not self.blobs.has(digest):
                raise InvalidInputError(
                    f"an event references blob {digest} that is not stored; "
                    "store it first with ledger.put_blob(data)"
                )

    def _append_leaves(
        self, kinds: list[str], leaves: list[bytes], subjects: list[tuple[str, ...]]
    ) -> range:
        """Append validated, encoded entries in one transaction; return their indices."""
        if not leaves:
            size = self.size
            return range(size, size)
        hashes = leaf_hashes(leaves)
        with self._store.transaction() as tx:
            start = tx.size()
            nodes = extend_tree(start, hashes, tx.read_node, include_leaves=False)
            tx.write(EntryBatch(start, kinds, leaves, hashes, subjects), nodes)
        return range(start, start + len(leaves))

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

    def _check_size(self, size: object, what: str = "size") -> int:
        current = self.size
        if size is None:
            return current
        if not isinstance(size, int) or not 0 <= size <= current:
            raise InvalidInputError(f"{what} must be an int in [0, {current}]; got {size!r}")
        return size

    @staticmethod
    def _check_indices(indices: Sequence[object], size: int) -> list[int]:
        checked = []
        for index in indices:
            if not isinstance(index, int) or not 0 <= index < size:
                raise InvalidInputError(
                    f"index must be an int in [0, {size}) for a log of size {size}; got {index!r}"
                )
            checked.append(index)
        return checked

    @staticmethod
    def _fold(values: Sequence[bytes]) -> bytes:
        result = values[-1]
        for value in reversed(values[:-1]):
            result = node_hash(value, result)
        return result

    def _subtree_reader(self, ranges: Sequence[Range]) -> dict[Range, bytes]:
        """Read every perfect subtree the ranges need in one batched call and fold them."""
        # Most ranges of a proof are one aligned perfect subtree: a single stored node.
        perfect: dict[Range, tuple[int, int]] = {}
        ragged: dict[Range, list[tuple[int, int]]] = {}
        for start, end in ranges:
            size = end - start
            if size & (size - 1) == 0 and start % size == 0:
                level = size.bit_length() - 1
                perfect[(start, end)] = (level, start >> level)
            else:
                ragged[(start, end)] = _decompose(start, end)
        flat = list(perfect.values()) + [key for keys in ragged.values() for key in keys]
        values = self._read_nodes(flat)
        result = dict(zip(perfect, values, strict=False))
        offset = len(perfect)
        for rng, keys in ragged.items():
            result[rng] = self._fold(values[offset : offset + len(keys)])
            offset += len(keys)
        return result

    def _read_nodes(self, keys: list[tuple[int, int]]) -> list[bytes]:
        version = self._store.outside_changes()
        if version != self._cache_version:
            self._node_cache.clear()
            self._cache_version = version
        cache = self._node_cache
        missing = [key for key in dict.fromkeys(keys) if key not in cache]
        fetched = (
            dict(zip(missing, self._store.read_nodes(missing), strict=True)) if missing else {}
        )
        if len(cache) + len(fetched) > _NODE_CACHE_SIZE:
            cache.clear()
        cache.update((key, value) for key, value in fetched.items() if key[0] > 0)
        return [cache[key] if key in cache else fetched[key] for key in keys]

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
        rows = self._store.read_entry_list(self._check_indices(indices, self.size))
        return [LedgerEntry(r.index, r.leaf, r.leaf_hash, Event.from_leaf(r.leaf)) for r in rows]

    def prove(self, index: int, size: int | None = None) -> InclusionProof:
        """Return the inclusion proof of entry ``index`` in the tree of ``size`` entries."""
        return self.prove_many([index], size)[0]

    def prove_many(self, indices: Sequence[int], size: int | None = None) -> list[InclusionProof]:
        """Return inclusion proofs of several entries against one tree head (batched reads)."""
        size = self._check_size(size)
        checked = self._check_indices(indices, size)
        if not checked:
            return []
        # One batched read: the root, each leaf hash and every subtree any path needs.
        # One pass records the ranges each path needs (in the order RFC 9162 lists them).
        plans: list[list[Range]] = []
        for index in checked:
            recorder = _RangeRecorder()
            compute_inclusion_path(index, size, recorder)
            plans.append(recorder.order[::-1])
        wanted = {r for plan in plans for r in plan} | {(0, size)}
        wanted |= {(index, index + 1) for index in checked}
        values = self._subtree_reader(sorted(wanted))
        return [
            InclusionProof(
                index,
                size,
                values[(index, index + 1)],
                tuple(values[r] for r in plan),
                values[(0, size)],
            )
            for index, plan in zip(checked, plans, strict=True)
        ]

    def consistency(self, old_size: int, new_size: int | None = None) -> ConsistencyProof:
        """Return the consistency proof from ``old_size`` to ``new_size`` (default: current)."""
        new_size = self._check_size(new_size, "new_size")
        old_size = self._check_size(old_size, "old_size")
        if not 0 < old_size <= new_size:
            raise InvalidInputError(
                f"old_size must be in [1, new_size={new_size}]; got {old_size!r}"
            )
        recorder = _RangeRecorder()
        compute_consistency_path(old_size, new_size, recorder)
        values = self._subtree_reader(sorted(recorder.ranges | {(0, old_size), (0, new_size)}))
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

        The head is first shown consistent with the latest signed checkpoint (stored and
        witnessed), so entries it covers are proven against a signed root. Records whose
        proofs fail are never released: the failure raises a
        :class:`~rowtrail.errors.VerificationError`.
        """
        head = self._signed_head()
        indices = self.indices(kind=kind, subject=subject)
        rows = self._store.read_entry_list(self._check_indices(indices, head.size))
        proofs = self.prove_many(indices, head.size)
        released = []
        for row, proof in zip(rows, proofs, strict=True):
            if proof.root != head.root or not hmac.compare_digest(
                leaf_hash(row.leaf), proof.leaf_hash
            ):
                raise InclusionProofError(f"entry {row.index} is not the leaf its proof is for")
            proof.verify()
            event = self._decode(row.index, row.leaf)
            # The indexes are not signed: an entry they return must really match the query.
            if (kind is not None and event.kind != kind) or (
                subject is not None and subject not in event.subjects
            ):
                raise LogIntegrityError(
                    f"index returned entry {row.index}, which does not match the query",
                    index=row.index,
                )
            released.append((LedgerEntry(row.index, row.leaf, proof.leaf_hash, event), proof))
        return released

    @staticmethod
    def _decode(index: int, leaf: bytes) -> Event:
        try:
            return Event.from_leaf(leaf)
        except InvalidInputError as exc:
            raise LogIntegrityError(
                f"entry {index} is not a canonical event: {exc}", index=index
            ) from exc

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

        Refuses (raises :class:`ConsistencyProofError`) to sign a head that is smaller than, or
        inconsistent with, the latest checkpoint it signed before, whether that one is stored in
        the database or held by the witness outside it (so a replayed older database cannot be
        made to sign a fork).
        """
        previous = self.latest_checkpoint()
        head = self._signed_head(previous)
        if head.size == 0:
            raise StateError("the ledger is empty; append an event before signing a checkpoint")
        if previous is not None and previous.size == head.size:
            return self.open_checkpoint(previous.note)
        note = self._signer.sign(Checkpoint(self.origin, head.size, head.root).body)
        self._store.save_checkpoint(
            StoredCheckpoint(head.size, head.root, note), created_at=format_time(self._now())
        )
        if self._witness is not None:
            self._witness(note)
        return Checkpoint(self.origin, head.size, head.root, note)

    def _signed_head(self, previous: StoredCheckpoint | None = None) -> TreeHead:
        """Return the current head after checking it extends every checkpoint signed before.

        The checkpoints are read before the head: other processes may append and sign at any
        moment, and the log only grows, so a head read afterwards is never behind them.
        """
        notes = [previous.note] if previous is not None else []
        if previous is None and (latest := self.latest_checkpoint()) is not None:
            notes.append(latest.note)
        witnessed = self._witnessed() if self._witnessed is not None else None
        if witnessed is not None:
            notes.append(witnessed)
        head = self.head()
        for note in notes:
            self._check_extends(note, head)
        return head

    def _check_extends(self, note: str, head: TreeHead) -> Checkpoint:
        """Raise unless ``head`` extends the signed checkpoint ``note``; return that checkpoint."""
        signed = self.open_checkpoint(note)
        if signed.size > head.size:
            raise ConsistencyProofError(
                f"log has {head.size} entries but a checkpoint of size {signed.size} "
                "was signed before: the log was truncated or rolled back"
            )
        proof = self.consistency(signed.size, head.size)
        proof.verify()
        if proof.old_root != signed.root or proof.new_root != head.root:
            raise ConsistencyProofError(
                f"stored tree at size {signed.size} no longer matches its signed checkpoint"
            )
        return signed

    def open_checkpoint(self, note: str) -> Checkpoint:
        """Verify a note's signature by this log's key and origin, and return its head."""
        return open_checkpoint(note, [self.verifier], origin=self.origin)


class _RangeRecorder:
    """A ``subtree_hash`` stand-in that records which ranges a proof needs (first pass)."""

    def __init__(self) -> None:
        self.order: list[Range] = []

    @property
    def ranges(self) -> set[Range]:
        """The distinct ranges asked for."""
        return set(self.order)

    def __call__(self, start: int, end: int) -> bytes:
        self.order.append((start, end))
        return b""


class LedgerBatch:
    """Buffers events and appends them in groups (see :meth:`Ledger.batch`).

    Each event is validated and encoded when it is appended, so bad input raises at the call
    that supplied it and is never buffered.
    """

    def __init__(self, ledger: Ledger, max_events: object) -> None:
        if not isinstance(max_events, int) or max_events < 1:
            raise InvalidInputError(f"max_events must be an int >= 1; got {max_events!r}")
        self._ledger = ledger
        self._max = max_events
        self._now = ledger._now  # the batch is part of the ledger
        self._encode = BatchLeafEncoder(ledger.actor)  # validates the default actor now
        self._kinds: list[str] = []
        self._leaves: list[bytes] = []
        self._subjects: list[tuple[str, ...]] = []
        self._blobs: set[str] = set()
        self.indices: list[int] = []

    def append(self, kind: str, payload: Mapping[str, Any], **fields: Any) -> None:
        """Buffer one event (validated now); commit the group once it is full."""
        if fields:
            event = self._ledger.make_event(kind, payload, **fields)
            self._ledger._check_blobs(event.blobs)  # fail at the call that named the blob
            self._leaves.append(event.leaf())
            self._subjects.append(event.subjects)
            self._blobs.update(event.blobs)
        else:  # the hot path: no Event object, same checks and bytes
            self._leaves.append(self._encode(kind, payload, self._now()))
            self._subjects.append(())
        self._kinds.append(kind)
        if len(self._leaves) >= self._max:
            self.flush()

    def flush(self) -> None:
        """Commit buffered events in one transaction."""
        if not self._leaves:
            return
        kinds, leaves, subjects, blobs = self._kinds, self._leaves, self._subjects, self._blobs
        self._kinds, self._leaves, self._subjects, self._blobs = [], [], [], set()
        self._ledger._check_blobs(blobs)
        self.indices.extend(self._ledger._append_leaves(kinds, leaves, subjects))
