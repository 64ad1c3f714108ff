"""Proven ledger records that the interop exports are built from.

Every export reads the ledger through :meth:`rowtrail.ledger.Ledger.proven_entries`, in one
read snapshot: each record released carries its verified inclusion proof against the signed
checkpoint, and the checkpoint note itself, so an export names evidence a third party can
check with the verifier key alone (see :func:`rowtrail.interop.verify_openlineage_event`).
A record whose proof fails is never released: the export raises instead.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rowtrail.errors import StateError
from rowtrail.ledger import InclusionProof, LedgerEntry, TreeHead

if TYPE_CHECKING:
    from rowtrail._workspace import Workspace

__all__ = ["Evidence", "ProvenRecord", "collect_evidence", "run_uuid"]

#: The URL rowtrail names as the producer of the metadata it exports.
PRODUCER = "https://rowtrail.dev/interop/v1"


def run_uuid(origin: str, kind: str, key: str) -> str:
    """Return the stable UUID of a rowtrail activity (the same on every export).

    Derived (UUID version 5) from the log's origin, the activity's kind and its key, so
    re-exporting a workspace names each run with the same OpenLineage ``runId``.

    Examples
    --------
    >>> run_uuid("rowtrail.local/ab", "training", "0b80") == run_uuid("rowtrail.local/ab",
    ...                                                                "training", "0b80")
    True
    """
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"rowtrail://{origin}/{kind}/{key}"))


@dataclass(frozen=True)
class ProvenRecord:
    """A ledger entry released with its verified inclusion proof against the signed head."""

    entry: LedgerEntry
    proof: InclusionProof

    @property
    def index(self) -> int:
        """The entry's ledger index."""
        return self.entry.index

    @property
    def payload(self) -> Mapping[str, Any]:
        """The event's payload."""
        return self.entry.event.payload

    @property
    def leaf_hash_hex(self) -> str:
        """The entry's RFC 9162 leaf hash, hex."""
        return self.entry.leaf_hash.hex()

    def proof_json(self, origin: str, checkpoint_note: str) -> dict[str, Any]:
        """Return the self-contained proof of this record (what the proof facet carries)."""
        return {
            "origin": origin,
            "ledgerIndex": self.entry.index,
            "eventKind": self.entry.event.kind,
            "leaf": base64.b64encode(self.entry.leaf).decode("ascii"),
            "leafHash": self.entry.leaf_hash.hex(),
            "treeSize": self.proof.size,
            "rootHash": self.proof.root.hex(),
            "inclusionPath": [step.hex() for step in self.proof.path],
            "checkpoint": checkpoint_note,
        }


@dataclass(frozen=True)
class Evidence:
    """Proven records of some event kinds, all proven against one signed checkpoint.

    ``head`` is that checkpoint's tree head and ``checkpoint_note`` its signed note text.
    """

    origin: str
    head: TreeHead
    checkpoint_note: str
    records: dict[str, list[ProvenRecord]] = field(default_factory=dict)

    def of(self, kind: str) -> list[ProvenRecord]:
        """Return the proven records of ``kind`` in ledger order (empty if none)."""
        return self.records.get(kind, [])

    def proof_json(self, record: ProvenRecord) -> dict[str, Any]:
        """Return ``record``'s proof with this evidence's checkpoint note."""
        return record.proof_json(self.origin, self.checkpoint_note)


def collect_evidence(ws: Workspace, kinds: Iterable[str]) -> Evidence:
    """Return the proven records of ``kinds``, proven against the latest signed checkpoint.

    Reads only (works on a read-only workspace); the kinds are read in one snapshot so every
    proof is against the same checkpoint, whose note is returned with them.

    Raises
    ------
    StateError
        The ledger holds no signed checkpoint yet (nothing can be proven).
    VerificationError
        A record's proof fails, or the checkpoint is not trusted; nothing is released.
    """
    ledger = ws.ledger
    with ledger.snapshot():
        latest = ledger.latest_checkpoint()
        if latest is None:
            raise StateError(
                f"the ledger of {ws.path} holds no signed checkpoint; record something first"
            )
        records = {
            kind: [ProvenRecord(entry, proof) for entry, proof in ledger.proven_entries(kind=kind)]
            for kind in dict.fromkeys(kinds)
        }
        head = ledger.trusted_head()
    if head.size != latest.size:  # proven_entries proved against the head of this snapshot
        raise StateError("the signed checkpoint moved while the export was read; run it again")
    return Evidence(ledger.origin, head, latest.note, records)
