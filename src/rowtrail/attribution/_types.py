"""The workspace as the attribution layer sees it (protocols; ``rowtrail.Workspace`` fits)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from rowtrail.ledger import Ledger

__all__ = ["AttributionWorkspace", "SubjectLookup"]


class SubjectLookup(Protocol):
    """The one lineage-store query explanations need."""

    def subjects_of_rows(self, row_ids: Sequence[int]) -> dict[int, str]:
        """Return the pseudonym of each row id that has one."""
        ...


class AttributionWorkspace(Protocol):
    """What explanations read and write: the ledger, subject lookups, a directory."""

    @property
    def ledger(self) -> Ledger:
        """The workspace's ledger."""
        ...

    @property
    def lineage_store(self) -> SubjectLookup:
        """The workspace's lineage store."""
        ...

    @property
    def extensions(self) -> dict[str, Any]:
        """Per-process registry of in-memory helpers (attributors)."""
        ...

    @property
    def path(self) -> Path:
        """The workspace directory."""
        ...
