"""Proven registry events, read once and kept while the log only grows.

Every registry answer is computed from the entries this cache returns: each was read by kind
(the kind index is checked to tile the log, so no entry can be hidden from or slipped into a
kind) and proven included in the trusted signed checkpoint before it is kept. When the log
grows only the new entries are read and proven; the registry's cache tables are never read
to answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rowtrail.errors import LogIntegrityError
from rowtrail.ledger import LedgerEntry
from rowtrail.store.registry_tables import REGISTRY_EVENT_KINDS

if TYPE_CHECKING:
    from rowtrail.ledger import Ledger

__all__ = ["KINDS", "ProvenEvents"]

#: The kinds read: the registry's own, training seals and schema violations it gates on.
KINDS = (*REGISTRY_EVENT_KINDS, "training.completed", "rows.validation_failed")


class ProvenEvents:
    """The proven entries of :data:`KINDS`, by kind, in ledger order."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._size = -1
        self._by_kind: dict[str, dict[int, LedgerEntry]] = {kind: {} for kind in KINDS}

    def _refresh(self) -> None:
        ledger = self._ledger
        with ledger.snapshot():  # the size and every index read in one committed state
            size = ledger.size
            if size == self._size:
                return
            wanted: dict[int, str] = {}
            for kind in KINDS:
                known = self._by_kind[kind]
                wanted.update((i, kind) for i in ledger.indices(kind=kind) if i not in known)
            for entry in ledger.proven(sorted(wanted)) if wanted else []:
                kind = wanted[entry.index]
                if entry.event.kind != kind:
                    raise LogIntegrityError(
                        f"kind index lists entry {entry.index} as {kind!r} but it is "
                        f"{entry.event.kind!r}: the index was edited; run `rowtrail verify`",
                        index=entry.index,
                    )
                self._by_kind[kind][entry.index] = entry
            self._size = size

    def entries(self, kind: str) -> list[LedgerEntry]:
        """Return the proven entries of ``kind`` (one of :data:`KINDS`), ascending by index."""
        self._refresh()
        found = self._by_kind[kind]
        return [found[i] for i in sorted(found)]
