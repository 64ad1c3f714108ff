"""What a usage query asks about: the row ids named by ``row_ids=``, ``subject=`` or ``source=``.

Asked rows must exist: a row number outside a source, or a row id of an unregistered source,
raises (naming the valid range) instead of silently matching nothing. A source name covers
every registered version of that name (a file registered again with other bytes is a new
version; its earlier version's rows keep their uses); ``(name, version)`` or a source index
names one version.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from rowtrail._types import IdArray
from rowtrail.errors import InvalidInputError, UnknownSourceError
from rowtrail.ids import ROW_BITS, is_pseudonym, row_numbers, source_indices
from rowtrail.lineage import SourceInfo, list_sources, rows_of_subject

if TYPE_CHECKING:
    from rowtrail.lineage import LineageStore, LineageWorkspace, SubjectRows

__all__ = ["SourceKey", "subject_targets", "target_ids"]

SourceKey = str | int | tuple[str, int]


def _versions(ws: LineageWorkspace, source: SourceKey) -> list[SourceInfo]:
    """Return the source versions ``source`` names: every version of a name, or one."""
    every = list_sources(ws)
    if isinstance(source, tuple):
        name, version = source
        found = [s for s in every if s.name == name and s.version == version]
    elif isinstance(source, int | np.integer) and not isinstance(source, bool):
        found = [s for s in every if s.index == int(source)]
    elif isinstance(source, str):
        found = [s for s in every if s.name == source]
    else:
        raise InvalidInputError(
            "source of sample_usage must be a source name, a source index or a (name, version) "
            f"pair; got {source!r}"
        )
    if not found:
        versions = sorted({f"{s.name}@{s.version}" for s in every})
        raise UnknownSourceError(
            f"source of sample_usage must name a registered source; got {source!r}. "
            f"Registered (name@version): {versions}"
        )
    return found


def _ranges(versions: Iterable[SourceInfo]) -> str:
    return ", ".join(f"{s.name}@{s.version} (index {s.index}): [0, {s.n_rows})" for s in versions)


def _source_ids(ws: LineageWorkspace, source: SourceKey, rows: ArrayLike | None) -> IdArray:
    versions = _versions(ws, source)
    if rows is None:
        return np.concatenate([s.row_ids() for s in versions]).astype(np.int64)
    numbers = np.atleast_1d(np.asarray(rows))
    if numbers.ndim != 1 or (numbers.size and numbers.dtype.kind not in "iu"):
        raise InvalidInputError(
            f"rows of sample_usage must be a 1-d sequence of row numbers (int); got {rows!r}"
        )
    numbers = numbers.astype(np.int64)
    valid = [(s, (numbers >= 0) & (numbers < s.n_rows)) for s in versions]
    nowhere = ~np.logical_or.reduce([ok for _, ok in valid]) if valid else numbers >= 0
    if numbers.size and nowhere.any():
        raise InvalidInputError(
            f"rows of sample_usage must be row numbers of source {source!r} (0-based data "
            f"rows; {_ranges(versions)}); got {numbers[nowhere][:5].tolist()!r}. "
            "Ask for rows that exist, or name the version with source=(name, version)."
        )
    parts = [(np.int64(s.index) << np.int64(ROW_BITS)) + numbers[ok] for s, ok in valid]
    return np.concatenate(parts).astype(np.int64)


def _check_row_ids(ws: LineageWorkspace, row_ids: ArrayLike) -> IdArray:
    ids = np.atleast_1d(np.asarray(row_ids))
    if ids.ndim != 1 or (ids.size and ids.dtype.kind not in "iu"):
        raise InvalidInputError(
            f"row_ids of sample_usage must be a 1-d sequence of int64 row ids; got {row_ids!r}"
        )
    ids = ids.astype(np.int64)
    if ids.size and int(ids.min()) < 0:
        raise InvalidInputError(
            f"row_ids of sample_usage must be non-negative row ids; got {int(ids.min())!r}"
        )
    known = {s.index: s for s in list_sources(ws)}
    for index, number in zip(source_indices(ids).tolist(), row_numbers(ids).tolist(),
                             strict=True):
        info = known.get(index)
        if info is None:
            raise UnknownSourceError(
                f"row_ids of sample_usage must be rows of registered sources; row id "
                f"{(index << ROW_BITS) | number} names source index {index}, which is not "
                f"registered (registered indices: {sorted(known)})"
            )
        if number >= info.n_rows:
            raise InvalidInputError(
                f"row_ids of sample_usage must be rows that exist; row id "
                f"{(index << ROW_BITS) | number} is row {number} of {_ranges([info])}"
            )
    return ids


def subject_targets(ws: LineageWorkspace, subject: object) -> SubjectRows:
    """Return a subject's rows with the records that show they are all (not yet proven)."""
    store: LineageStore = ws.lineage_store
    return store.subject_rows_records(_pseudonym(ws, subject))


def _pseudonym(ws: LineageWorkspace, subject: object) -> str:
    """Return ``subject`` if it is a pseudonym, else its keyed pseudonym."""
    return str(subject if is_pseudonym(subject) else ws.pseudonymize(subject))


def target_ids(ws: LineageWorkspace, row_ids: ArrayLike | None, subject: object,
               source: SourceKey | None, rows: ArrayLike | None) -> IdArray:
    """Return the row ids a usage query asks about (see the module docstring)."""
    given = sum(x is not None for x in (row_ids, subject, source))
    if given != 1 or (rows is not None and source is None):
        raise InvalidInputError(
            "sample_usage needs exactly one of row_ids=, subject= or source= (with rows=); "
            f"got row_ids={row_ids!r}, subject={subject!r}, source={source!r}, rows={rows!r}"
        )
    if subject is not None:
        return rows_of_subject(ws, _pseudonym(ws, subject))
    if source is not None:
        return _source_ids(ws, source, rows)
    return _check_row_ids(ws, row_ids)  # type: ignore[arg-type]  # given == 1
