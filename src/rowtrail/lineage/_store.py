"""Storage protocol of the lineage layer; ``rowtrail.store`` implements it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from rowtrail.lineage._sources import SourceInfo

if TYPE_CHECKING:
    from pathlib import Path

    from rowtrail.ledger import Event, Ledger, NoteVerifier

__all__ = ["LineageStore", "LineageWorkspace", "SubjectRows"]


@dataclass(frozen=True, slots=True)
class SubjectRows:
    """A subject's row ids and the ledger records that show they are all of them.

    ``record_of`` maps each row id to the ``subject.ingested`` event that ties it to the
    subject; ``records`` lists every event relied on, ascending (those, and in each source
    without the subject the adjacent events around its pseudonym).
    """

    rows: list[int]
    record_of: dict[int, int]
    records: list[int]


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

    def next_source_slot(self, name: str) -> tuple[int, int]:
        """Return the next free source index and the next version of ``name``.

        Called inside ``ledger.transaction()``, whose write lock keeps them free until the
        ``source.registered`` event that takes them commits.
        """
        ...

    def project(
        self, handle: Any, entries: Sequence[tuple[int, bytes]]
    ) -> list[tuple[int, int]]:
        """Write the cache rows of ``source.registered`` / ``subject.ingested`` entries.

        Registered with the ledger store as a projection: runs inside the append's transaction.
        Returns the ``(old, new)`` hashes of the cache buckets it changed (for the signed digest).
        """
        ...

    def verify_caches(
        self,
        ledger: Ledger,
        events: Iterable[tuple[int, Event]] | None = None,
        *,
        verifier: NoteVerifier | None = None,
    ) -> int:
        """Rebuild the cache tables from the ledger and compare; return the rows checked.

        ``events``: the log's checked ``(index, event)`` pairs, if the caller decoded them;
        ``verifier``: the key the signed record is checked with (default: the trust root's).

        Raises :class:`~rowtrail.errors.TableIntegrityError` naming the table and key of the
        first difference.
        """
        ...

    def rows_of_subject(self, subject: str) -> list[int]:
        """Return the row ids recorded for a subject pseudonym, ascending."""
        ...

    def subject_rows_records(self, subject: str) -> SubjectRows:
        """Return a subject's row ids with the records they rest on, not yet proven.

        For answers that prove these records in one batch with their own (the caller must
        prove every one of ``records`` before answering).
        """
        ...

    def subject_events(self, subjects: Sequence[str]) -> dict[str, list[int]]:
        """Return the ledger indices of the ``subject.ingested`` events of each pseudonym."""
        ...

    def subjects_of_rows(self, row_ids: Sequence[int]) -> dict[int, str]:
        """Return the pseudonym of each row id that has one."""
        ...


class LineageWorkspace(Protocol):
    """What the lineage layer needs of a workspace (``rowtrail.Workspace`` implements it).

    Sources and subjects go through ``lineage_store`` (whose tables are projections of the
    ledger, checked against it before answers use them); persisted lineage goes into the
    ledger and its content-addressed blobs.
    """

    @property
    def ledger(self) -> Ledger:
        """The workspace's ledger."""
        ...

    @property
    def lineage_store(self) -> LineageStore:
        """Registered sources and subject rows."""
        ...

    @property
    def path(self) -> Path:
        """The workspace directory (shown in messages)."""
        ...

    def pseudonymize(self, identifier: object) -> str:
        """Return the keyed pseudonym of a subject identifier."""
        ...
