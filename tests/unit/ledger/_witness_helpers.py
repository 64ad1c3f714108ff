"""A tiny in-memory log (RFC 9162 tree + signed checkpoints) for the witness tests."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from rowtrail.ledger import (
    NoteSigner,
    compute_consistency_path,
    compute_root,
    format_checkpoint_body,
    leaf_hash,
)

ORIGIN = "example.com/witnessed-log"


class MemoryLog:
    """Leaves in a list; ``note(size)`` signs the checkpoint of the first ``size`` leaves."""

    def __init__(self, origin: str = ORIGIN, signer: NoteSigner | None = None) -> None:
        self.signer = signer or NoteSigner(origin, Ed25519PrivateKey.generate())
        self.origin = origin
        self.leaves: list[bytes] = []

    @property
    def verifier(self):  # type: ignore[no-untyped-def]
        return self.signer.verifier

    def append(self, *entries: bytes) -> int:
        self.leaves.extend(leaf_hash(e) for e in entries)
        return len(self.leaves)

    def grow(self, n: int, tag: bytes = b"e") -> int:
        start = len(self.leaves)
        return self.append(*(tag + str(start + i).encode() for i in range(n)))

    def root(self, size: int | None = None) -> bytes:
        return compute_root(self.leaves[: len(self.leaves) if size is None else size])

    def note(self, size: int | None = None) -> str:
        size = len(self.leaves) if size is None else size
        return self.signer.sign(format_checkpoint_body(self.origin, size, self.root(size)))

    def prove(self, old: int, new: int) -> list[bytes]:
        return compute_consistency_path(old, new, lambda a, b: compute_root(self.leaves[a:b]))

    def fork(self, keep: int, tag: bytes = b"fork") -> MemoryLog:
        """The same log (same key) rolled back to ``keep`` leaves: a fork once it grows."""
        other = MemoryLog(self.origin, self.signer)
        other.leaves = list(self.leaves[:keep])
        return other
