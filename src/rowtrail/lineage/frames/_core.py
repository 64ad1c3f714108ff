"""Engine-neutral row lineage of frames: slots, group nodes, the op DAG and queries.

A traced frame (pandas, polars or Spark) carries one or more hidden **slots** per row. A slot
is an ``int64`` value per row of one of two kinds:

- ``ids``: a packed source row id (``source_index << 40 | row_number``), or ``-1`` where the
  row has no row from that side (the missing side of an outer join, a concat of frames that
  lack the slot);
- ``group``: a group code into a :class:`GroupNode`, which remembers the input rows of every
  group (an aggregation, a pivot, or the "all rows" fallback, which is one group).

A join adds the slots of both sides, a concat along rows unions them, and a group-by replaces
them by one group slot: pandas keeps its own per-row group codes (``ngroup``) and polars/Spark
keep the group keys, so no per-group id lists are built eagerly. Queries resolve group slots
recursively through cached CSR indexes (``order`` + ``offsets``) built on first use.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rowtrail.errors import LineageError, LineageFallbackWarning
from rowtrail.ids import ROW_BITS
from rowtrail.lineage._sources import SourceInfo
from rowtrail.lineage.frames._ops import OpNode, caller_location, fresh_name, record_op

__all__ = [
    "IDS",
    "FrameState",
    "GroupNode",
    "IdArray",
    "OpNode",
    "PendingSource",
    "RowLineage",
    "Slot",
    "caller_location",
    "fallback_lineage",
    "fresh_name",
    "record_op",
    "source_of",
]

IdArray = NDArray[np.int64]
_EMPTY: IdArray = np.empty(0, dtype=np.int64)


@dataclass(frozen=True, eq=False)
class Slot:
    """One hidden lineage column: packed source ids, or group codes into ``group``.

    A group slot with ``stat`` set records a fitted statistic: the op ``stat`` computed a value
    from the rows of each group and wrote it onto the rows holding that group's code (``-1``:
    the row did not use it). ``in_rows`` says whether those rows also count as the row's own
    lineage (``rows_of``): false for a global statistic broadcast onto rows (a mean used to
    centre or fill), true where the row's value *is* the group aggregate (``transform``,
    ``over``), which keeps the aggregation lineage those ops always had.
    """

    kind: str  # "ids" or "group"
    group: GroupNode | None = None
    pending: PendingSource | None = None  # ids slot holding row numbers of a pending source
    stat: OpNode | None = None
    in_rows: bool = True

    def same_as(self, other: Slot) -> bool:
        """Whether two slots hold values of the same meaning (so a concat can stack them)."""
        return (
            self.kind == other.kind
            and self.group is other.group
            and self.pending is other.pending
            and self.stat is other.stat
            and self.in_rows == other.in_rows
        )


class PendingSource:
    """A source whose registration (digest, ledger event) finishes after the data is read.

    A lazy scan carries plain row numbers; the source is registered, and row numbers become
    packed row ids, the first time the rows are produced (``collect``, an export) or queried,
    so hashing the file overlaps with running the plan instead of adding to it.
    """

    def __init__(self, register: Callable[[], SourceInfo]) -> None:
        self._register: Callable[[], SourceInfo] | None = register
        self._info: SourceInfo | None = None

    @property
    def info(self) -> SourceInfo:
        """The registered source (registering it now if needed)."""
        if self._info is None:
            register, self._register = self._register, None
            if register is None:  # pragma: no cover - a failed registration is not retried
                raise LineageError("source registration failed earlier; read the file again")
            self._info = register()
        return self._info

    @property
    def base(self) -> int:
        """``source_index << 40``: add it to a row number to get the packed row id."""
        return self.info.index << ROW_BITS


IDS = Slot("ids")
_MAX_PENDING = 64


def _gather(values: Sequence[IdArray], pos: NDArray[np.intp]) -> list[IdArray]:
    if pos.size and pos.min() < 0:
        safe = np.maximum(pos, 0)
        return [np.where(pos >= 0, np.take(v, safe), -1) for v in values]
    return [np.take(v, pos) for v in values]


class RowLineage:
    """Slots of a frame: one ``int64`` array per slot, one value per row.

    Values may be pending: ``take`` and the concatenations keep a reference to their input and
    the positions the engine already computed, and gather only when a query reads ``values``
    (capture then costs one reference, not one ``int64`` gather per slot and op). Chains
    deeper than :data:`_MAX_PENDING` are gathered at once, so a query never recurses far.
    """

    __slots__ = ("_thunk", "_values", "depth", "n_rows", "slots")

    def __init__(
        self,
        slots: Sequence[Slot],
        values: Sequence[IdArray] | None,
        n_rows: int,
        *,
        thunk: Callable[[], Sequence[IdArray]] | None = None,
        depth: int = 0,
    ) -> None:
        self.slots = tuple(slots)
        self._values = None if values is None else tuple(values)
        self._thunk = thunk
        self.n_rows = int(n_rows)
        self.depth = depth

    @property
    def values(self) -> tuple[IdArray, ...]:
        """The slot arrays (gathered now if pending)."""
        if self._values is None:
            thunk, self._thunk = self._thunk, None
            self._values = tuple(thunk()) if thunk is not None else ()
        return self._values

    def _later(
        self, slots: Sequence[Slot], n_rows: int, depth: int, thunk: Callable[[], Sequence[IdArray]]
    ) -> RowLineage:
        return RowLineage(slots, None, n_rows, thunk=thunk, depth=depth)._settle()

    @classmethod
    def from_ids(cls, ids: IdArray) -> RowLineage:
        """Lineage of a freshly read source: one ids slot."""
        return cls((IDS,), (ids,), len(ids))

    def take(self, positions: NDArray[np.intp] | NDArray[np.int64]) -> RowLineage:
        """Rows at ``positions`` of this lineage; ``-1`` positions give rows with no lineage."""
        pos = np.asarray(positions, dtype=np.intp)
        return self._later(self.slots, len(pos), self.depth + 1, lambda: _gather(self.values, pos))

    def ids_of_rows(self, rows: NDArray[np.intp] | NDArray[np.int64]) -> IdArray:
        """Return the sorted unique source row ids of ``rows`` (group slots resolved)."""
        parts: list[IdArray] = []
        for slot, values in zip(self.slots, self.values, strict=True):
            if not slot.in_rows:
                continue
            picked = values[rows]
            picked = picked[picked >= 0]
            if slot.kind == "ids":
                parts.append(picked)
            elif slot.group is not None and picked.size:
                parts.append(slot.group.ids_of_groups(picked))
        return np.unique(np.concatenate(parts)) if parts else _EMPTY

    def rows_reaching(self, target: int) -> NDArray[np.intp]:
        """Return the rows (ascending) whose lineage includes source row id ``target``."""
        hits = np.zeros(self.n_rows, dtype=bool)
        for slot, values in zip(self.slots, self.values, strict=True):
            if not slot.in_rows:
                continue
            if slot.kind == "ids":
                hits |= values == target
            elif slot.group is not None:
                groups = slot.group.groups_reaching(target)
                if groups.size == 1:
                    hits |= values == groups[0]
                elif groups.size:
                    hits |= np.isin(values, groups)
        return np.flatnonzero(hits)

    def pairs(self, rows: NDArray[np.intp]) -> tuple[NDArray[np.intp], IdArray]:
        """Return ``(k, id)`` pairs: source row id ``id`` reached ``rows[k]`` (vectorized)."""
        ks: list[NDArray[np.intp]] = []
        ids: list[IdArray] = []
        for slot, values in zip(self.slots, self.values, strict=True):
            if not slot.in_rows:
                continue
            picked = values[rows]
            keep = np.flatnonzero(picked >= 0)
            if slot.kind == "ids":
                ks.append(keep)
                ids.append(picked[keep])
            elif slot.group is not None and keep.size:
                owner, input_rows = slot.group.expand(picked[keep])
                inner_k, inner_ids = slot.group.input.pairs(input_rows)
                ks.append(keep[owner[inner_k]])
                ids.append(inner_ids)
        if not ks:
            return np.empty(0, dtype=np.intp), _EMPTY
        return np.concatenate(ks), np.concatenate(ids)

    def csr(self) -> tuple[NDArray[np.int64], IdArray]:
        """Return ``(offsets, ids)``: the sorted unique source row ids of every row."""
        k, ids = self.pairs(np.arange(self.n_rows, dtype=np.intp))
        if k.size == self.n_rows and (k.size < 2 or bool(np.all(k[1:] > k[:-1]))):
            # One id a row, in row order (a single table, or 1:1 joins): nothing to sort.
            return np.arange(self.n_rows + 1, dtype=np.int64), np.asarray(ids, dtype=np.int64)
        order = np.lexsort((ids, k))
        k, ids = k[order], ids[order]
        if k.size:
            keep = np.concatenate(([True], (np.diff(k) != 0) | (np.diff(ids) != 0)))
            k, ids = k[keep], ids[keep]
        counts = np.bincount(k, minlength=self.n_rows)
        return np.concatenate(([0], np.cumsum(counts))).astype(np.int64), ids

    def all_ids(self) -> IdArray:
        """Return every source row id reaching any row."""
        return self.ids_of_rows(np.arange(self.n_rows))

    @staticmethod
    def concat_rows(parts: Sequence[RowLineage]) -> RowLineage:
        """Stack lineages of frames concatenated along rows, uniting equal slots."""
        slots: list[Slot] = []
        placement: list[list[int]] = []  # per part: the union slot of each of its slots
        for part in parts:
            taken: list[int] = []
            for slot in part.slots:
                index = next(
                    (i for i, s in enumerate(slots) if s.same_as(slot) and i not in taken), None
                )
                if index is None:
                    slots.append(slot)
                    index = len(slots) - 1
                taken.append(index)
            placement.append(taken)
        n_rows = sum(p.n_rows for p in parts)

        def stack() -> list[IdArray]:
            columns: list[list[IdArray]] = [[] for _ in slots]
            for part, taken in zip(parts, placement, strict=True):
                for index, values in zip(taken, part.values, strict=True):
                    columns[index].append(values)
                for i in set(range(len(slots))) - set(taken):
                    columns[i].append(np.full(part.n_rows, -1, dtype=np.int64))
            return [np.concatenate(c) if c else _EMPTY for c in columns]

        depth = max((p.depth for p in parts), default=0) + 1
        return RowLineage(slots, None, n_rows, thunk=stack, depth=depth)._settle()

    @staticmethod
    def concat_columns(parts: Sequence[RowLineage]) -> RowLineage:
        """Side-by-side lineages of row-aligned frames (a join result, a concat along columns)."""
        slots = tuple(s for p in parts for s in p.slots)
        depth = max((p.depth for p in parts), default=0) + 1
        lineage = RowLineage(
            slots,
            None,
            parts[0].n_rows if parts else 0,
            depth=depth,
            thunk=lambda: [v for p in parts for v in p.values],
        )
        return lineage._settle()

    def _settle(self) -> RowLineage:
        """Gather now if the pending chain grew too deep."""
        if self.depth > _MAX_PENDING:
            _ = self.values
            self.depth = 0
        return self


class GroupNode:
    """Input rows of each output group of an aggregation (or of the "all rows" fallback).

    Parameters
    ----------
    materialize : callable
        Returns ``(codes, input)``: the group code of every input row (``-1`` for rows in no
        group, e.g. null keys pandas drops) and the input's :class:`RowLineage`. Called once,
        on the first query, so capture costs nothing beyond what the engine computed anyway.
    """

    def __init__(self, materialize: Callable[[], tuple[IdArray, RowLineage]]) -> None:
        self._materialize: Callable[[], tuple[IdArray, RowLineage]] | None = materialize
        self._codes: IdArray = _EMPTY
        self._input: RowLineage | None = None
        self._order: NDArray[np.intp] | None = None
        self._offsets: NDArray[np.intp] | None = None

    @property
    def input(self) -> RowLineage:
        """The lineage of the grouped input rows."""
        self._load()
        if self._input is None:  # pragma: no cover - _load always sets it
            raise LineageError("group node has no input lineage")
        return self._input

    @property
    def codes(self) -> IdArray:
        """Group code of each input row."""
        self._load()
        return self._codes

    def _load(self) -> None:
        if self._materialize is not None:
            codes, lineage = self._materialize()
            self._codes = np.asarray(codes, dtype=np.int64)
            self._input = lineage
            self._materialize = None

    def _index(self) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        if self._order is None or self._offsets is None:
            codes = self.codes
            valid = codes >= 0
            n_groups = int(codes.max()) + 1 if codes.size and valid.any() else 0
            counts = np.bincount(codes[valid], minlength=n_groups)
            self._offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.intp)
            order = np.argsort(np.where(valid, codes, n_groups), kind="stable")
            self._order = order[: int(valid.sum())].astype(np.intp)
        return self._order, self._offsets

    def input_rows(self, groups: IdArray) -> NDArray[np.intp]:
        """Return the input rows of the given group codes."""
        order, offsets = self._index()
        groups = groups[(groups >= 0) & (groups < len(offsets) - 1)]
        if groups.size == 1:
            g = int(groups[0])
            return order[offsets[g] : offsets[g + 1]]
        chunks = [order[offsets[g] : offsets[g + 1]] for g in np.unique(groups).tolist()]
        return np.concatenate(chunks) if chunks else np.empty(0, dtype=np.intp)

    def expand(self, groups: IdArray) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        """Return ``(owner, input_rows)``: ``input_rows[j]`` is in group ``groups[owner[j]]``."""
        order, offsets = self._index()
        valid = (groups >= 0) & (groups < len(offsets) - 1)
        g = np.where(valid, groups, 0)
        starts = offsets[g]
        counts = np.where(valid, offsets[g + 1] - starts, 0)
        owner = np.repeat(np.arange(len(groups), dtype=np.intp), counts)
        within = np.arange(int(counts.sum()), dtype=np.intp) - np.repeat(
            np.cumsum(counts) - counts, counts
        )
        return owner, order[np.repeat(starts, counts) + within]

    def ids_of_groups(self, groups: IdArray) -> IdArray:
        """Return the source row ids that reached the given groups."""
        return self.input.ids_of_rows(self.input_rows(groups))

    def groups_reaching(self, target: int) -> IdArray:
        """Return the group codes whose rows include source row id ``target``."""
        rows = self.input.rows_reaching(target)
        codes = self.codes[rows]
        return np.unique(codes[codes >= 0])


def fallback_lineage(
    source: RowLineage | Callable[[], RowLineage], n_rows: int, op: str, *, warn: bool = True
) -> RowLineage:
    """Lineage where each of ``n_rows`` rows depends on every row of ``source`` (sound).

    Used for reductions (where it is exact) and for operations the adapter does not understand
    (where it over-approximates and warns with :class:`~rowtrail.errors.LineageFallbackWarning`).
    """
    if warn:
        warnings.warn(
            f"rowtrail does not follow rows through {op}; lineage of its result falls back to "
            "all input rows (sound, not exact). Use a supported operation to keep exact lineage.",
            LineageFallbackWarning,
            stacklevel=3,
        )

    def materialize() -> tuple[IdArray, RowLineage]:
        lineage = source() if callable(source) else source
        return np.zeros(lineage.n_rows, dtype=np.int64), lineage

    node = GroupNode(materialize)
    return RowLineage((Slot("group", node),), (np.zeros(n_rows, dtype=np.int64),), n_rows)


@dataclass
class FrameState:
    """What a traced frame knows besides its rows: the op that made it and its sources."""

    node: OpNode
    known: dict[int, SourceInfo]
    workspace: Any
    pending: tuple[PendingSource, ...] = ()

    @property
    def sources(self) -> dict[int, SourceInfo]:
        """Every source the frame read, by source index (pending ones are registered now)."""
        if self.pending:
            self.known.update({p.info.index: p.info for p in self.pending})
            self.pending = ()
        return self.known

    def resolve(self) -> None:
        """Register any pending source now."""
        _ = self.sources

    def derive(self, node: OpNode, *others: FrameState) -> FrameState:
        """State of a frame derived from this one (and ``others``) by ``node``."""
        known = dict(self.known)
        pending = list(self.pending)
        for other in others:
            known.update(other.known)
            pending.extend(p for p in other.pending if p not in pending)
        return FrameState(node=node, known=known, workspace=self.workspace, pending=tuple(pending))


def source_of(sources: Mapping[int, SourceInfo], name: str) -> SourceInfo:
    """Return the source named ``name`` among ``sources`` (the newest version if several)."""
    found = [s for s in sources.values() if s.name == name]
    if not found:
        from rowtrail.errors import UnknownSourceError

        raise UnknownSourceError(
            f"source of derived_from must be one of the frame's sources "
            f"{sorted({s.name for s in sources.values()})}; got {name!r}"
        )
    return max(found, key=lambda s: s.index)
