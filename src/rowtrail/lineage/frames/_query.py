"""The lineage view of a traced frame and source registration shared by the frame adapters.

:class:`FrameLineageView` answers the :class:`~rowtrail.lineage._view.LineageView` queries
with per-table answers (``rows_of(i)`` → ``{table: [rows]}``, including rows that reached the
row through a group-by); :func:`register_table` records a file or an in-memory frame as a
source (digest of the file bytes, or of a canonical serialization of the frame).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rowtrail import _context
from rowtrail.errors import InvalidInputError
from rowtrail.hashing import file_digest
from rowtrail.ids import ROW_BITS, row_numbers
from rowtrail.lineage._sources import SourceInfo, register_source
from rowtrail.lineage._view import OpInfo, SourceRows, StatisticsDependency
from rowtrail.lineage.frames._core import FrameState, RowLineage, source_of
from rowtrail.lineage.frames._stats import collect_statistics

__all__ = ["FrameLineageView", "column_digest", "digest_in_background", "register_table"]


def column_digest(columns: Sequence[tuple[str, str, NDArray[Any]]]) -> str:
    """Return ``sha256:<hex>`` of a canonical serialization of named, typed columns.

    Numeric columns contribute their little-endian bytes, other columns the UTF-8 text of each
    value separated by ``0x1f``; names and dtypes are included, so the digest changes with any
    value, name, type or row order.
    """
    digest = hashlib.sha256(b"rowtrail-frame-v1\n")
    for name, dtype, values in columns:
        digest.update(f"{name}\x1e{dtype}\x1e{len(values)}\n".encode())
        array = np.asarray(values)
        if array.dtype.kind in "biuf" and array.dtype.kind != "O":
            digest.update(
                np.ascontiguousarray(array.astype(array.dtype.newbyteorder("<"))).tobytes()
            )
        else:
            digest.update("\x1f".join(map(str, array.tolist())).encode("utf-8"))
    return "sha256:" + digest.hexdigest()


def register_table(
    workspace: Any,
    *,
    caller: str,
    name: str | None,
    path: str | os.PathLike[str] | None,
    format: str,
    schema: Mapping[str, str],
    n_rows: int | Callable[[], int],
    digest: str | None = None,
    subject: str | None = None,
    subject_values: Callable[[str], Sequence[object] | NDArray[Any]] | None = None,
) -> SourceInfo:
    """Register a file (digest of its bytes) or a frame (``digest`` given) as a source.

    ``n_rows`` may be a callable: it is only called when the source is new (re-reading a
    registered file costs its digest, not a row count).
    """
    if path is not None:
        digest = digest or file_digest(path)
        name = name or os.path.basename(os.fspath(path))
    if not name:
        raise InvalidInputError(
            f"source of {caller} must be a non-empty name; got {name!r}. "
            "Pass source='applications' to name the table."
        )
    if subject is not None and subject not in schema:
        raise InvalidInputError(
            f"subject of {caller} must be one of the columns {sorted(schema)}; got {subject!r}. "
            "Pass the column holding the raw subject identifier, or leave it out."
        )
    if digest is None:
        raise InvalidInputError(f"digest of {caller} is needed for a frame source; got None")
    ws = _context.resolve_workspace(workspace)
    known: SourceInfo | None = ws.lineage_store.find_source(name, digest)
    if known is not None:
        return known
    count = n_rows() if callable(n_rows) else n_rows
    subject_ids = subject_values(subject) if subject is not None and subject_values else None
    return register_source(
        ws,
        name=name,
        digest=digest,
        format=format,
        schema=schema,
        n_rows=count,
        path=os.fspath(path) if path is not None else None,
        subject_column=subject,
        subject_ids=subject_ids,
    )


def digest_in_background(path: str | os.PathLike[str]) -> Callable[[], str]:
    """Start hashing ``path`` on a thread (hashlib releases the GIL); return the waiter.

    Reading a file's rows and hashing its bytes then overlap instead of adding up.
    """
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rowtrail-digest")
    pending = pool.submit(file_digest, path)
    pool.shutdown(wait=False)
    return pending.result


class FrameLineageView:
    """Lineage queries of one traced frame (returned by ``rt.lineage(frame)``).

    Parameters
    ----------
    lineage : callable
        Returns the frame's :class:`RowLineage` (materialized on first use).
    state : FrameState
        The op that produced the frame and the sources it read.
    plan : callable, optional
        Returns an engine's optimized plan text (polars ``explain()``), shown by ``ops()``.
    """

    def __init__(
        self,
        lineage: Callable[[], RowLineage],
        state: FrameState,
        *,
        plan: Callable[[], str] | None = None,
    ) -> None:
        self._lineage_fn = lineage
        self._lineage: RowLineage | None = None
        self._state = state
        self._plan = plan

    @property
    def lineage(self) -> RowLineage:
        """The materialized row lineage."""
        if self._lineage is None:
            self._lineage = self._lineage_fn()
        return self._lineage

    @property
    def n_rows(self) -> int:
        """Number of rows of the frame."""
        return self.lineage.n_rows

    def _label(self, source_index: int) -> str:
        info = self._state.sources.get(source_index)
        return info.name if info is not None else f"source#{source_index}"

    def _check_row(self, i: int, caller: str = "rows_of", param: str = "i") -> int:
        n = self.n_rows
        if not isinstance(i, int | np.integer) or not -n <= int(i) < n:  # type: ignore[redundant-expr]
            raise InvalidInputError(
                f"{param} of {caller} must be a row number in [0, {n}); got {i!r}. "
                "Pass the position of a row of the frame."
            )
        return int(i) % n

    def row_ids(self, i: int) -> NDArray[np.int64]:
        """Return the packed source row ids of row ``i``, ascending."""
        return self.lineage.ids_of_rows(np.array([self._check_row(i)], dtype=np.intp))

    def rows_of(self, i: int) -> SourceRows:
        """Return ``{table: [row numbers]}`` of every source row that reached row ``i``."""
        return SourceRows.from_row_ids(self.row_ids(i), self._label)

    def derived_from(self, source: str, row: int) -> NDArray[np.int64]:
        """Return the rows of this frame that row ``row`` of table ``source`` reached."""
        info = source_of(self._state.sources, source)
        target = info.row_id(int(row))
        return self.lineage.rows_reaching(target).astype(np.int64)

    def sources(self, *, include_statistics: bool = False) -> dict[str, list[int]]:
        """Return ``{table: sorted row numbers}`` of every source row that reached the frame.

        Parameters
        ----------
        include_statistics : bool
            Also count rows that reached it only through fitted statistics.
        """
        ids = self.lineage.all_ids()
        if include_statistics:
            extra = [dep.fitted_on.row_ids for dep in self.statistics()]
            ids = np.unique(np.concatenate([ids, *extra]))
        out: dict[str, list[int]] = {}
        for index in np.unique(ids >> ROW_BITS).tolist():
            numbers = row_numbers(ids[(ids >> ROW_BITS) == index])
            out.setdefault(self._label(int(index)), []).extend(numbers.tolist())
        return {name: sorted(rows) for name, rows in sorted(out.items())}

    def source_infos(self) -> list[SourceInfo]:
        """Return the registered sources the frame was read from."""
        return [self._state.sources[k] for k in sorted(self._state.sources)]

    def ops(self) -> list[OpInfo]:
        """Return the op chain that produced the frame, oldest first."""
        infos = [node.info() for node in self._state.node.chain()]
        if self._plan is not None:
            last = infos[-1]
            infos.append(
                OpInfo(
                    name="optimized_plan",
                    kind="identity",
                    params={"plan": self._plan()},
                    location=last.location,
                    created_at=last.created_at,
                    node=last.node,
                    inputs=(last.node,),
                )
            )
        return infos

    def ancestors(self, depth: int | None = None) -> list[OpInfo]:
        """Return the ops up to ``depth`` steps back, nearest first."""
        return self._state.node.ancestors(depth)

    def statistics(self, *, row: int | None = None) -> list[StatisticsDependency]:
        """Return the fitted statistics the frame (or row ``row``) depends on, oldest first.

        Parameters
        ----------
        row : int, optional
            Only the statistics row ``row`` used, each with the rows *its* value was fitted
            on (a group mean: the rows of the row's group).

        Returns
        -------
        list of StatisticsDependency
            One entry per fitting op (``Series.mean``, ``groupby.transform``,
            ``polars.with_columns``, ...) with the source rows it was fitted on.
        """
        rows = (
            np.arange(self.n_rows, dtype=np.intp)
            if row is None
            else np.array([self._check_row(row, "statistics", "row")], dtype=np.intp)
        )
        return [
            StatisticsDependency(
                op=op.name,
                node=op.node_id,
                fitted_on=SourceRows.from_row_ids(ids, self._label),
                location=op.location,
                params=dict(op.params),
            )
            for op, ids in collect_statistics(self.lineage, rows)
        ]

    def fallbacks(self) -> list[OpInfo]:
        """Return the ops whose row semantics were unknown (recorded as "all input rows")."""
        return [op for op in self.ops() if op.fallback]

    def __repr__(self) -> str:
        names = sorted(s.name for s in self._state.sources.values())
        return f"FrameLineageView(n_rows={self.n_rows}, sources={names})"
