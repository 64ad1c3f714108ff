"""Shared machinery of the pandas adapter: lineage attachment, quiet mode, position mapping."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pandas as pd

from rowtrail.lineage.frames._core import (
    FrameState,
    GroupNode,
    RowLineage,
    Slot,
    fallback_lineage,
    record_op,
)
from rowtrail.lineage.frames._stats import MAX_NOTED_ROWS, note_rows, scope_of

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = [
    "FRAME",
    "POS",
    "RPOS",
    "SERIES",
    "as_traced",
    "attach",
    "derive",
    "fallback",
    "fill_positions",
    "grouped",
    "is_quiet",
    "lineage_of",
    "positions",
    "quiet",
]

# pandas methods called on our subclass; typed as Any because pandas-stubs types them for the
# base class only (and marks some final).
FRAME: Any = pd.DataFrame
SERIES: Any = pd.Series
POS = "__rowtrail_pos__"
RPOS = "__rowtrail_rpos__"
_local = threading.local()
_T = TypeVar("_T")


@contextmanager
def quiet() -> Iterator[None]:
    """Suspend ``__finalize__`` bookkeeping inside an override (it sets lineage itself)."""
    depth = getattr(_local, "depth", 0)
    _local.depth = depth + 1
    try:
        yield
    finally:
        _local.depth = depth


def is_quiet() -> bool:
    return bool(getattr(_local, "depth", 0))


def lineage_of(obj: Any) -> tuple[RowLineage, FrameState] | None:
    """Return ``(lineage, state)`` of a traced pandas object, or ``None``."""
    lineage = getattr(obj, "_rt_lineage", None)
    state = getattr(obj, "_rt_state", None)
    if lineage is None or state is None:
        return None
    return lineage, state


def attach(obj: _T, lineage: RowLineage, state: FrameState) -> _T:
    """Set the lineage of a traced pandas object in place and return it."""
    object.__setattr__(obj, "_rt_lineage", lineage)
    object.__setattr__(obj, "_rt_state", state)
    node = state.node
    if node.kind == "aggregation" and not node.statistics and lineage.n_rows <= MAX_NOTED_ROWS:
        # A small aggregate (a group-by's means) may be read back as plain numbers
        # (``.to_dict()``, ``.item()``) and used as a fill or map value: note its values.
        base = FRAME if isinstance(obj, pd.DataFrame) else SERIES
        rows = base.to_numpy(obj, dtype=object).reshape(lineage.n_rows, -1).tolist()
        note_rows(rows, lineage, node, scope_of(state.workspace))
    return obj


def as_traced(obj: Any) -> Any:
    from rowtrail.lineage.frames._pandas import TracedDataFrame
    from rowtrail.lineage.frames._pandas_group import TracedSeries

    if isinstance(obj, pd.DataFrame) and not isinstance(obj, TracedDataFrame):
        return TracedDataFrame(obj)
    if isinstance(obj, pd.Series) and not isinstance(obj, TracedSeries):
        return TracedSeries(obj)
    return obj


def derive(
    result: Any,
    source: Any,
    lineage: RowLineage,
    name: str,
    kind: str,
    params: dict[str, Any] | None = None,
    *others: Any,
    fallback: bool = False,
) -> Any:
    """Attach lineage to ``result`` and record the op that made it from ``source``."""
    found = lineage_of(source)
    if found is None:
        return result
    states = [s for o in others if (f := lineage_of(o)) is not None for s in [f[1]]]
    node = record_op(
        name, kind, [found[1].node, *(s.node for s in states)], params, fallback=fallback
    )
    return attach(as_traced(result), lineage, found[1].derive(node, *states))


def positions(
    frame: pd.DataFrame, op: Callable[[pd.DataFrame], Any], ignore_index: bool = False
) -> tuple[Any, NDArray[np.intp]]:
    """Run ``op`` and return its result with the input position of every result row."""
    with quiet():
        if isinstance(frame.index, pd.RangeIndex) and not ignore_index:
            result = op(frame)
            if isinstance(result, pd.DataFrame | pd.Series):
                return result, frame.index.get_indexer(result.index)
            return result, np.empty(0, dtype=np.intp)
        carrier = FRAME.copy(frame, deep=False)
        carrier[POS] = np.arange(len(frame), dtype=np.int64)
        out = op(carrier)
        if out is None or POS not in out.columns:
            return out, np.empty(0, dtype=np.intp)
        positions = out[POS].to_numpy()
        return out.drop(columns=POS), positions.astype(np.intp)


def fill_positions(positions: Any) -> NDArray[np.intp]:
    """Positions from a merge column (float with NaN for the missing side) as ``intp``."""
    array = np.asarray(positions)
    if array.dtype.kind == "f":
        array = np.where(np.isnan(array), -1, array)
    return array.astype(np.intp)


def grouped(lineage: RowLineage, codes: NDArray[np.int64], n_groups: int) -> RowLineage:
    """Lineage of an aggregation: output row ``g`` holds the input rows with code ``g``."""
    node = GroupNode(lambda: (codes, lineage))
    return RowLineage((Slot("group", node),), (np.arange(n_groups, dtype=np.int64),), n_groups)


def fallback(result: Any, source: Any, op: str) -> Any:
    found = lineage_of(source)
    if found is None:
        return result
    lineage = fallback_lineage(found[0], len(result), op)
    node = record_op(op, "unknown", [found[1].node], {}, fallback=True)
    return attach(result, lineage, found[1].derive(node))
