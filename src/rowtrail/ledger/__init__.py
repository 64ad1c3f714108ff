"""Tamper-evident event ledger: RFC 9162 Merkle log, C2SP checkpoints, proofs, verification."""

from __future__ import annotations

from typing import TYPE_CHECKING

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
from rowtrail.ledger._keystore import (
    SubjectKeyStore,
    decrypt_payload,
    encrypt_payload,
    is_encrypted,
    key_id_of,
    subject_keys,
)
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
    "SubjectKeyStore",
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
    "decrypt_payload",
    "default_state_dir",
    "digest_of",
    "encrypt_payload",
    "format_checkpoint_body",
    "format_record_body",
    "is_encrypted",
    "key_id_of",
    "leaf_hash",
    "node_hash",
    "open_checkpoint",
    "open_note",
    "open_record",
    "parse_checkpoint_body",
    "root_from_inclusion_path",
    "subject_keys",
    "subject_ref_text",
    "update_digest",
    "verify_consistency",
    "verify_inclusion",
    "verify_log",
    "verify_subtree_consistency",
    "verify_subtree_inclusion",
]

# ---------------------------------------------------------------- witnesses (C2SP tlog-witness)
from rowtrail.ledger._cosignature import (
    COSIGNATURE_TYPE,
    Cosignature,
    CosignatureSigner,
    CosignatureVerifier,
    cosignature_message,
    cosignatures_of,
    parse_cosignature_line,
)
from rowtrail.ledger._witness import (
    MAX_PROOF_LINES,
    Witness,
    format_add_checkpoint,
    load_witness_signer,
    origin_hash,
    parse_add_checkpoint,
    witness_state_dir,
)
from rowtrail.ledger._witness_git import (
    GitWitness,
    GitWitnessReport,
    verify_git_witness,
)
from rowtrail.ledger._witness_ledger import cosign_ledger, verify_witnessed_log
from rowtrail.ledger._witness_policy import (
    WitnessedCheckpoint,
    WitnessEndpoint,
    WitnessPolicy,
    collect_cosignatures,
    verify_no_split_view,
    verify_witnessed_prefix,
)

__all__ += [
    "COSIGNATURE_TYPE",
    "MAX_PROOF_LINES",
    "SIZE_CONTENT_TYPE",
    "Cosignature",
    "CosignatureSigner",
    "CosignatureVerifier",
    "GitWitness",
    "GitWitnessReport",
    "Witness",
    "WitnessClient",
    "WitnessEndpoint",
    "WitnessPolicy",
    "WitnessServer",
    "WitnessedCheckpoint",
    "collect_cosignatures",
    "cosign_ledger",
    "cosignature_message",
    "cosignatures_of",
    "format_add_checkpoint",
    "load_witness_signer",
    "origin_hash",
    "parse_add_checkpoint",
    "parse_cosignature_line",
    "verify_git_witness",
    "verify_no_split_view",
    "verify_witnessed_log",
    "verify_witnessed_prefix",
    "witness_state_dir",
]
if TYPE_CHECKING:
    from rowtrail.ledger._witness_http import SIZE_CONTENT_TYPE, WitnessClient, WitnessServer

# http.client/http.server add ~30 ms to ``import rowtrail``: the HTTP witness names load on
# first use.
_HTTP_NAMES = frozenset({"SIZE_CONTENT_TYPE", "WitnessClient", "WitnessServer"})


def __getattr__(name: str) -> object:
    if name in _HTTP_NAMES:
        from rowtrail.ledger import _witness_http

        return getattr(_witness_http, name)
    raise AttributeError(f"module 'rowtrail.ledger' has no attribute {name!r}")


# The block above is appended for an easy merge; keep the whole list in ruff's isort-style order
# (CONSTANTS, Classes, functions), as the public-API test checks.
__all__.sort(key=lambda name: (0 if name.upper() == name else 1 if name[:1].isupper() else 2, name))
