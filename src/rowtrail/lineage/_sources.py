"""Registered sources and subjects.

Registering a source (a file or an in-memory table under a name) records its SHA-256, path,
format, schema and row count as a ``source.registered`` ledger event and gives it a source
index, from which every row gets a row id (``source_index << 40 | row_number``; see
:mod:`rowtrail.ids`). Identical bytes under the same name give the same source; changed
bytes give a new version (and a new index). An optional subject column is turned into keyed
pseudonyms; each subject gets a ``subject.ingested`` event so "was my data used" has proofs.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from rowtrail import _context
from rowtrail._faults import crashpoint
from rowtrail.errors import InvalidInputError, UnknownSourceError
from rowtrail.hashing import check_digest, sha256_digest
from rowtrail.ids import make_row_ids, normalize_subject, row_id

if TYPE_CHECKING:
    from rowtrail.lineage._store import LineageStore, LineageWorkspace

__all__ = [
    "SOURCE_EVENT_KINDS",
    "SourceInfo",
    "get_source",
    "list_sources",
    "register_source",
    "rows_of_subject",
    "subject_rows_digest",
]

#: The ledger events the sources and subject-rows cache tables are projected from.
SOURCE_EVENT_KINDS = ("source.registered", "subject.ingested")

_FORMATS = ("csv", "parquet", "numpy", "pandas", "polars", "spark", "torch", "json", "other")


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """One registered source version."""

    name: str
    digest: str
    format: str
    schema: Mapping[str, str]
    n_rows: int
    path: str | None = None
    subject_column: str | None = None
    index: int = -1
    version: int = 0
    ledger_index: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def row_ids(self) -> NDArray[np.int64]:
        """Return the row ids of all rows of this source."""
        return make_row_ids(self.index, self.n_rows)

    def row_id(self, row_number: int) -> int:
        """Return the row id of one row, checking it exists."""
        if not 0 <= row_number < self.n_rows:
            raise UnknownSourceError(
                f"row_number must be in [0, {self.n_rows}) for source {self.name!r}; "
                f"got {row_number!r}"
            )
        return row_id(self.index, row_number)

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form recorded in the ledger."""
        return {
            "name": self.name,
            "digest": self.digest,
            "format": self.format,
            "schema": dict(self.schema),
            "n_rows": self.n_rows,
            "path": self.path,
            "subject_column": self.subject_column,
            "source_index": self.index,
            "version": self.version,
        }


def _lineage_store(workspace: LineageWorkspace) -> LineageStore:
    store: LineageStore = workspace.lineage_store
    return store


def register_source(
    workspace: LineageWorkspace | None,
    *,
    name: str,
    digest: str,
    format: str,
    schema: Mapping[str, str],
    n_rows: int,
    path: str | None = None,
    subject_column: str | None = None,
    subject_ids: Sequence[object] | NDArray[Any] | None = None,
) -> SourceInfo:
    """Register a source (idempotent for identical bytes) and return it.

    Parameters
    ----------
    workspace : Workspace or None
        Where to register; ``None`` uses the default workspace.
    name, digest, format, schema, n_rows, path
        What identifies and describes the source; ``digest`` is ``sha256:<hex>`` of its bytes.
    subject_column, subject_ids
        The column holding raw subject identifiers and its values (one per row, ``None`` or
        empty for rows without a subject). Only keyed pseudonyms are stored.
    """
    ws = _context.resolve_workspace(workspace)
    if not _is_nonempty_str(name):
        raise InvalidInputError(f"name of register_source must be a non-empty str; got {name!r}")
    check_digest(digest, name="digest of register_source")
    if format not in _FORMATS:
        raise InvalidInputError(
            f"format of register_source must be one of {_FORMATS}; got {format!r}"
        )
    if not _is_count(n_rows):
        raise InvalidInputError(f"n_rows of register_source must be an int >= 0; got {n_rows!r}")
    if subject_ids is not None and len(subject_ids) != n_rows:
        raise InvalidInputError(
            "subject_ids of register_source must have one value per row "
            f"({n_rows}); got {len(subject_ids)}"
        )
    store = _lineage_store(ws)
    existing = store.find_source(name, digest)
    if existing is not None:
        return existing
    pseudonyms = None if subject_ids is None else _pseudonyms_by_subject(ws, subject_ids)
    # One transaction: the source.registered event, every subject.ingested event, the cache
    # rows projected from them and the checkpoint that signs them commit together or not at
    # all, so a crash at any step leaves no half-registered source and a retry starts over.
    with ws.ledger.transaction():
        existing = store.find_source(name, digest)  # under the write lock: no duplicate
        if existing is not None:
            return existing
        index, version = store.next_source_slot(name)
        info = SourceInfo(
            name=name,
            digest=digest,
            format=format,
            schema={str(k): str(v) for k, v in schema.items()},
            n_rows=int(n_rows),
            path=path,
            subject_column=subject_column,
            index=index,
            version=version,
        )
        ledger_index = ws.ledger.append(
            "source.registered", {**info.to_json(), **_subject_coverage(n_rows, pseudonyms)}
        )
        crashpoint("register_source.after_source_event")
        if pseudonyms is not None:
            _append_subjects(ws, info, pseudonyms)
        crashpoint("register_source.before_commit")
    crashpoint("register_source.after_commit")
    return replace(info, ledger_index=ledger_index)


def _is_nonempty_str(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _is_count(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool) and bool(value >= 0)


def _pseudonyms_by_subject(ws: LineageWorkspace, subject_ids: Any) -> dict[str, list[int]]:
    """Return each subject's pseudonym with its row numbers (blank cells have no subject)."""
    rows_by_subject: dict[str, list[int]] = defaultdict(list)
    for number, raw in enumerate(subject_ids):
        if normalize_subject(raw) is None:  # None, NaN, NA, blank: no subject
            continue
        rows_by_subject[ws.pseudonymize(raw)].append(number)
    return rows_by_subject


def _subject_coverage(
    n_rows: int, rows_by_subject: dict[str, list[int]] | None
) -> dict[str, Any]:
    """Return what the ``source.registered`` event records about its subject events.

    ``subject_events``: how many ``subject.ingested`` events follow, one per pseudonym, in
    ascending pseudonym order; ``rows_without_subject``: ``[start, stop)`` ranges of the rows
    with a blank subject cell. With them, a subject-rows cache row is checked against one
    proven event, a row's lack of subject against this event, and a subject's absence from
    the source against two adjacent events, so answers never scan the whole table.
    """
    if rows_by_subject is None:
        return {}
    subject_of: list[str | None] = [None] * n_rows
    for pseudonym, rows in rows_by_subject.items():
        for number in rows:
            subject_of[number] = pseudonym
    covered = np.fromiter((s is not None for s in subject_of), dtype=np.int8, count=n_rows)
    edges = np.flatnonzero(np.diff(np.concatenate([[1], covered, [1]])))
    pairs = ((n, s) for n, s in enumerate(subject_of) if s is not None)
    return {
        "subject_events": len(rows_by_subject),
        "rows_without_subject": edges.reshape(-1, 2).tolist(),
        "subject_rows_digest": subject_rows_digest(pairs),
    }


def subject_rows_digest(pairs: Iterable[tuple[int, str]]) -> str:
    """Return ``sha256:<hex>`` of a source's ``(row number, pseudonym)`` pairs.

    The pairs come in ascending row number (one subject a row); each is ``<number>␟<subject>``
    and they are joined by newlines. The ``source.registered`` event records it, so the
    subject rows of a whole source are checked with one range scan and one hash.
    """
    text = "\n".join(f"{int(number)}\x1f{subject}" for number, subject in pairs)
    return sha256_digest(text.encode("utf-8"))


def _append_subjects(
    ws: LineageWorkspace, info: SourceInfo, rows_by_subject: dict[str, list[int]]
) -> None:
    with ws.ledger.batch(max_events=2000) as batch:
        for pseudonym in sorted(rows_by_subject):
            rows = rows_by_subject[pseudonym]
            batch.append(
                "subject.ingested",
                {
                    "source": info.name,
                    "source_index": info.index,
                    "version": info.version,
                    "row_numbers": rows,
                },
                subjects=[pseudonym],
            )
    crashpoint("register_source.after_subject_events")


def get_source(workspace: LineageWorkspace | None, key: str | int) -> SourceInfo:
    """Return a registered source by index or name (latest version)."""
    ws = _context.resolve_workspace(workspace)
    found = _lineage_store(ws).get_source(key)
    if found is None:
        names = sorted({s.name for s in _lineage_store(ws).list_sources()})
        raise UnknownSourceError(
            f"no source {key!r} in workspace {ws.path}; known sources: {names}"
        )
    return found


def list_sources(workspace: LineageWorkspace | None = None) -> list[SourceInfo]:
    """Return every registered source version."""
    return _lineage_store(_context.resolve_workspace(workspace)).list_sources()


def rows_of_subject(workspace: LineageWorkspace | None, subject: str) -> NDArray[np.int64]:
    """Return the row ids recorded for a subject pseudonym (or raw identifier)."""
    ws = _context.resolve_workspace(workspace)
    pseudonym = subject if str(subject).startswith("ps:") else ws.pseudonymize(subject)
    return np.asarray(_lineage_store(ws).rows_of_subject(pseudonym), dtype=np.int64)


def schema_json(schema: Mapping[str, str]) -> str:
    """Canonical text of a schema for storage."""
    return json.dumps(dict(schema), sort_keys=True)
