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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from rowtrail.errors import (
    BlobNotFoundError,
    CheckpointError,
    LogIntegrityError,
    RowtrailError,
    TrustRootError,
    VerificationError,
)
from rowtrail.ledger._checkpoint import open_checkpoint, open_record
from rowtrail.ledger._events import Event
from rowtrail.ledger._log import Ledger, subject_index_digest
from rowtrail.ledger._merkle import extend_tree, leaf_hash
from rowtrail.ledger._store import EntryRow
from rowtrail.ledger._trust import TrustRoot

__all__ = ["VerifyReport", "verify_log"]

_REDACTED = "erasure.redacted"
_EXPIRED = "retention.expired"


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What a successful full verification covered."""

    size: int
    root: bytes
    n_nodes: int
    n_blobs: int
    n_checkpoints: int
    witnessed_size: int | None
    trust_source: str = ""
    counts: Mapping[str, int] = field(default_factory=dict)

    def with_counts(self, counts: Mapping[str, int]) -> VerifyReport:
        """Return this report with more checked-item counts (cache rows, files, ...)."""
        return replace(self, counts={**self.counts, **counts})

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
            "trust_root": self.trust_source,
            **dict(self.counts),
        }


def _check_entries(
    ledger: Ledger,
    size: int,
    batch: int,
    progress: Callable[[int], None] | None,
    visit: Callable[[int, Event], None] | None = None,
) -> tuple[int, int]:
    store = ledger._store  # verification reads raw storage on purpose
    frontier: dict[tuple[int, int], bytes] = {}
    subjects_index = _subject_index(ledger)
    n_nodes = 0
    blobs_seen: set[str] = set()
    # A blob an event names may be missing only if a later ``erasure.redacted`` event says it
    # replaced it (a redacted per-sample signal, DESIGN §6), or a later ``retention.expired``
    # event says its retention ran out and names it (the leaf and its proofs stay); checked
    # once every entry is.
    missing_blobs: dict[str, int] = {}
    replaced: dict[str, int] = {}
    for start in range(0, size, batch):
        stop = min(size, start + batch)
        rows = store.read_entries(start, stop)
        hashes: list[bytes] = []
        failure: LogIntegrityError | None = None
        try:
            for expected, row in enumerate(rows, start):
                if row.index != expected:
                    raise LogIntegrityError(f"entry {expected} is missing", index=expected)
                event = _check_entry(
                    ledger, row, subjects_index.pop(row.index, ()), blobs_seen, missing_blobs
                )
                replaces = event.payload.get("replaces")
                if event.kind == _REDACTED and isinstance(replaces, str):
                    replaced.setdefault(replaces, row.index)
                if event.kind == _EXPIRED:
                    for digest in _expired_blobs(event):
                        replaced.setdefault(digest, row.index)
                if visit is not None:
                    visit(row.index, event)
                hashes.append(row.leaf_hash)
            if len(rows) != stop - start:
                missing = start + len(rows)
                raise LogIntegrityError(f"entry {missing} is missing", index=missing)
        except LogIntegrityError as exc:
            failure = exc
        # Tree nodes over the entries before a bad one may reveal an earlier bad index
        # (a reordered or replaced entry keeps its own hash but breaks the nodes above it).
        nodes = _check_nodes(ledger, start, hashes, frontier)
        if failure is not None:
            raise failure
        n_nodes += sum(1 for node in nodes if node[0] > 0)
        for level, index, value in nodes:
            frontier[(level, index)] = value  # keep only what later appends can pair with
        frontier = _trim_frontier(frontier, stop)
        if progress is not None:
            progress(len(rows))
    if subjects_index:
        index = min(subjects_index)
        raise LogIntegrityError(
            f"subject index names entry {index}, which does not exist", index=index
        )
    _check_counts(ledger, size, n_nodes)
    for digest, index in sorted(missing_blobs.items(), key=lambda item: item[1]):
        if replaced.get(digest, -1) <= index:
            raise LogIntegrityError(f"entry {index}: blob {digest} is missing", index=index)
    return n_nodes, len(blobs_seen)


def _expired_blobs(event: Event) -> list[str]:
    """Return the blob digests a ``retention.expired`` event says were deleted."""
    found = event.payload.get("blobs")
    if not isinstance(found, list):
        return []
    return [digest for digest in found if isinstance(digest, str)]


def _check_nodes(
    ledger: Ledger, start: int, hashes: list[bytes], frontier: dict[tuple[int, int], bytes]
) -> list[tuple[int, int, bytes]]:
    """Recompute the nodes completed by ``hashes`` and compare them with the stored ones.

    Raises naming the first leaf index of the earliest node that is missing or differs and is
    not explained by a differing child.
    """
    nodes = extend_tree(start, hashes, lambda level, index: frontier[(level, index)])
    interior = [node for node in nodes if node[0] > 0]
    keys = [(level, index) for level, index, _ in interior]
    try:
        stored = ledger._store.read_nodes(keys)
    except RowtrailError:
        stored = [_read_node_or_empty(ledger, key) for key in keys]
    bad = {
        (level, index)
        for (level, index, value), found in zip(interior, stored, strict=True)
        if not hmac.compare_digest(value, found)
    }
    # A forged leaf makes every node above it differ; the lowest such node locates it best,
    # so a node whose child also differs is explained by that child and not reported.
    unexplained = [
        (index << level, level, index)
        for level, index in bad
        if (level - 1, 2 * index) not in bad and (level - 1, 2 * index + 1) not in bad
    ]
    if unexplained:
        first, level, index = min(unexplained)
        raise LogIntegrityError(
            f"stored tree node (level {level}, index {index}) is missing or disagrees with "
            f"the entries from index {first}",
            index=first,
        )
    return nodes


def _read_node_or_empty(ledger: Ledger, key: tuple[int, int]) -> bytes:
    try:
        return ledger._store.read_nodes([key])[0]
    except RowtrailError:
        return b""


def _check_counts(ledger: Ledger, size: int, n_nodes: int) -> None:
    """Every entry was checked against its index rows; now no index row may be left over."""
    store = ledger._store
    try:
        stored_nodes, kind_cover = store.count_nodes(), store.count_kind_index()
    except RowtrailError as exc:
        raise LogIntegrityError(
            f"stored tree or kind index is malformed: {exc}", index=size
        ) from exc
    if stored_nodes != n_nodes:
        raise LogIntegrityError(
            f"{stored_nodes} tree nodes are stored but {size} entries make {n_nodes}: "
            "entries were removed or nodes added",
            index=size,
        )
    if kind_cover != size:
        raise LogIntegrityError(
            f"the kind index covers {kind_cover} entries but the log holds {size}: "
            "index rows were added, duplicated or removed",
            index=size,
        )


def _trim_frontier(
    frontier: dict[tuple[int, int], bytes], size: int
) -> dict[tuple[int, int], bytes]:
    keep = {}
    for level in range(size.bit_length()):
        if size >> level & 1:
            key = (level, (size >> level) - 1)
            keep[key] = frontier[key]
    return keep


def _subject_index(ledger: Ledger) -> dict[int, tuple[str, ...]]:
    grouped: dict[int, list[str]] = defaultdict(list)
    for subject, index in ledger._store.iter_subject_index():
        grouped[index].append(subject)
    return {index: tuple(sorted(values)) for index, values in grouped.items()}


def _check_entry(
    ledger: Ledger,
    row: EntryRow,
    indexed_subjects: tuple[str, ...],
    blobs_seen: set[str],
    missing: dict[str, int] | None = None,
) -> Event:
    index = row.index
    if not hmac.compare_digest(leaf_hash(row.leaf), row.leaf_hash):
        raise LogIntegrityError(
            f"entry {index}: leaf bytes do not hash to the stored leaf hash", index=index
        )
    try:
        event = Event.from_leaf(row.leaf)
    except RowtrailError as exc:
        raise LogIntegrityError(
            f"entry {index}: leaf is not a canonical event ({exc})", index=index
        ) from exc
    if event.kind != row.kind:
        raise LogIntegrityError(
            f"entry {index}: kind index says {row.kind!r}, event says {event.kind!r}", index=index
        )
    if tuple(event.subjects) != tuple(sorted(indexed_subjects)) or event.subjects != row.subjects:
        raise LogIntegrityError(
            f"entry {index}: subject index disagrees with the event", index=index
        )
    for digest in event.blobs:
        if digest not in blobs_seen:
            _check_blob(ledger, index, digest, missing)
            blobs_seen.add(digest)
    return event


def _check_blob(
    ledger: Ledger, index: int, digest: str, missing: dict[str, int] | None = None
) -> None:
    try:
        ledger.blobs.get(digest)
    except BlobNotFoundError as exc:
        if missing is not None:  # judged once every entry is read (a later redaction)
            missing.setdefault(digest, index)
            return
        raise LogIntegrityError(f"entry {index}: blob {digest} is missing", index=index) from exc
    except VerificationError as exc:
        raise LogIntegrityError(f"entry {index}: blob {digest} was altered", index=index) from exc


def _check_checkpoints(
    ledger: Ledger,
    size: int,
    trust_root: TrustRoot | None,
    bound: Callable[[], int] | None = None,
) -> int | None:
    """Check every stored checkpoint, the chain of their records, and the trust root.

    Every write transaction signs a checkpoint, so the latest one must cover the whole log;
    each record names the digest of the one before, so none can be removed or re-dated; the
    checkpoint trusted outside the workspace must be one of the stored ones.
    """
    verifiers = [ledger.verifier] if trust_root is None else [trust_root.verifier]
    stored_all = ledger.checkpoints()
    previous, record = "none", None
    for stored in stored_all:
        checkpoint = open_checkpoint(stored.note, verifiers, origin=ledger.origin)
        if checkpoint.size != stored.size or checkpoint.root != stored.root:
            raise CheckpointError(
                f"stored checkpoint row of size {stored.size} disagrees with its note"
            )
        try:
            record = open_record(stored.record, verifiers)
        except CheckpointError as exc:
            raise CheckpointError(
                f"checkpoint of size {stored.size}: its signed record is missing or invalid ({exc})"
            ) from exc
        if (record.origin, record.size, record.root) != (ledger.origin, stored.size, stored.root):
            raise CheckpointError(f"checkpoint of size {stored.size}: record is for another head")
        if record.created_at != stored.created_at:
            raise CheckpointError(
                f"checkpoint of size {stored.size}: created_at {stored.created_at!r} is not the "
                f"signed time {record.created_at!r}"
            )
        if not hmac.compare_digest(record.previous, previous):
            raise CheckpointError(
                f"checkpoint of size {stored.size}: the checkpoint signed before it is missing "
                "(its record links to a record that is not stored)"
            )
        previous = record.digest
        _check_head(ledger, checkpoint.size, checkpoint.root, size, "stored checkpoint")
    # ``record`` is the latest checkpoint's, opened in the loop above.
    if record is not None and not hmac.compare_digest(
        subject_index_digest(ledger._store), record.subject_refs
    ):
        raise LogIntegrityError(
            "the subject index differs from what the latest checkpoint signed", index=size
        )
    if size and (not stored_all or stored_all[-1].size != size):
        covered = stored_all[-1].size if stored_all else 0
        raise CheckpointError(
            f"entries from index {covered} are not covered by any signed checkpoint: the "
            "checkpoints were removed, or entries were added without the signing key"
        )
    if trust_root is None:
        return None
    trusted = trust_root.checkpoint
    if trusted is None:
        if stored_all:
            raise TrustRootError(
                f"{trust_root.source} holds no checkpoint of log {ledger.origin!r}, which has "
                f"{size} entries: the trusted checkpoint was removed"
            )
        return 0
    try:
        _check_head(ledger, trusted.size, trusted.root, size, f"checkpoint in {trust_root.source}")
    except CheckpointError as exc:
        raise TrustRootError(f"{exc}: the log was rewritten or forked") from exc
    if not any(s.size == trusted.size and hmac.compare_digest(s.root, trusted.root)
               for s in stored_all):
        raise TrustRootError(
            f"the checkpoint of size {trusted.size} in {trust_root.source} is not among the "
            "log's stored checkpoints: they were removed or rewritten"
        )
    # Read after the snapshot began: a writer stages its checkpoint before committing, so
    # the trust state read now has seen every checkpoint the snapshot holds.
    seen = trust_root.bound if bound is None else bound()
    if trust_root.current and stored_all and stored_all[-1].size > seen:
        # Every write stages its checkpoint in the trust state before it commits: a log
        # signed beyond what the trust state saw was extended behind its back.
        raise TrustRootError(
            f"the log has signed checkpoints up to size {stored_all[-1].size} but "
            f"{trust_root.source} saw only up to {seen}: the trust state was rolled "
            "back, or the log was extended without it. If you trust the log, run "
            "`rowtrail ledger checkpoint --workspace DIR` to move the trust state forward."
        )
    return trusted.size


def _check_head(ledger: Ledger, head_size: int, head_root: bytes, size: int, what: str) -> None:
    if head_size > size:
        raise TrustRootError(
            f"{what} covers {head_size} entries but the log holds {size}: entries from index "
            f"{size} were truncated, or an older log state was replayed"
        )
    if head_size and not hmac.compare_digest(ledger.root(head_size), head_root):
        raise CheckpointError(f"{what} root at size {head_size} does not match the stored log")


def verify_log(
    ledger: Ledger,
    *,
    trust_root: TrustRoot | None = None,
    trust_bound: Callable[[], int] | None = None,
    batch: int = 20_000,
    progress: Callable[[int], None] | None = None,
    visit: Callable[[int, Event], None] | None = None,
) -> VerifyReport:
    """Verify everything stored for ``ledger``; raise on the first problem.

    All reads happen in one storage snapshot, so appends by other processes meanwhile are
    neither seen half-way nor mistaken for tampering. Read ``trust_root`` before calling:
    its trusted checkpoint is never ahead of a snapshot taken after it. ``trust_bound``
    re-reads the largest size the trust state has seen (pending included) once the snapshot
    has begun. Without a trust root, checkpoints are checked with the log's own key only (the
    log vouching for itself). ``visit(index, event)`` sees every checked event once (cache
    tables are rebuilt from it without decoding the log twice).
    """
    if trust_root is not None and not hmac.compare_digest(
        trust_root.verifier.vkey, ledger.verifier.vkey
    ):
        raise TrustRootError(
            f"the workspace's signing key ({ledger.verifier.vkey}) is not the key in "
            f"{trust_root.source} ({trust_root.verifier.vkey}): the key was replaced"
        )
    with ledger._store.snapshot():
        size = ledger.size
        n_nodes, n_blobs = _check_entries(ledger, size, batch, progress, visit)
        trusted = _check_checkpoints(ledger, size, trust_root, trust_bound)
        return VerifyReport(
            size=size,
            root=ledger.root(size),
            n_nodes=n_nodes,
            n_blobs=n_blobs,
            n_checkpoints=len(ledger.checkpoints()),
            witnessed_size=trusted,
            trust_source="" if trust_root is None else trust_root.source,
        )
