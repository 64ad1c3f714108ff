r"""What every anchor backend is: anchor a signed checkpoint outside the operator's reach.

An *anchor* puts a commitment to one checkpoint (log origin, size, root) somewhere the
operator of the log cannot rewrite: an RFC 3161 time-stamp authority signs it with a time,
a blockchain includes it in a block. The backend returns an :class:`AnchorReceipt`, which the
workspace stores as an ``anchor.receipt`` ledger event and ``rowtrail verify --witnesses``
re-checks with :meth:`AnchorBackend.verify`.

The commitment is :func:`anchored_digest`: SHA-256 of the checkpoint *body*
(``origin\nsize\nbase64(root)\n``), so a receipt binds the origin and the size as well as the
root. Backends whose medium carries the root itself (an EVM transaction's data) carry the raw
32-byte root and check the size and origin from the receipt against the checkpoint.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from rowtrail.errors import InvalidInputError, VerificationError
from rowtrail.ledger import Checkpoint

__all__ = ["AnchorBackend", "AnchorError", "AnchorReceipt", "anchored_digest"]


class AnchorError(VerificationError):
    """An anchor receipt does not back the checkpoint it names, or an anchor could not be made.

    Raised for a receipt for another root, size or origin, a time-stamp token whose signature
    or certificate chain does not verify, a transaction that is not on the chain or carries
    other data, and for a peer that refused or could not be reached while anchoring.
    """


def anchored_digest(checkpoint: Checkpoint) -> bytes:
    """Return the 32-byte commitment an anchor makes to ``checkpoint``: SHA-256 of its body.

    Examples
    --------
    >>> from rowtrail.ledger import Checkpoint
    >>> anchored_digest(Checkpoint("example.org/log", 3, bytes(32))).hex()[:16]
    '7d68abaf85230958'
    """
    return hashlib.sha256(checkpoint.body.encode("utf-8")).digest()


@dataclass(frozen=True, slots=True)
class AnchorReceipt:
    """Evidence that a checkpoint was anchored: what, where, when, and the backend's proof.

    Attributes
    ----------
    backend : str
        The backend kind, e.g. ``"rfc3161"`` or ``"evm"``.
    peer : str
        Which authority or chain, e.g. the TSA's URL or ``"evm:chain-id"`` (no secrets).
    origin, size, root_hex :
        The anchored checkpoint.
    anchored_at : str
        RFC 3339 UTC time the anchor asserts (the TSA's ``genTime``, the block's timestamp).
    evidence : dict
        Backend-specific proof, JSON-serialisable (a base64 time-stamp token; a transaction
        hash, block number and block hash).
    """

    backend: str
    peer: str
    origin: str
    size: int
    root_hex: str
    anchored_at: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def names(self, checkpoint: Checkpoint) -> None:
        """Raise :class:`AnchorError` unless this receipt names ``checkpoint`` exactly."""
        mine = (self.origin, self.size, self.root_hex)
        theirs = (checkpoint.origin, checkpoint.size, checkpoint.root.hex())
        if mine != theirs:
            raise AnchorError(
                f"{self.backend} anchor receipt names {self.origin!r} size {self.size} root "
                f"{self.root_hex[:16]}…, but the checkpoint is {checkpoint.origin!r} size "
                f"{checkpoint.size} root {checkpoint.root.hex()[:16]}…: the receipt is for "
                "another checkpoint"
            )

    def to_json(self) -> dict[str, Any]:
        """Return the receipt as a JSON object (the ``anchor.receipt`` event payload)."""
        return {
            "backend": self.backend,
            "peer": self.peer,
            "origin": self.origin,
            "size": self.size,
            "root": self.root_hex,
            "anchored_at": self.anchored_at,
            "evidence": dict(self.evidence),
        }

    @classmethod
    def from_json(cls, data: Any) -> AnchorReceipt:
        """Parse :meth:`to_json` output; raise :class:`InvalidInputError` on a malformed one."""
        keys = {"backend", "peer", "origin", "size", "root", "anchored_at", "evidence"}
        if not isinstance(data, dict) or set(data) != keys:
            raise InvalidInputError(
                f"an anchor receipt must be a JSON object with keys {sorted(keys)}; got "
                f"{sorted(data) if isinstance(data, dict) else type(data).__name__!r}"
            )
        if not isinstance(data["size"], int) or not isinstance(data["evidence"], dict):
            raise InvalidInputError(
                "an anchor receipt's size must be an int and its evidence an object"
            )
        return cls(
            backend=str(data["backend"]),
            peer=str(data["peer"]),
            origin=str(data["origin"]),
            size=data["size"],
            root_hex=str(data["root"]),
            anchored_at=str(data["anchored_at"]),
            evidence=dict(data["evidence"]),
        )


@runtime_checkable
class AnchorBackend(Protocol):
    """A place to anchor checkpoints (an RFC 3161 TSA, an EVM chain)."""

    @property
    def kind(self) -> str:
        """The backend kind written in receipts (``"rfc3161"``, ``"evm"``)."""
        ...

    @property
    def peer(self) -> str:
        """Which authority or chain this backend talks to (no secrets)."""
        ...

    def anchor(self, checkpoint: Checkpoint) -> AnchorReceipt:
        """Anchor ``checkpoint``; return the receipt. Raise :class:`AnchorError` on failure."""
        ...

    def verify(self, receipt: AnchorReceipt, checkpoint: Checkpoint) -> None:
        """Check ``receipt`` proves ``checkpoint`` was anchored; raise :class:`AnchorError`."""
        ...
