"""Proof and tree-head value objects with JSON forms used by the CLI and the service."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from rowtrail.errors import InvalidInputError
from rowtrail.ledger._events import Event
from rowtrail.ledger._merkle import verify_consistency, verify_inclusion

__all__ = ["ConsistencyProof", "InclusionProof", "LedgerEntry", "TreeHead"]


def _hex_list(values: list[str] | Any, what: str) -> list[bytes]:
    if not isinstance(values, list):
        raise InvalidInputError(f"{what} must be a list of hex strings; got {values!r:.80}")
    try:
        return [bytes.fromhex(value) for value in values]
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{what} must be a list of hex strings") from exc


@dataclass(frozen=True, slots=True)
class TreeHead:
    """Size and root hash of the log at one moment."""

    size: int
    root: bytes


@dataclass(frozen=True, slots=True)
class InclusionProof:
    """RFC 9162 inclusion proof of leaf ``index`` in the tree of ``size`` leaves."""

    index: int
    size: int
    leaf_hash: bytes
    path: tuple[bytes, ...]
    root: bytes

    def verify(self) -> None:
        """Raise :class:`~rowtrail.errors.InclusionProofError` unless the proof holds."""
        verify_inclusion(self.index, self.size, self.leaf_hash, self.path, self.root)

    def to_json(self) -> dict[str, Any]:
        """Return ``{"index", "size", "leaf_hash", "path", "root"}`` with hex hashes."""
        return {
            "index": self.index,
            "size": self.size,
            "leaf_hash": self.leaf_hash.hex(),
            "path": [value.hex() for value in self.path],
            "root": self.root.hex(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InclusionProof:
        """Parse the form written by :meth:`to_json`."""
        try:
            return cls(
                index=int(data["index"]),
                size=int(data["size"]),
                leaf_hash=bytes.fromhex(data["leaf_hash"]),
                path=tuple(_hex_list(data["path"], "path")),
                root=bytes.fromhex(data["root"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"not an inclusion proof: {exc}") from exc


@dataclass(frozen=True, slots=True)
class ConsistencyProof:
    """RFC 9162 consistency proof between two tree sizes."""

    old_size: int
    new_size: int
    old_root: bytes
    new_root: bytes
    path: tuple[bytes, ...]

    def verify(self) -> None:
        """Raise :class:`~rowtrail.errors.ConsistencyProofError` unless the proof holds."""
        verify_consistency(self.old_size, self.new_size, self.old_root, self.new_root, self.path)

    def to_json(self) -> dict[str, Any]:
        """Return ``{"old_size", "new_size", "path", "old_root", "new_root"}`` with hex hashes."""
        return {
            "old_size": self.old_size,
            "new_size": self.new_size,
            "path": [value.hex() for value in self.path],
            "old_root": self.old_root.hex(),
            "new_root": self.new_root.hex(),
        }


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One entry: its index, exact leaf bytes, leaf hash and decoded event."""

    index: int
    leaf: bytes
    leaf_hash: bytes
    event: Event

    def to_json(self) -> dict[str, Any]:
        """Return ``{"index", "leaf" (base64), "leaf_hash" (hex), "event"}``."""
        return {
            "index": self.index,
            "leaf": base64.b64encode(self.leaf).decode(),
            "leaf_hash": self.leaf_hash.hex(),
            "event": self.event.to_json(),
        }
