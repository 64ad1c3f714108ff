"""Rebuild a pipeline without some source rows while every other row keeps its row id.

Inside ``with excluding_rows(row_ids):`` the source readers that support it
(``rt.pandas.read_csv`` / ``read_parquet`` and ``rt.load_csv``) register the file as usual
(same bytes, same source, same row ids) and then drop the excluded rows as a recorded filter,
so the frame or array a user's unchanged pipeline builds from them is the data as it would be
without those rows, and its lineage shows which samples disappeared and which changed. An
erasure job uses it to rebuild training data (:meth:`ErasureJob.excluding`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rowtrail.ids import ROW_BITS

__all__ = ["excluded_rows", "excluding_active", "excluding_rows"]

_EXCLUDED: ContextVar[dict[int, NDArray[np.int64]] | None] = ContextVar(
    "rowtrail_excluded_rows", default=None
)


@contextmanager
def excluding_rows(row_ids: ArrayLike) -> Iterator[None]:
    """Make the source readers drop ``row_ids`` (packed row ids) inside the block.

    Examples
    --------
    >>> import numpy as np
    >>> with excluding_rows(np.array([(3 << 40) | 7])):
    ...     excluded_rows(3).tolist()
    [7]
    >>> excluded_rows(3).size
    0
    """
    ids = np.unique(np.asarray(row_ids, dtype=np.int64))
    by_source: dict[int, NDArray[np.int64]] = {}
    for index in np.unique(ids >> np.int64(ROW_BITS)).tolist():
        part = ids[(ids >> np.int64(ROW_BITS)) == index]
        by_source[int(index)] = (part & np.int64((1 << ROW_BITS) - 1)).astype(np.int64)
    token = _EXCLUDED.set(by_source)
    try:
        yield
    finally:
        _EXCLUDED.reset(token)


def excluding_active() -> bool:
    """Whether the current block excludes any rows (readers then resolve sources eagerly)."""
    return bool(_EXCLUDED.get())


def excluded_rows(source_index: int) -> NDArray[np.int64]:
    """Return the row numbers of a source the current block excludes (empty if none)."""
    found = _EXCLUDED.get()
    if not found or source_index not in found:
        return np.zeros(0, dtype=np.int64)
    return found[source_index]


def keep_mask(source_index: int, n_rows: int) -> NDArray[np.bool_] | None:
    """Return the rows to keep of a source of ``n_rows`` rows, or None to keep them all."""
    numbers = excluded_rows(source_index)
    if not numbers.size:
        return None
    keep = np.ones(n_rows, dtype=bool)
    keep[numbers[numbers < n_rows]] = False
    return keep
