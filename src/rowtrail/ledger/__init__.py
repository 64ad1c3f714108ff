"""Tamper-evident event ledger: RFC 9162 Merkle log, C2SP checkpoints, proofs, verification."""

from __future__ import annotations

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
    open_note,
    open_record,
    parse_checkpoint_body,
    subject_ref_text,
    update_digest,
)
from rowtrail.ledger._events import Event, check_kind
from rowtrail.ledger._log import Ledger, LedgerBatch
from rowtrail.ledger._merkle import (
    EMPTY_ROOT,
    compute_consistency_path,
    compute_inclusion_path,
    compute_root,
    leaf_hash,
    node_hash,
    root_from_inclusion_path,
    verify_consistency,
    verify_inclusion,
)
from rowtrail.ledger._proofs import ConsistencyProof, InclusionProof, LedgerEntry, TreeHead
from rowtrail.ledger._store import (
    BlobStore,
    EntryBatch,
    EntryRow,
    LedgerStore,
    LedgerTransaction,
    Projection,
    StoredCheckpoint,
)
from rowtrail.ledger._subtree import (
    check_subtree,
    verify_subtree_consistency,
    verify_subtree_inclusion,
)
from rowtrail.ledger._trust import TrustRoot, TrustStore, default_state_dir
from rowtrail.ledger._verify import VerifyReport, verify_log

__all__ = [
    "BUCKET_BITS",
    "EMPTY_ROOT",
    "BlobStore",
    "Checkpoint",
    "CheckpointRecord",
    "ConsistencyProof",
    "EntryBatch",
    "EntryRow",
    "Event",
    "InclusionProof",
    "Ledger",
    "LedgerBatch",
    "LedgerEntry",
    "LedgerStore",
    "LedgerTransaction",
    "NoteSigner",
    "NoteVerifier",
    "Projection",
    "StoredCheckpoint",
    "TreeHead",
    "TrustRoot",
    "TrustStore",
    "VerifyReport",
    "bucket_change",
    "bucket_hash",
    "check_kind",
    "check_subtree",
    "compute_consistency_path",
    "compute_inclusion_path",
    "compute_root",
    "default_state_dir",
    "digest_of",
    "format_checkpoint_body",
    "format_record_body",
    "leaf_hash",
    "node_hash",
    "open_checkpoint",
    "open_note",
    "open_record",
    "parse_checkpoint_body",
    "root_from_inclusion_path",
    "subject_ref_text",
    "update_digest",
    "verify_consistency",
    "verify_inclusion",
    "verify_log",
    "verify_subtree_consistency",
    "verify_subtree_inclusion",
]
