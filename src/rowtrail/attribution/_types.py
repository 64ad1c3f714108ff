"""The workspace as the attribution layer sees it (protocols; ``rowtrail.Workspace`` fits)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from rowtrail.lineage import LineageWorkspace

__all__ = ["AttributionWorkspace", "SubjectLookup"]


class SubjectLookup(Protocol):
    """The one lineage-store query explanations need."""

    def subjects_of_rows(self, row_ids: Sequence[int]) -> dict[int, str]:
        """Return the pseudonym of each row id that has one."""
        ...


class AttributionWorkspace(LineageWorkspace, Protocol):
    """What explanations read and write: the lineage layer's view, plus in-process helpers."""

    @property
    def extensions(self) -> dict[str, Any]:
        """Per-process registry of in-memory helpers (attributors)."""
        ...


