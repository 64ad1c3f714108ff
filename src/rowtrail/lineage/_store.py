"""Storage protocol of the lineage layer; ``rowtrail.store`` implements it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from rowtrail.lineage._sources import SourceInfo

__all__ = ["LineageStore"]


class LineageStore(Protocol):
    """Registered sources and the subject -> row id mapping."""

    def find_source(self, name: str, digest: str) -> SourceInfo | None:
        """Return the source registered under ``name`` with exactly these bytes, if any."""
        ...

    def get_source(self, key: str | int) -> SourceInfo | None:
        """Return a source by index, or the latest version of a name."""
        ...

    def list_sources(self) -> list[SourceInfo]:
        """Return every registered source version, by index."""
        ...

    def insert_source(self, info: SourceInfo, *, created_at: str) -> SourceInfo:
        """Store a new source version; assigns ``index`` and ``version``; returns it."""
        ...

    def set_source_ledger_index(self, source_index: int, ledger_index: int) -> None:
        """Record the ledger index of a source's ``source.registered`` event."""
        ...

    def add_subject_rows(self, pairs: Sequence[tuple[str, int]]) -> None:
        """Store ``(pseudonym, row_id)`` pairs."""
        ...

    def rows_of_subject(self, subject: str) -> list[int]:
        """Return the row ids recorded for a subject pseudonym, ascending."""
        ...

    def subjects_of_rows(self, row_ids: Sequence[int]) -> dict[int, str]:
        """Return the pseudonym of each row id that has one."""
        ...
