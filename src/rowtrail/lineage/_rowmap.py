"""Row maps: which parent rows each output row of an operation came from.

An edge of the op DAG carries one row map. Maps keep what the operation already computed (a
boolean mask, a permutation, a slice) and materialise row numbers only when a query needs
them, so capture costs O(1) or one copy of an index vector: never O(elements). Masks and index
vectors are copied at capture, so later mutation by the user cannot rewrite history.

:class:`Ids` is the materialised answer for one node: a CSR layout (``offsets`` + ``int64``
source row ids, with a one-to-one fast path where ``offsets`` is ``None``) plus ``shared`` ids
that every row depends on (the sound "all rows" of row-mixing operations, kept once rather
than once per row).
"""

from __future__ import annotations

import abc
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "ALL",
    "INDIRECT",
    "STAT",
    "All",
    "Csr",
    "Group",
    "Ids",
    "Mask",
    "Repeat",
    "RowMap",
    "Segment",
    "Slice",
    "Take",
    "merge_ids",
]

_EMPTY: Final = np.empty(0, dtype=np.int64)


class Ids:
    """Materialised source row ids of every row of one node (see module docstring)."""

    __slots__ = ("ids", "n", "offsets", "shared")

    def __init__(
        self,
        n: int,
        ids: NDArray[np.int64],
        offsets: NDArray[np.int64] | None = None,
        shared: NDArray[np.int64] = _EMPTY,
    ) -> None:
        self.n = n
        self.ids = ids
        self.offsets = offsets
        self.shared = shared

    def csr_offsets(self) -> NDArray[np.int64]:
        """Return offsets, building ``0..n`` for the one-to-one layout."""
        if self.offsets is None:
            return np.arange(self.n + 1, dtype=np.int64)
        return self.offsets

    def row(self, i: int) -> NDArray[np.int64]:
        """Return the sorted distinct source ids of row ``i``."""
        if self.offsets is None:
            own = self.ids[i : i + 1]
            if self.shared.size == 0:
                return own.copy()
        else:
            own = self.ids[self.offsets[i] : self.offsets[i + 1]]
        if self.shared.size == 0:
            return np.unique(own)
        return np.union1d(own, self.shared)

    def all_ids(self) -> NDArray[np.int64]:
        """Return every distinct source id reaching any row, sorted."""
        if self.shared.size == 0:
            return np.unique(self.ids)
        return np.union1d(self.ids, self.shared)

    def rows_reaching(self, row_id: int) -> NDArray[np.int64]:
        """Return the rows (ascending) whose source ids include ``row_id``."""
        if self.shared.size and np.any(self.shared == row_id):
            return np.arange(self.n, dtype=np.int64)
        positions = np.flatnonzero(self.ids == row_id)
        if self.offsets is None:
            return positions.astype(np.int64)
        rows = np.searchsorted(self.offsets, positions, side="right") - 1
        return np.unique(rows).astype(np.int64)


def gather(parent: Ids, index: NDArray[np.integer[Any]]) -> Ids:
    """Return the Ids of rows ``index`` of ``parent`` (one output row per index)."""
    if parent.offsets is None:
        return Ids(len(index), parent.ids[index], None, parent.shared)
    starts = parent.offsets[index]
    lengths = parent.offsets[np.asarray(index) + 1] - starts
    offsets = np.zeros(len(index) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    positions = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1], dtype=np.int64)
    return Ids(len(index), parent.ids[positions], offsets, parent.shared)


def gather_csr(parent: Ids, offsets: NDArray[np.int64], index: NDArray[np.int64]) -> Ids:
    """Return Ids where output row ``i`` unites parent rows ``index[offsets[i]:offsets[i+1]]``."""
    per_entry = gather(parent, index)
    entry_offsets = per_entry.csr_offsets()
    return Ids(len(offsets) - 1, per_entry.ids, entry_offsets[offsets], parent.shared)


class RowMap(abc.ABC):
    """Base of row maps; ``apply`` composes the map with the parent's materialised Ids."""

    __slots__ = ()
    tag: str = "map"

    @abc.abstractmethod
    def apply(self, parent: Ids, n_out: int) -> Ids:
        """Return the Ids of the output rows this edge reaches."""


class Take(RowMap):
    """Output row ``i`` is parent row ``index[i]`` (integer indexing, permutations, take)."""

    __slots__ = ("index",)
    tag = "take"

    def __init__(self, index: NDArray[np.integer]) -> None:
        self.index = index

    def apply(self, parent: Ids, n_out: int) -> Ids:
        """Gather the parent rows, wrapping negative indices."""
        index = self.index
        if index.size and index.min() < 0:
            index = np.where(index < 0, index + parent.n, index)
        return gather(parent, index)


class Mask(RowMap):
    """Output rows are the parent rows where a (copied) boolean mask is true."""

    __slots__ = ("_index", "mask")
    tag = "mask"

    def __init__(self, mask: NDArray[np.bool_]) -> None:
        self.mask = mask
        self._index: NDArray[np.intp] | None = None

    def index(self) -> NDArray[np.intp]:
        """Return (and cache) the positions of the true entries."""
        if self._index is None:
            self._index = np.flatnonzero(self.mask)
        return self._index

    def apply(self, parent: Ids, n_out: int) -> Ids:
        """Gather the selected parent rows."""
        return gather(parent, self.index())


class Slice(RowMap):
    """Output row ``i`` is parent row ``start + i * step``."""

    __slots__ = ("start", "step")
    tag = "slice"

    def __init__(self, start: int, step: int) -> None:
        self.start = start
        self.step = step

    def apply(self, parent: Ids, n_out: int) -> Ids:
        """Slice the parent's Ids (a view in the one-to-one case)."""
        stop = self.start + n_out * self.step
        if parent.offsets is None:
            end = None if stop < 0 else stop
            return Ids(n_out, parent.ids[self.start : end : self.step], None, parent.shared)
        return gather(parent, np.arange(self.start, stop, self.step, dtype=np.int64))


class Csr(RowMap):
    """Output row ``i`` unites parent rows ``index[offsets[i]:offsets[i+1]]`` (unique, groups)."""

    __slots__ = ("index", "offsets")
    tag = "csr"

    def __init__(self, offsets: NDArray[np.int64], index: NDArray[np.int64]) -> None:
        self.offsets = offsets
        self.index = index

    def apply(self, parent: Ids, n_out: int) -> Ids:
        """Gather and regroup."""
        return gather_csr(parent, self.offsets, self.index)


class Repeat(RowMap):
    """Output row ``i`` is parent row ``i // factor`` (a reshape spreading each row)."""

    __slots__ = ("factor",)
    tag = "repeat"

    def __init__(self, factor: int) -> None:
        self.factor = factor

    def apply(self, parent: Ids, n_out: int) -> Ids:
        """Gather with integer division."""
        return gather(parent, np.arange(n_out, dtype=np.int64) // self.factor)


class Group(RowMap):
    """Output row ``i`` unites parent rows ``i*factor .. i*factor+factor-1`` (a reshape)."""

    __slots__ = ("factor",)
    tag = "group"

    def __init__(self, factor: int) -> None:
        self.factor = factor

    def apply(self, parent: Ids, n_out: int) -> Ids:
        """Regroup consecutive parent rows."""
        offsets = np.arange(0, n_out * self.factor + 1, self.factor, dtype=np.int64)
        return gather_csr(parent, offsets, np.arange(n_out * self.factor, dtype=np.int64))


class All(RowMap):
    """Every output row depends on every parent row (reductions, transposes, fallbacks)."""

    __slots__ = ()
    tag = "all"

    def apply(self, parent: Ids, n_out: int) -> Ids:
        """Share all parent ids across the output rows."""
        return Ids(n_out, _EMPTY, np.zeros(n_out + 1, dtype=np.int64), parent.all_ids())


class Segment(RowMap):
    """Output rows ``offset .. offset+n_parent-1`` are the parent rows (concatenation)."""

    __slots__ = ("offset",)
    tag = "segment"

    def __init__(self, offset: int) -> None:
        self.offset = offset

    def apply(self, parent: Ids, n_out: int) -> Ids:
        """Embed the parent's rows at ``offset``; other rows get nothing from this edge."""
        own = parent.csr_offsets()
        offsets = np.empty(n_out + 1, dtype=np.int64)
        offsets[: self.offset + 1] = 0
        offsets[self.offset + 1 : self.offset + parent.n + 1] = own[1:]
        offsets[self.offset + parent.n + 1 :] = own[-1]
        return Ids(n_out, parent.ids, offsets, parent.shared)


class _Marker:
    """Edge markers that carry no row map."""

    __slots__ = ("tag",)

    def __init__(self, tag: str) -> None:
        self.tag = tag

    def __repr__(self) -> str:
        return self.tag.upper()


ALL: Final = All()
# A broadcast input (a fitted statistic, a row broadcast over all rows): every output row
# depends on all of its rows; reported by statistics(), not by rows_of().
STAT: Final = _Marker("stat")
# A selector (mask or index array) that decided which rows survive; kept in the DAG.
INDIRECT: Final = _Marker("indirect")


def segments_concat(parts: list[Ids], n_out: int) -> Ids:
    """Concatenate the Ids of parts that tile the output rows in order."""
    shared = _union_shared(parts)
    if all(p.offsets is None for p in parts):
        return Ids(n_out, np.concatenate([p.ids for p in parts]), None, shared)
    offsets = [np.zeros(1, dtype=np.int64)]
    base = 0
    for part in parts:
        offsets.append(part.csr_offsets()[1:] + base)
        base += len(part.ids)
    return Ids(n_out, np.concatenate([p.ids for p in parts]), np.concatenate(offsets), shared)


def _union_shared(parts: list[Ids]) -> NDArray[np.int64]:
    shared = [p.shared for p in parts if p.shared.size]
    if not shared:
        return _EMPTY
    return shared[0] if len(shared) == 1 else np.unique(np.concatenate(shared))


def merge_ids(parts: list[Ids], n_out: int) -> Ids:
    """Unite per-row ids of several edges into one Ids (duplicates kept; queries dedupe)."""
    if not parts:
        return Ids(n_out, _EMPTY, np.zeros(n_out + 1, dtype=np.int64))
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    shared = _union_shared(parts)
    if all(
        p.offsets is None and (p.ids is first.ids or np.array_equal(p.ids, first.ids))
        for p in parts
    ):
        return Ids(n_out, first.ids, None, shared)
    rows = []
    for part in parts:
        lengths = np.diff(part.csr_offsets())
        rows.append(np.repeat(np.arange(n_out, dtype=np.int64), lengths))
    all_rows = np.concatenate(rows)
    order = np.argsort(all_rows, kind="stable")
    ids = np.concatenate([p.ids for p in parts])[order]
    offsets = np.zeros(n_out + 1, dtype=np.int64)
    np.cumsum(np.bincount(all_rows, minlength=n_out), out=offsets[1:])
    return Ids(n_out, ids, offsets, shared)
