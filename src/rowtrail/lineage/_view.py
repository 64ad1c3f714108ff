"""Result types shared by every lineage adapter (NumPy arrays, pandas/polars/Spark frames).

Owns :class:`SourceRows` (the answer to "which source rows"), :class:`OpInfo` (one recorded
operation), :class:`StatisticsDependency` (rows a fitted statistic was computed from) and the
:class:`LineageView` protocol listing the queries every ``rt.lineage(obj)`` view answers.
Names here are stable: adapters in other modules build on them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rowtrail.ids import ROW_BITS, row_numbers

__all__ = ["LineageView", "OpInfo", "SourceRows", "StatisticsDependency"]


class SourceRows(Mapping[str, list[int]]):
    """Source rows of something, as ``{source name: sorted row numbers}``.

    A read-only mapping; ``pairs()`` gives the same content as ``(source, row)`` tuples and
    ``row_ids`` as packed ``int64`` row ids (see :mod:`rowtrail.ids`).

    Parameters
    ----------
    rows : mapping of str to iterable of int
        Row numbers per source name; duplicates are dropped and numbers sorted.
    row_ids : array of int64, optional
        The packed row ids these rows came from (kept for exact downstream use).

    Examples
    --------
    >>> r = SourceRows({"b.csv": [3, 1], "a.csv": [0]})
    >>> dict(r)
    {'a.csv': [0], 'b.csv': [1, 3]}
    >>> r.pairs()
    [('a.csv', 0), ('b.csv', 1), ('b.csv', 3)]
    """

    __slots__ = ("_rows", "row_ids")

    def __init__(
        self,
        rows: Mapping[str, Sequence[int] | NDArray[np.int64]],
        *,
        row_ids: ArrayLike | None = None,
    ) -> None:
        self._rows: dict[str, list[int]] = {
            str(name): sorted({int(n) for n in numbers}) for name, numbers in sorted(rows.items())
        }
        ids = np.asarray([] if row_ids is None else row_ids, dtype=np.int64)
        self.row_ids: NDArray[np.int64] = ids

    @classmethod
    def from_row_ids(cls, row_ids: ArrayLike, label: Callable[[int], str]) -> SourceRows:
        """Group packed row ids by source; ``label(source_index)`` names each source."""
        ids = np.asarray(row_ids, dtype=np.int64)
        if ids.size == 1:  # the one-to-one case: no grouping needed
            value = int(ids[0])
            return cls({label(value >> ROW_BITS): [value & ((1 << ROW_BITS) - 1)]}, row_ids=ids)
        ids = np.unique(ids)
        if ids.size == 0:
            return cls({}, row_ids=ids)
        sources = ids >> ROW_BITS
        cuts = np.flatnonzero(np.diff(sources)) + 1
        starts = np.concatenate(([0], cuts))
        numbers = row_numbers(ids)
        grouped: dict[str, list[int]] = {}
        for start, chunk in zip(starts, np.split(numbers, cuts), strict=True):
            grouped.setdefault(label(int(sources[start])), []).extend(chunk.tolist())
        return cls(grouped, row_ids=ids)

    def __getitem__(self, name: str) -> list[int]:
        return self._rows[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def pairs(self) -> list[tuple[str, int]]:
        """Return ``(source name, row number)`` tuples, sorted by source then row."""
        return [(name, n) for name, numbers in self._rows.items() for n in numbers]

    @property
    def n_rows(self) -> int:
        """Number of distinct source rows."""
        return sum(len(v) for v in self._rows.values())

    def to_json(self) -> dict[str, list[int]]:
        """Return a plain JSON-ready dict."""
        return {name: list(numbers) for name, numbers in self._rows.items()}

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return self._rows == {k: list(v) for k, v in other.items()}
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        shown = {k: (v if len(v) <= 8 else [*v[:8], "..."]) for k, v in self._rows.items()}
        return f"SourceRows({shown})"


@dataclass(frozen=True, slots=True)
class OpInfo:
    """One recorded operation (an edge of the op DAG).

    Attributes
    ----------
    name : str
        Operation name, e.g. ``"getitem[bool]"``, ``"subtract"``, ``"StandardScaler.transform"``.
    kind : str
        OpenLineage-style kind: ``identity``, ``transformation``, ``filter``, ``sort``,
        ``join``, ``aggregation``, ``conditional``, ``source``, ``write`` or ``unknown``.
    params : mapping
        JSON-ready parameters (axis, shapes, ...).
    location : str
        ``file:line`` of the user code that ran it.
    created_at : datetime
        When it ran (UTC).
    fallback : bool
        True when lineage fell back to "all input rows" because the op was not understood.
    node : str
        Id of the output node.
    inputs : tuple of str
        Ids of the input nodes.
    depth : int
        Distance from the queried object (0 = the op that produced it); set by ``ancestors``.
    statistics : bool
        True when the op was fitted on rows (see :class:`StatisticsDependency`).
    """

    name: str
    kind: str
    params: Mapping[str, Any]
    location: str
    created_at: datetime
    fallback: bool = False
    node: str = ""
    inputs: tuple[str, ...] = ()
    depth: int = 0
    statistics: bool = False

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "name": self.name,
            "kind": self.kind,
            "params": dict(self.params),
            "location": self.location,
            "created_at": self.created_at.isoformat(),
            "fallback": self.fallback,
            "node": self.node,
            "inputs": list(self.inputs),
            "depth": self.depth,
            "statistics": self.statistics,
        }


@dataclass(frozen=True, slots=True)
class StatisticsDependency:
    """A fitted statistic (a mean, a scaler, an encoder vocabulary) and the rows it used.

    Every output row of ``op`` depends on all ``fitted_on`` rows as well as on its own
    source rows; erasure of any of them invalidates the statistic.
    """

    op: str
    node: str
    fitted_on: SourceRows
    location: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "op": self.op,
            "node": self.node,
            "fitted_on": self.fitted_on.to_json(),
            "location": self.location,
            "params": dict(self.params),
        }


@runtime_checkable
class LineageView(Protocol):
    """The queries ``rt.lineage(obj)`` answers for every kind of traced object."""

    @property
    def n_rows(self) -> int:
        """Number of rows of the object."""
        ...

    def sources(self) -> dict[str, list[int]]:
        """Return ``{source name: sorted row numbers}`` of every source row that reached it."""
        ...

    def rows_of(self, i: int) -> SourceRows:
        """Return the source rows of derived row ``i`` (statistics dependencies excluded)."""
        ...

    def row_ids(self, i: int) -> NDArray[np.int64]:
        """Return the packed source row ids of derived row ``i``, ascending."""
        ...

    def derived_from(self, source: str, row: int) -> NDArray[np.int64]:
        """Return the rows of this object that source row ``(source, row)`` reached."""
        ...

    def ops(self) -> list[OpInfo]:
        """Return the op chain that produced the object, oldest first."""
        ...

    def ancestors(self, depth: int | None = None) -> Sequence[OpInfo]:
        """Return the ops up to ``depth`` steps back, nearest first (a list or lazy sequence)."""
        ...

    def statistics(self) -> list[StatisticsDependency]:
        """Return the fitted statistics the object depends on, oldest first."""
        ...
