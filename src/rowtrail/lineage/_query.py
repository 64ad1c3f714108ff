"""``rt.lineage(traced_array)``: the :class:`ArrayLineage` view and its queries.

A view holds one DAG node (the array's state when the view was made) and answers the
:class:`~rowtrail.lineage._view.LineageView` queries. Row ids are materialised on the first
row query and cached on the node (CSR with a one-to-one fast path); later ``rows_of`` calls
are a slice, ``derived_from`` a scan of one ``int64`` vector.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, overload

import numpy as np
from numpy.typing import NDArray

from rowtrail.errors import InvalidInputError, UnknownSourceError
from rowtrail.ids import ROW_BITS
from rowtrail.lineage._array import TracedArray
from rowtrail.lineage._dispatch import register_lineage_handler
from rowtrail.lineage._node import Node, ancestor_nodes, materialize
from rowtrail.lineage._rowmap import STAT
from rowtrail.lineage._schema import ValidationReport
from rowtrail.lineage._view import OpInfo, SourceRows, StatisticsDependency

__all__ = ["ArrayLineage", "OpList", "op_info"]


def _is_index(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def op_info(node: Node, depth: int = 0) -> OpInfo:
    """Return the public record of one node."""
    maps = node.maps or ()
    return OpInfo(
        name=node.name,
        kind=node.kind,
        params=dict(node.params or {}),
        location=node.location,
        created_at=datetime.fromtimestamp(node.t, UTC),
        fallback=node.fallback,
        node=f"n{node.serial}",
        inputs=tuple(f"n{p.serial}" for p in node.parents),
        depth=depth,
        statistics=any(m is STAT for m in maps),
    )


class OpList(Sequence[OpInfo]):
    """A list of ops built lazily from DAG nodes (records are made when read)."""

    __slots__ = ("_depths", "_nodes")

    def __init__(self, nodes: list[Node], depths: Sequence[int]) -> None:
        self._nodes = nodes
        self._depths = depths

    def __len__(self) -> int:
        return len(self._nodes)

    @overload
    def __getitem__(self, i: int) -> OpInfo: ...

    @overload
    def __getitem__(self, i: slice) -> list[OpInfo]: ...

    def __getitem__(self, i: int | slice) -> OpInfo | list[OpInfo]:
        if isinstance(i, slice):
            return [op_info(n, d) for n, d in zip(self._nodes[i], self._depths[i], strict=True)]
        return op_info(self._nodes[i], self._depths[i])

    def __iter__(self) -> Iterator[OpInfo]:
        for node, depth in zip(self._nodes, self._depths, strict=True):
            yield op_info(node, depth)

    def __repr__(self) -> str:
        return f"OpList({[n.name for n in self._nodes[:10]]}{'...' if len(self) > 10 else ''})"


class ArrayLineage:
    """Lineage view of a traced array (see :class:`~rowtrail.lineage.LineageView`).

    Examples
    --------
    >>> import tempfile, numpy as np, rowtrail as rt
    >>> ws = rt.init(tempfile.mkdtemp())
    >>> X = rt.track(np.arange(12.0).reshape(6, 2), source="demo", workspace=ws)
    >>> L = rt.lineage(X[X[:, 0] > 4])
    >>> L.sources(), dict(L.rows_of(0)), L.derived_from("demo", 5).tolist()
    ({'demo': [3, 4, 5]}, {'demo': [3]}, [2])
    """

    def __init__(self, node: Node) -> None:
        self.node = node
        self._labels: dict[int, str] | None = None
        self._infos: dict[str, Any] | None = None

    @property
    def n_rows(self) -> int:
        """Number of rows of the object."""
        return self.node.n_rows

    # ------------------------------------------------------------ sources
    def _source_nodes(self) -> list[Node]:
        nodes, _ = ancestor_nodes(self.node)
        return [
            n
            for n in [self.node, *nodes]
            if n.kind == "source" and getattr(n, "source", None) is not None
        ]

    def _label_map(self) -> dict[int, str]:
        if self._labels is None:
            infos = {n.source.index: n.source for n in self._source_nodes()}
            names = [info.name for info in infos.values()]
            self._labels = {
                index: info.name if names.count(info.name) == 1 else f"{info.name}@v{info.version}"
                for index, info in infos.items()
            }
            self._infos = {self._labels[i]: info for i, info in infos.items()}
        return self._labels

    def _label(self, source_index: int) -> str:
        return self._label_map().get(source_index, f"source#{source_index}")

    def sources(self, *, include_statistics: bool = False) -> dict[str, list[int]]:
        """Return ``{source name: sorted row numbers}`` of the source rows in the object.

        Parameters
        ----------
        include_statistics : bool
            Also count rows that reached it only through fitted statistics.
        """
        ids = materialize(self.node).all_ids()
        if include_statistics:
            extra = [dep.fitted_on.row_ids for dep in self.statistics()]
            ids = np.unique(np.concatenate([ids, *extra]))
        return SourceRows.from_row_ids(ids, self._label).to_json()

    def _check_row(self, i: int, caller: str) -> int:
        if not _is_index(i) or not -self.n_rows <= i < self.n_rows:
            raise InvalidInputError(
                f"i of {caller} must be a row number in [0, {self.n_rows}); got {i!r}. "
                "Use len(obj) to see how many rows the object has."
            )
        return int(i) % self.n_rows

    def row_ids(self, i: int) -> NDArray[np.int64]:
        """Return the packed source row ids of row ``i``, ascending."""
        return materialize(self.node).row(self._check_row(i, "row_ids"))

    def rows_of(self, i: int) -> SourceRows:
        """Return the source rows of row ``i`` as ``{source: [row numbers]}`` (``.pairs()``)."""
        row = self._check_row(i, "rows_of")
        return SourceRows.from_row_ids(materialize(self.node).row(row), self._label)

    def derived_from(self, source: str, row: int) -> NDArray[np.int64]:
        """Return the rows of this object (ascending) that source row ``(source, row)`` reached."""
        self._label_map()
        infos = self._infos or {}
        info = infos.get(source)
        if info is None:
            raise UnknownSourceError(
                f"source of derived_from must be one of {sorted(infos)}; got {source!r}"
            )
        if not _is_index(row) or not 0 <= row < info.n_rows:
            raise InvalidInputError(
                f"row of derived_from must be in [0, {info.n_rows}) for source {source!r}; "
                f"got {row!r}"
            )
        return materialize(self.node).rows_reaching((info.index << ROW_BITS) | int(row))

    # ------------------------------------------------------------ ops
    def ops(self) -> list[OpInfo]:
        """Return every op that produced the object, oldest first (sources included)."""
        nodes, _ = ancestor_nodes(self.node)
        nodes.append(self.node)
        nodes.sort(key=lambda n: n.serial)
        return [op_info(n) for n in nodes]

    def ancestors(self, depth: int | None = None) -> OpList:
        """Return the ancestor ops up to ``depth`` steps back, nearest first (built lazily)."""
        if depth is not None and (not _is_index(depth) or depth < 0):
            raise InvalidInputError(
                f"depth of ancestors must be an int >= 0 or None; got {depth!r}"
            )
        nodes, depths = ancestor_nodes(self.node, None if depth is None else int(depth))
        return OpList(nodes, depths)

    def statistics(self) -> list[StatisticsDependency]:
        """Return the fitted statistics (means, scalers, broadcast rows) the object depends on."""
        nodes, _ = ancestor_nodes(self.node)
        found: dict[int, Node] = {}
        for member in [self.node, *nodes]:
            for k, parent in enumerate(member.parents):
                if member.map_of(k) is STAT:
                    found[parent.serial] = parent
        return [
            StatisticsDependency(
                op=stat.name,
                node=f"n{stat.serial}",
                fitted_on=SourceRows.from_row_ids(materialize(stat).all_ids(), self._label),
                location=stat.location,
                params=dict(stat.params or {}),
            )
            for _, stat in sorted(found.items())
        ]

    def validation(self) -> list[ValidationReport]:
        """Return the ingestion validation reports of the sources (see ``load_csv(schema=)``)."""
        from rowtrail.lineage._track import validation_reports

        return validation_reports(self._source_nodes())

    def attach(self, data: Any) -> TracedArray:
        """Return ``data`` traced with this lineage (e.g. an array reloaded from disk)."""
        from rowtrail.lineage._array import wrap

        array = np.asarray(data)
        if array.ndim == 0 or len(array) != self.n_rows:
            raise InvalidInputError(
                f"data of attach must have {self.n_rows} rows like the lineage; "
                f"got shape {array.shape}"
            )
        return wrap(array, self.node)

    def fallbacks(self) -> list[OpInfo]:
        """Return the ops whose row semantics were unknown (recorded as "all input rows")."""
        return [op for op in self.ops() if op.fallback]

    def __repr__(self) -> str:
        return f"ArrayLineage(op={self.node.name!r}, n_rows={self.n_rows})"


register_lineage_handler(
    "numpy", lambda obj: type(obj) is TracedArray, lambda obj: ArrayLineage(obj._n)
)
register_lineage_handler("numpy-view", lambda obj: isinstance(obj, ArrayLineage), lambda obj: obj)
