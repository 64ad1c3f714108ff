"""The append-only Merkle log: batched appends, tree heads, proofs and checkpoints.

Tree state is kept as every perfect-subtree hash (level 0 = leaf hashes), so the root, an
inclusion proof or a consistency proof at any size reads O(log n) stored hashes, also after
reopening: a ragged range ``[start, end)`` is the right fold of the perfect subtrees in the
binary decomposition of its size (RFC 9162 §2.1.1).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from typing import Any

from rowtrail._faults import crashpoint
from rowtrail.errors import (
    CheckpointError,
    ConsistencyProofError,
    InclusionProofError,
    InvalidInputError,
    LogIntegrityError,
    StateError,
    TrustRootError,
)
from rowtrail.ledger._checkpoint import (
    BUCKET_BITS,
    Checkpoint,
    CheckpointRecord,
    NoteSigner,
    NoteVerifier,
    bucket_change,
    bucket_hash,
    digest_of,
    format_checkpoint_body,
    format_record_body,
    open_checkpoint,
    open_record,
    update_digest,
)
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
from rowtrail.ledger._store import (
    BlobStore,
    EntryBatch,
    LedgerStore,
    LedgerTransaction,
    StoredCheckpoint,
)
from rowtrail.ledger._trust import TrustRoot, TrustStore

__all__ = ["Ledger", "LedgerBatch"]

Range = tuple[int, int]
_NODE_CACHE_SIZE = 1 << 16
_ENTRY_CACHE_SIZE = 1 << 16


def subject_index_digest(store: LedgerStore) -> str:
    """Return the digest of a store's subject index (the sum of its bucket hashes)."""
    return digest_of(
        bucket_hash(f"subjects:{bucket}", texts)
        for bucket, texts in store.subject_index_buckets().items()
    )


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
        trust: TrustStore | None = None,
    ) -> None:
        self._store = store
        self.blobs = blobs
        self._signer = signer
        self.origin = origin
        self.actor = actor
        self._now = now or (lambda: datetime.now(UTC))
        self._trust = trust
        # The head last shown trusted, with the (latest note, outside-changes counter) it was
        # shown for: while both are unchanged, the log is the one that was checked.
        self._trusted_cache: tuple[tuple[str, int], TreeHead] | None = None
        self._kind_checked: tuple[int, int] | None = None
        self._entry_cache: dict[int, LedgerEntry] = {}
        # Verified proofs against the trusted head they were made for (dropped with it).
        self._proof_cache: dict[tuple[int, bytes], InclusionProof] = {}
        self._entries_version: int | None = None
        self._subjects_checked: tuple[int, int] | None = None
        self._depth = 0  # open transaction() blocks
        self._pending_note: str | None = None  # trust to advance when the outermost commits
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
        """Append validated, encoded entries in one transaction; return their indices.

        The transaction also signs and stores a checkpoint of the tree it leaves, so no entry
        is ever outside a signed checkpoint; the trust root outside the workspace is moved
        forward once the transaction has committed.
        """
        if not leaves:
            size = self.size
            return range(size, size)
        hashes = leaf_hashes(leaves)
        trusted = self._trust_for_write()
        with self._forgetting_on_error(), self._store.transaction() as tx:
            start = tx.size()
            self._check_trusted_in(tx, trusted, start)
            nodes = extend_tree(start, hashes, tx.read_node, include_leaves=False)
            tx.write(EntryBatch(start, kinds, leaves, hashes, subjects), nodes)
            known = {(level, index): value for level, index, value in nodes}
            known.update(((0, start + i), h) for i, h in enumerate(hashes))
            buckets = {(start + i) >> BUCKET_BITS for i, names in enumerate(subjects) if names}
            stored = self._seal(tx, start, start + len(leaves), known, buckets)
            if self._trust is not None:
                self._trust.stage(self.origin, stored.note)  # seen before it can commit
            crashpoint("ledger.append.before_commit")
        crashpoint("ledger.append.after_commit")
        self._advance_trust(stored.note)
        return range(start, start + len(leaves))

    def _root_in(
        self, tx: LedgerTransaction, size: int, known: Mapping[tuple[int, int], bytes]
    ) -> bytes:
        if size == 0:
            return EMPTY_ROOT
        keys = _decompose(0, size)
        return self._fold([known.get(key) or tx.read_node(*key) for key in keys])

    def _seal(
        self,
        tx: LedgerTransaction,
        start: int,
        size: int,
        known: Mapping[tuple[int, int], bytes],
        buckets: set[int],
    ) -> StoredCheckpoint:
        """Sign a checkpoint of ``size`` entries and its chained record, inside ``tx``.

        ``buckets`` are the subject index buckets the entries from ``start`` added rows to:
        the record's subject digest changes by their hashes after minus before.
        """
        root = self._root_in(tx, size, known)
        previous = tx.latest_checkpoint()
        created_at = format_time(self._now())
        link, refs_before, rows_before = "none", "0" * 64, "0" * 64
        if previous is not None:
            before = open_record(previous.record, [self.verifier])
            link, refs_before, rows_before = before.digest, before.subject_refs, before.cache_rows
        note = self._signer.sign(format_checkpoint_body(self.origin, size, root))
        record = self._signer.sign(
            format_record_body(
                self.origin,
                size,
                root,
                created_at,
                link,
                update_digest(refs_before, self._bucket_changes(tx, start, buckets)),
                update_digest(rows_before, tx.take_projected_changes()),
            )
        )
        stored = StoredCheckpoint(size, root, note, record, created_at)
        tx.save_checkpoint(stored)
        return stored

    @staticmethod
    def _bucket_changes(
        tx: LedgerTransaction, start: int, buckets: set[int]
    ) -> list[tuple[int, int]]:
        # The bucket as read in ``tx`` holds this write's rows already.
        return [
            bucket_change(f"subjects:{bucket}", tx.subject_bucket(bucket), start)
            for bucket in sorted(buckets)
        ]

    # ---------------------------------------------------------------- trust
    def _trust_for_write(self) -> TrustRoot | None:
        """Return the trust root writes must extend (``None`` when the ledger has no store)."""
        if self._trust is None:
            return None
        root = self._trust.root_for(self.origin)
        self._check_pinned(root)
        return root

    def _check_pinned(self, root: TrustRoot) -> None:
        if not hmac.compare_digest(root.verifier.vkey, self.verifier.vkey):
            raise TrustRootError(
                f"the workspace's signing key ({self.verifier.vkey}) is not the key pinned for "
                f"log {self.origin!r} in {root.source} ({root.verifier.vkey}): the key was "
                "replaced. Restore keys/ledger.pem from your backup."
            )

    def _check_trusted_in(
        self, tx: LedgerTransaction, trusted: TrustRoot | None, size: int
    ) -> None:
        """Refuse to extend a log that is behind, or forked from, its trusted checkpoint."""
        if trusted is None or trusted.checkpoint is None:
            return
        checkpoint = trusted.checkpoint
        if checkpoint.size > size:
            raise TrustRootError(
                f"log {self.origin!r} has {size} entries but {trusted.source} holds a signed "
                f"checkpoint of size {checkpoint.size}: the log was truncated or rolled back. "
                "Nothing was written."
            )
        if not hmac.compare_digest(self._root_in(tx, checkpoint.size, {}), checkpoint.root):
            raise TrustRootError(
                f"the stored tree at size {checkpoint.size} differs from the checkpoint in "
                f"{trusted.source}: the log was rewritten or forked. Nothing was written."
            )

    @contextmanager
    def _forgetting_on_error(self) -> Iterator[None]:
        """Drop what this handle cached if a write rolls back (its entries never existed)."""
        try:
            yield
        except BaseException:
            self._entry_cache.clear()
            self._proof_cache.clear()
            self._node_cache.clear()  # nodes read inside the block may be of discarded entries
            self._kind_checked = self._subjects_checked = None
            self._trusted_cache = None
            self._pending_note = None if self._depth == 0 else self._pending_note
            raise

    def _advance_trust(self, note: str) -> None:
        if self._depth:
            self._pending_note = note  # the outermost transaction has not committed yet
        elif self._trust is not None:
            self._trust.advance(self.origin, note)

    @contextmanager
    def transaction(self) -> Iterator[Ledger]:
        """Make every append in the block, and the caller's cache writes, one transaction.

        Yields this ledger; appends inside the block (``append``, ``append_events``,
        ``batch()``) return their indices at once but commit, with the checkpoint they sign,
        only when the block exits cleanly; an exception discards all of them.
        """
        with self._forgetting_on_error(), self._store.transaction():
            self._depth += 1
            try:
                yield self
            finally:
                self._depth -= 1
        if self._depth == 0 and self._pending_note is not None:
            note, self._pending_note = self._pending_note, None
            self._advance_trust(note)

    def pin_trust(self) -> Checkpoint | None:
        """Trust this log's current state: pin its key and its latest signed checkpoint.

        For the log's creator (the workspace does it on creation) and for a user who chooses
        to trust a workspace they received; raises if another key is pinned already.
        """
        if self._trust is None:
            raise StateError("this ledger has no trust store")
        latest = self.latest_checkpoint()
        checkpoint = None
        if latest is not None:
            checkpoint = self.open_checkpoint(latest.note)
            self._check_extends(latest.note, self.head())
        note = None if latest is None else latest.note
        self._trust.pin(self.origin, self.verifier.vkey, note=note)
        return checkpoint

    def trust_root(self) -> TrustRoot:
        """Return what this log is checked against; raise :class:`TrustRootError` if nothing."""
        if self._trust is None:
            raise TrustRootError(f"no trust root is configured for log {self.origin!r}")
        return self._trust.root_for(self.origin)

    def trusted_head(self) -> TreeHead:
        """Return the latest signed checkpoint, checked against the trust root.

        The checkpoint's signature must verify with the pinned key (not merely the key in the
        workspace), the trusted checkpoint kept outside the workspace must be one of the log's
        own states (a consistency proof from it to this one), and the stored tree must have
        this root at this size. Proofs released by answers are made against this head.

        Raises
        ------
        TrustRootError, CheckpointError, ConsistencyProofError
            When any of that fails; answers must not be given then.
        """
        latest = self.latest_checkpoint()
        # Once a head is shown trusted, it stays so while the log is unchanged: the trust root
        # exists to catch the log changing (rolled back, forked), so it is read again, and the
        # checks redone, whenever this or another connection has written since.
        version = self._store.outside_changes()
        cached = self._trusted_cache
        if cached is not None and latest is not None and cached[0] == (latest.note, version):
            return cached[1]
        root = self.trust_root()
        self._check_pinned(root)
        if latest is None:
            if root.checkpoint is not None:
                raise TrustRootError(
                    f"log {self.origin!r} stores no checkpoint but {root.source} holds one of "
                    f"size {root.checkpoint.size}: its checkpoints were removed"
                )
            return TreeHead(0, EMPTY_ROOT)
        signed = open_checkpoint(latest.note, [root.verifier], origin=self.origin)
        if signed.size != latest.size or not hmac.compare_digest(signed.root, latest.root):
            raise CheckpointError(
                f"stored checkpoint row of size {latest.size} disagrees with its note"
            )
        size = self.size
        if signed.size > size:
            raise CheckpointError(
                f"a checkpoint of size {signed.size} was signed but the log holds {size} "
                "entries: it was truncated or rolled back"
            )
        old = root.checkpoint
        if old is not None and old.size > signed.size and self._overtaken(old, signed):
            # This reader's snapshot is older than the trusted state, and the log as committed
            # now extends both: the snapshot's own tree is checked against its head below.
            old = None
        if old is not None:
            if old.size > signed.size:
                raise TrustRootError(
                    f"log {self.origin!r} holds signed checkpoints up to size {signed.size} but "
                    f"{root.source} holds one of size {old.size}: the log was "
                    "truncated or rolled back (an older state was replayed)"
                )
            proof = self.consistency(old.size, signed.size) if old.size else None
            if proof is not None:
                proof.verify()
                if not (
                    hmac.compare_digest(proof.old_root, old.root)
                    and hmac.compare_digest(proof.new_root, signed.root)
                ):
                    raise TrustRootError(
                        f"log {self.origin!r} is not an extension of the checkpoint of size "
                        f"{old.size} in {root.source}: it was rewritten or forked"
                    )
        elif not hmac.compare_digest(self.root(signed.size), signed.root):
            raise CheckpointError(
                f"stored tree at size {signed.size} no longer matches its signed checkpoint"
            )
        head = TreeHead(signed.size, signed.root)
        self._trusted_cache = ((latest.note, version), head)
        return head

    def _overtaken(self, trusted: Checkpoint, seen: Checkpoint) -> bool:
        """Whether a newer committed state explains a trust root ahead of this reader's view.

        A writer advances the trust root after it commits, so a reader holding an older
        snapshot can find the trust root ahead of the checkpoints it sees. That is not a
        rollback if the log as committed now (read on a second connection) holds a signed
        checkpoint at least as large as the trusted one that extends both it and the
        checkpoint this reader sees (consistency proofs). A log really rolled back shows the
        older state on every connection.
        """
        with self._store.fresh_view() as store:
            now = Ledger(store, self.blobs, self._signer, origin=self.origin)
            latest = now.latest_checkpoint()
            if latest is None:
                return False
            current = open_checkpoint(latest.note, [self.trust_root().verifier], origin=self.origin)
            if current.size < trusted.size or now.size < current.size:
                return False
            for old in (trusted, seen):
                if old.size == 0:
                    continue
                proof = now.consistency(old.size, current.size)
                proof.verify()
                if not (
                    hmac.compare_digest(proof.old_root, old.root)
                    and hmac.compare_digest(proof.new_root, current.root)
                ):
                    return False
        return True

    def signed_record(self, verifier: NoteVerifier | None = None) -> CheckpointRecord | None:
        """Return the record of the latest checkpoint, its signature checked with the pinned key.

        Its ``subject_refs`` and ``cache_rows`` are what the unsigned indexes and cache tables
        must hash to at that size.
        """
        latest = self.latest_checkpoint()
        if latest is None:
            return None
        if latest.size != self.size:
            raise CheckpointError(
                f"entries from index {latest.size} are not covered by a signed checkpoint"
            )
        return open_record(latest.record, [verifier or self.trust_root().verifier])

    def prove_signed(self, indices: Sequence[int]) -> tuple[TreeHead, list[InclusionProof]]:
        """Return inclusion proofs of entries against the trusted signed head, each verified.

        Raises
        ------
        InvalidInputError
            An index outside the signed log.
        VerificationError
            The head is not trusted (see :meth:`trusted_head`) or a proof fails.
        """
        head = self.trusted_head()
        checked = self._check_indices(indices, head.size)
        cache = self._proof_cache
        if cache and next(iter(cache))[1] != head.root:
            cache.clear()  # proofs are kept for one signed head at a time
        missing = [i for i in dict.fromkeys(checked) if (i, head.root) not in cache]
        for proof in self.prove_many(missing, head.size, root=head.root) if missing else []:
            if not hmac.compare_digest(proof.root, head.root):
                raise InclusionProofError(
                    f"proof of entry {proof.index} gives root {proof.root.hex()}, the signed "
                    f"checkpoint says {head.root.hex()}"
                )
            proof.verify()
            if len(cache) >= _NODE_CACHE_SIZE:
                cache.clear()
            cache[(proof.index, head.root)] = proof
        return head, [cache[(i, head.root)] for i in checked]

    def snapshot(self) -> AbstractContextManager[None]:
        """Make every read of the block see one committed state (one answer, one state).

        Other processes keep appending meanwhile, unseen; the log's size and change counter
        are read once for the block.
        """
        return self._store.snapshot()

    def proven(self, indices: Sequence[int]) -> list[LedgerEntry]:
        """Return entries whose inclusion in the trusted signed head is proven and verified.

        What an answer may rely on without a full verification: each entry's bytes hash to
        the leaf its inclusion proof (against the signed checkpoint) starts from. Proofs and
        checked entries are cached, so the answer's own proofs of the same entries are free.
        """
        found = self.entries(indices)
        _, proofs = self.prove_signed([entry.index for entry in found])
        for entry, proof in zip(found, proofs, strict=True):
            if not hmac.compare_digest(entry.leaf_hash, proof.leaf_hash):
                raise InclusionProofError(
                    f"entry {entry.index} is not the leaf its proof is for; run `rowtrail verify`"
                )
        return found

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

    def now(self) -> datetime:
        """Return the ledger's clock (injected with ``now=``): the time events are stamped."""
        return self._now()

    # ---------------------------------------------------------------- reads
    @property
    def size(self) -> int:
        """Number of committed entries."""
        return self._store.size()

    def _check_size(self, size: object, what: str = "size") -> int:
        current = self.size
        if size is None:
            return current
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= current:
            raise InvalidInputError(f"{what} must be an int in [0, {current}]; got {size!r}")
        return size

    @staticmethod
    def _check_indices(indices: Sequence[object], size: int) -> list[int]:
        checked = []
        for index in indices:
            if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < size:
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
        """Return several entries in the order asked.

        Each entry's leaf bytes must hash to the stored leaf hash that proofs are built from,
        so an entry edited in place is never returned as if its proof covered it. Checked and
        decoded entries are kept while no other connection commits (an edit behind this
        handle's back empties the cache).
        """
        checked = self._check_indices(indices, self.size)
        version = self._store.outside_changes()
        if version != self._entries_version:
            self._entry_cache.clear()
            self._entries_version = version
        cache = self._entry_cache
        missing = [i for i in dict.fromkeys(checked) if i not in cache]
        if missing:
            if len(cache) + len(missing) > _ENTRY_CACHE_SIZE:
                cache.clear()
            for index, leaf, stored in self._store.read_leaves(missing):
                if not hmac.compare_digest(leaf_hash(leaf), stored):
                    raise LogIntegrityError(
                        f"entry {index}: leaf bytes do not hash to the stored leaf hash; "
                        "run `rowtrail verify`",
                        index=index,
                    )
                cache[index] = LedgerEntry(index, leaf, stored, self._decode(index, leaf))
        return [cache[i] for i in checked]

    def prove(self, index: int, size: int | None = None) -> InclusionProof:
        """Return the inclusion proof of entry ``index`` in the tree of ``size`` entries."""
        return self.prove_many([index], size)[0]

    def prove_many(
        self, indices: Sequence[int], size: int | None = None, *, root: bytes | None = None
    ) -> list[InclusionProof]:
        """Return inclusion proofs of several entries against one tree head (batched reads).

        ``root``: the head's root when the caller holds it (a signed checkpoint's), so the
        stored tree's root is not read; each proof then must be verified against it.
        """
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
        wanted = {r for plan in plans for r in plan} | ({(0, size)} if root is None else set())
        wanted |= {(index, index + 1) for index in checked}
        values = self._subtree_reader(sorted(wanted))
        if root is not None:
            values[(0, size)] = root
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
        with self._store.snapshot():  # each index read in the state it was checked in
            if subject is not None:
                self._check_subject_index()
                found = self._store.indices_by_subject(subject)
            if kind is not None:
                self._check_kind_index()
                by_kind = self._store.indices_by_kind(kind)
                found = by_kind if found is None else sorted(set(found) & set(by_kind))
        return found or []

    def entries_of_kind(self, kind: str) -> list[LedgerEntry]:
        """Return every entry of ``kind``, each checked to really be of that kind.

        With :meth:`indices`' check that the kind runs tile the log and each run starts with
        an entry of its kind, an entry can neither be added to nor hidden from the answer by
        editing the (unsigned) kind index: a merged or relabelled run puts an entry of another
        kind into some kind's answer, and reading it raises.
        """
        found = self.entries(self.indices(kind=kind))
        for entry in found:
            if entry.event.kind != kind:
                raise LogIntegrityError(
                    f"kind index lists entry {entry.index} as {kind!r} but it is "
                    f"{entry.event.kind!r}: the index was edited; run `rowtrail verify`",
                    index=entry.index,
                )
        return found

    def _check_subject_index(self) -> None:
        """Check the subject index against the multiset hash the latest checkpoint signed.

        One pass over the index rows (no event decoded), when another connection has committed
        since the last check or the log grew; a row removed, added or re-pointed raises.
        """
        with self._store.snapshot():  # the size, the record and the index of one state
            self._check_subject_rows()

    def _check_subject_rows(self) -> None:
        key = (self._store.outside_changes(), self.size)
        if self._subjects_checked == key:
            return
        record = self.signed_record()
        signed = "0" * 64 if record is None else record.subject_refs
        actual = subject_index_digest(self._store)
        if not hmac.compare_digest(actual, signed):
            raise LogIntegrityError(
                "the subject index differs from what the latest checkpoint signed: rows were "
                "removed, added or re-pointed; run `rowtrail verify`",
                index=key[1],
            )
        self._subjects_checked = key

    def _check_kind_index(self) -> None:
        """Check the kind runs tile ``[0, size)`` and each run starts with an entry of its kind.

        O(number of runs): done when another connection has committed since the last check,
        or the log grew.
        """
        with self._store.snapshot():  # the size and the runs of one committed state
            self._check_kind_runs()

    def _check_kind_runs(self) -> None:
        key = (self._store.outside_changes(), self.size)
        if self._kind_checked == key:
            return
        runs = self._store.kind_runs()
        position = 0
        for _, start, stop in runs:
            if start != position or stop <= start:
                raise LogIntegrityError(
                    f"kind index: entries from {min(position, start)} are covered by no run or "
                    "by two: the index was edited; run `rowtrail verify`",
                    index=min(position, start),
                )
            position = stop
        if position != key[1]:
            raise LogIntegrityError(
                f"kind index covers {position} entries but the log holds {key[1]}",
                index=min(position, key[1]),
            )
        firsts = self._store.read_entry_list([start for _, start, _ in runs]) if runs else []
        for (kind, start, _), row in zip(runs, firsts, strict=True):
            if self._decode(start, row.leaf).kind != kind:
                raise LogIntegrityError(
                    f"kind index labels entries from {start} as {kind!r}, which entry {start} is "
                    "not: the index was edited; run `rowtrail verify`",
                    index=start,
                )
        self._kind_checked = key

    def proven_entries(
        self, *, kind: str | None = None, subject: str | None = None
    ) -> list[tuple[LedgerEntry, InclusionProof]]:
        """Return matching entries, each with a verified inclusion proof against the head.

        The head is first shown consistent with the latest signed checkpoint (stored and
        witnessed), so entries it covers are proven against a signed root. Records whose
        proofs fail are never released: the failure raises a
        :class:`~rowtrail.errors.VerificationError`.
        """
        with self._store.snapshot():  # the head and the index reads see one committed state
            head = self.trusted_head()
            indices = [i for i in self.indices(kind=kind, subject=subject) if i < head.size]
            rows = self._store.read_leaves(indices)
        head_after, proofs = self.prove_signed(indices)
        if head_after.size < head.size:
            raise ConsistencyProofError("the signed head went backwards during the query")
        released = []
        for (index, leaf, _), proof in zip(rows, proofs, strict=True):
            if not hmac.compare_digest(leaf_hash(leaf), proof.leaf_hash):
                raise InclusionProofError(f"entry {index} is not the leaf its proof is for")
            event = self._decode(index, leaf)
            # The indexes are not signed: an entry they return must really match the query.
            if (kind is not None and event.kind != kind) or (
                subject is not None and subject not in event.subjects
            ):
                raise LogIntegrityError(
                    f"index returned entry {index}, which does not match the query",
                    index=index,
                )
            released.append((LedgerEntry(index, leaf, proof.leaf_hash, event), proof))
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
        return self._store.latest_checkpoint()

    def checkpoint(self) -> Checkpoint:
        """Return the signed checkpoint of the current head, checked against the trust root.

        Every append already signs a checkpoint in its own transaction; this checks that the
        latest one is trusted (see :meth:`trusted_head`), moves the trust root forward to it,
        and returns it. A log that was rolled back or forked is refused
        (:class:`~rowtrail.errors.TrustRootError`): nothing is signed over it.
        """
        with self._store.snapshot():  # head, checkpoint and size of one committed state
            head = self.trusted_head()
            latest = self.latest_checkpoint()
            size = self.size
        if head.size == 0:
            raise StateError("the ledger is empty; append an event before signing a checkpoint")
        if latest is None or latest.size != head.size or size != head.size:
            raise CheckpointError(
                f"entries from index {head.size} are not covered by a signed checkpoint"
            )
        self._advance_trust(latest.note)
        return self.open_checkpoint(latest.note)

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
