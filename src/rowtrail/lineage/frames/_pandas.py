"""pandas adapter: ``TracedDataFrame``, a ``pandas.DataFrame`` subclass whose rows carry lineage.

Design: the per-row lineage (one ``int64`` array per slot, see :mod:`._core`) lives *beside*
the data in ``_metadata``, so ``columns``, ``dtypes``, ``to_numpy()`` and every library that
reads the frame see only the user's columns. Row-changing calls are overridden and map the
lineage through the positions the operation selected: a filter's mask, a sort's permutation
(recovered from the ``RangeIndex`` labels, or from one hidden position column carried through
the call), a merge's left/right positions (two position columns carried through
``pandas.merge``). Group-bys keep pandas' own per-row group codes (``ngroup``), never per-group
id lists. ``pd.concat`` and ``pd.get_dummies`` are followed through ``__finalize__``.
Calls that keep rows and index (``assign``, ``fillna``, ``astype``, column selection) share
the lineage; anything else that changes rows falls back to "all input rows" and warns.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from rowtrail.errors import LineageError
from rowtrail.lineage._dispatch import register_lineage_handler
from rowtrail.lineage.frames._core import (
    FrameState,
    RowLineage,
    fallback_lineage,
    record_op,
)
from rowtrail.lineage.frames._escape import warn_if_sklearn_converts
from rowtrail.lineage.frames._pandas_base import (
    FRAME,
    POS,
    RPOS,
    attach,
    derive,
    fallback,
    fill_positions,
    grouped,
    is_quiet,
    lineage_of,
    positions,
    quiet,
)
from rowtrail.lineage.frames._pandas_group import TracedGroupBy, TracedSeries
from rowtrail.lineage.frames._pandas_stats import StatisticsMixin
from rowtrail.lineage.frames._query import FrameLineageView
from rowtrail.lineage.frames._stats import union_slots
from rowtrail.lineage.frames._take import install_pandas

if TYPE_CHECKING:
    pass

__all__ = ["TracedDataFrame", "TracedGroupBy", "TracedSeries", "attach", "lineage_of"]


class _TracedIndexer:
    """``.loc`` / ``.iloc`` of a traced frame or Series, mapping lineage through the rows."""

    def __init__(self, frame: Any, kind: str) -> None:
        self._frame = frame
        self._kind = kind
        owner = pd.DataFrame if isinstance(frame, pd.DataFrame) else pd.Series
        self._real = getattr(owner, kind).fget(frame)

    def __getitem__(self, key: Any) -> Any:
        frame = self._frame
        found = lineage_of(frame)
        with quiet():
            result = self._real[key]
        if found is None or is_quiet() or not isinstance(result, pd.DataFrame | pd.Series):
            return result
        is_frame = isinstance(frame, pd.DataFrame)
        rows = key[0] if isinstance(key, tuple) and is_frame else key
        if isinstance(rows, slice) and rows == slice(None):
            lineage = found[0]
        else:
            probe = pd.Series(np.arange(len(frame)), index=frame.index)
            picked = getattr(probe, self._kind)[rows]
            if np.ndim(picked) == 0 and is_frame:  # one row as a Series of its columns
                return result
            lineage = found[0].take(np.atleast_1d(np.asarray(picked, dtype=np.intp)))
        if lineage.n_rows != len(result):  # pragma: no cover - defensive
            return result
        return derive(result, frame, lineage, self._kind, "filter")

    def __setitem__(self, key: Any, value: Any) -> None:
        self._real[key] = value

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._real(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class TracedDataFrame(StatisticsMixin, pd.DataFrame):  # type: ignore[misc]  # overrides pandas methods stubs mark final
    """A ``pandas.DataFrame`` whose rows carry hidden source row ids.

    Create one with ``rt.pandas.read_csv``, ``rt.pandas.read_parquet`` or
    ``rt.pandas.track``; then write ordinary pandas code. ``rt.lineage(frame)`` answers the
    lineage queries.
    """

    _metadata = ["_rt_lineage", "_rt_state"]  # noqa: RUF012 - pandas reads this class attribute
    _rt_lineage: RowLineage | None = None
    _rt_state: FrameState | None = None

    @property
    def _constructor(self) -> Callable[..., TracedDataFrame]:
        return TracedDataFrame

    def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
        """``numpy.asarray(frame)``; warns when unwrapped scikit-learn does it (see _escape)."""
        if self._rt_lineage is not None and not is_quiet():
            warn_if_sklearn_converts("pandas DataFrame")
        return pd.DataFrame.__array__(self, dtype, copy)

    @property
    def _constructor_expanddim(self) -> Callable[..., Any]:  # pragma: no cover - pandas API
        return TracedDataFrame

    @property
    def _constructor_sliced(self) -> Callable[..., TracedSeries]:
        # A column keeps the frame's lineage (so ``df["a"].mean()`` knows its rows).
        return TracedSeries

    # ------------------------------------------------------------ generic propagation
    def __finalize__(self, other: Any, method: str | None = None, **kwargs: Any) -> Any:
        if is_quiet():
            return self
        if method == "concat":
            return _finalize_concat(self, list(getattr(other, "objs", [])))
        found = lineage_of(other)
        if found is None:
            if method == "merge" and any(lineage_of(o) for o in getattr(other, "input_objs", [])):
                left = getattr(other, "left", None)
                return fallback(self, left, "pandas.merge(left, right) (use left.merge(right))")
            return self
        if other is self:
            return self
        if len(self) == len(other) and (
            self.index is other.index or self.index.equals(other.index)
        ):
            return attach(self, found[0], found[1])
        return fallback(self, other, f"DataFrame.{method or 'operation'}")

    # ------------------------------------------------------------ row selection
    def __getitem__(self, key: Any) -> Any:
        if callable(key):
            key = key(self)
        with quiet():
            result = super().__getitem__(key)
        found = lineage_of(self)
        if found is None or is_quiet() or not isinstance(result, pd.DataFrame | pd.Series):
            return result
        if isinstance(result, pd.Series):  # a column: same rows, same lineage
            same = len(result) == len(self) and result.index.equals(self.index)
            return attach(result, found[0], found[1]) if same else result
        if len(result) == len(self) and (
            result.index is self.index or result.index.equals(self.index)
        ):
            return attach(result, found[0], found[1])
        if isinstance(key, pd.Series) and key.dtype == bool and key.index.equals(self.index):
            positions = np.flatnonzero(key.to_numpy())
        elif isinstance(key, np.ndarray) and key.dtype == bool:
            positions = np.flatnonzero(key)
        else:
            probe = pd.Series(np.arange(len(self)), index=self.index)
            positions = np.asarray(probe[key], dtype=np.intp)
        return derive(result, self, found[0].take(positions), "getitem", "filter")

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        theirs, mine = lineage_of(value), lineage_of(self)
        if theirs is None or mine is None or is_quiet() or len(value) != len(self):
            return
        # A column computed from other rows (a group transform, a joined series) makes each
        # row depend on that column's rows too.
        if value.index is self.index or value.index.equals(self.index):
            extra = theirs[0]
        elif value.index.is_unique:
            extra = theirs[0].take(value.index.get_indexer(self.index))
        else:
            extra = fallback_lineage(theirs[0], len(self), "column assignment (non-unique index)")
        united = mine[0] if extra is mine[0] else union_slots(mine[0], extra)
        if united is mine[0]:  # a column of this frame's own rows (``df["b"] = df["a"] * 2``)
            return
        node = record_op(
            "setitem", "transformation", [mine[1].node, theirs[1].node], {"column": repr(key)}
        )
        attach(self, united, mine[1].derive(node, theirs[1]))

    @property
    def loc(self) -> Any:
        """Label-based indexer; selected rows keep their lineage."""
        return _TracedIndexer(self, "loc")

    @property
    def iloc(self) -> Any:
        """Position-based indexer; selected rows keep their lineage."""
        return _TracedIndexer(self, "iloc")

    def _rowwise(
        self,
        name: str,
        kind: str,
        op: Callable[[pd.DataFrame], Any],
        params: dict[str, Any],
        *,
        inplace: bool = False,
        ignore_index: bool = False,
    ) -> Any:
        """Run a row-selecting/reordering call and map lineage through its positions."""
        found = lineage_of(self)
        if found is None or is_quiet():
            with quiet():
                plain = op(FRAME.copy(self, deep=False))
            if not inplace:
                return plain
            FRAME._update_inplace(self, plain)
            return None
        result, rows = positions(self, op, ignore_index)
        result = derive(result, self, found[0].take(rows), name, kind, params)
        if inplace:
            FRAME._update_inplace(self, result)
            attach(self, result._rt_lineage, result._rt_state)
            return None
        return result

    def query(self, expr: str, **kwargs: Any) -> Any:
        """``DataFrame.query``; kept rows keep their lineage."""
        inplace = bool(kwargs.pop("inplace", False))
        mask = self.eval(expr, **kwargs)
        result = self[mask] if isinstance(mask, pd.Series) else super().query(expr, **kwargs)
        if inplace:
            FRAME._update_inplace(self, result)
            attach(self, result._rt_lineage, result._rt_state)
            return None
        return result

    def sort_values(self, by: Any, *args: Any, **kwargs: Any) -> Any:
        """``DataFrame.sort_values``; rows keep their lineage."""
        inplace = bool(kwargs.pop("inplace", False))
        return self._rowwise(
            "sort_values",
            "sort",
            lambda f: FRAME.sort_values(f, by, *args, **kwargs),
            {"by": repr(by)},
            inplace=inplace,
            ignore_index=bool(kwargs.get("ignore_index")),
        )

    def sort_index(self, *args: Any, **kwargs: Any) -> Any:
        """``DataFrame.sort_index``; rows keep their lineage."""
        inplace = bool(kwargs.pop("inplace", False))
        return self._rowwise(
            "sort_index",
            "sort",
            lambda f: FRAME.sort_index(f, *args, **kwargs),
            {},
            inplace=inplace,
            ignore_index=bool(kwargs.get("ignore_index")),
        )

    def dropna(self, *args: Any, **kwargs: Any) -> Any:
        """``DataFrame.dropna``; kept rows keep their lineage."""
        inplace = bool(kwargs.pop("inplace", False))
        if kwargs.get("axis") in (1, "columns"):
            return FRAME.dropna(self, *args, **kwargs)
        if kwargs.get("subset") is None:
            kwargs["subset"] = list(self.columns)
        return self._rowwise(
            "dropna",
            "filter",
            lambda f: FRAME.dropna(f, *args, **kwargs),
            {"how": str(kwargs.get("how", "any"))},
            inplace=inplace,
            ignore_index=bool(kwargs.get("ignore_index")),
        )

    def drop_duplicates(self, subset: Any = None, *args: Any, **kwargs: Any) -> Any:
        """``DataFrame.drop_duplicates``; kept rows keep their lineage."""
        inplace = bool(kwargs.pop("inplace", False))
        subset = list(self.columns) if subset is None else subset
        return self._rowwise(
            "drop_duplicates",
            "filter",
            lambda f: FRAME.drop_duplicates(f, subset, *args, **kwargs),
            {},
            inplace=inplace,
            ignore_index=bool(kwargs.get("ignore_index")),
        )

    def sample(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
        """``DataFrame.sample``; sampled rows keep their lineage."""
        if kwargs.get("axis") in (1, "columns"):
            return FRAME.sample(self, *args, **kwargs)
        return self._rowwise(
            "sample",
            "filter",
            lambda f: FRAME.sample(f, *args, **kwargs),
            {"random_state": repr(kwargs.get("random_state"))},
            ignore_index=bool(kwargs.get("ignore_index")),
        )

    def head(self, n: int = 5) -> Any:  # type: ignore[misc]
        """``DataFrame.head``; rows keep their lineage."""
        return self._rowwise("head", "filter", lambda f: FRAME.head(f, n), {"n": n})

    def tail(self, n: int = 5) -> Any:  # type: ignore[misc]
        """``DataFrame.tail``; rows keep their lineage."""
        return self._rowwise("tail", "filter", lambda f: FRAME.tail(f, n), {"n": n})

    def drop(self, *args: Any, **kwargs: Any) -> Any:
        """``DataFrame.drop``; dropping rows keeps the lineage of the rest."""
        inplace = bool(kwargs.pop("inplace", False))
        drops_rows = kwargs.get("index") is not None or (
            kwargs.get("columns") is None
            and kwargs.get("axis", 0) in (0, "index")
            and (args or kwargs.get("labels") is not None)
        )
        if not drops_rows:
            return FRAME.drop(self, *args, **({"inplace": True} if inplace else {}), **kwargs)
        return self._rowwise(
            "drop", "filter", lambda f: FRAME.drop(f, *args, **kwargs), {}, inplace=inplace
        )

    def reset_index(self, *args: Any, **kwargs: Any) -> Any:
        """``DataFrame.reset_index``; rows (and their lineage) are unchanged."""
        inplace = bool(kwargs.pop("inplace", False))
        return self._same_rows("reset_index", FRAME.reset_index, args, kwargs, inplace)

    def set_index(self, *args: Any, **kwargs: Any) -> Any:
        """``DataFrame.set_index``; rows (and their lineage) are unchanged."""
        inplace = bool(kwargs.pop("inplace", False))
        return self._same_rows("set_index", FRAME.set_index, args, kwargs, inplace)

    def _same_rows(
        self,
        name: str,
        method: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        inplace: bool,
    ) -> Any:
        with quiet():
            result = method(FRAME.copy(self, deep=False), *args, **kwargs)
        found = lineage_of(self)
        if found is None:
            return result
        if inplace:
            FRAME._update_inplace(self, result)
            attach(self, found[0], found[1])
            return None
        return attach(result, found[0], found[1])

    # ------------------------------------------------------------ joins
    def merge(self, right: Any, how: str = "inner", *args: Any, **kwargs: Any) -> Any:
        """``DataFrame.merge``; each result row carries the lineage of its left and right rows."""
        found = lineage_of(self)
        if isinstance(right, pd.Series):
            right = right.to_frame()
        other, original = lineage_of(right), right
        if found is None or is_quiet():
            with quiet():
                return FRAME.merge(FRAME.copy(self, deep=False), right, how, *args, **kwargs)
        with quiet():
            left = FRAME.copy(self, deep=False)
            left[POS] = np.arange(len(self), dtype=np.int64)
            if other is not None:
                right = FRAME.copy(right, deep=False)
                right[RPOS] = np.arange(len(right), dtype=np.int64)
            out = FRAME.merge(left, right, how, *args, **kwargs)
            hidden = [c for c in (POS, RPOS) if c in out.columns]
            left_pos = fill_positions(out[POS].to_numpy())
            right_pos = fill_positions(out[RPOS].to_numpy()) if other is not None else None
            result = out.drop(columns=hidden)
        parts = [found[0].take(left_pos)]
        if other is not None and right_pos is not None:
            parts.append(other[0].take(right_pos))
        params = {"how": how, "on": repr(kwargs.get("on", args[0] if args else None))}
        return derive(
            result, self, RowLineage.concat_columns(parts), "merge", "join", params, original
        )

    def join(self, other: Any, *args: Any, **kwargs: Any) -> Any:
        """``DataFrame.join`` with one frame or Series; rows carry the lineage of both sides."""
        if isinstance(other, list | tuple) or lineage_of(self) is None:
            return FRAME.join(self, other, *args, **kwargs)
        how = kwargs.pop("how", args[1] if len(args) > 1 else "left")
        on = kwargs.pop("on", args[0] if args else None)
        lsuffix, rsuffix = kwargs.pop("lsuffix", ""), kwargs.pop("rsuffix", "")
        right = other.to_frame() if isinstance(other, pd.Series) else other
        if on is None:
            return self.merge(
                right, how, left_index=True, right_index=True, suffixes=(lsuffix, rsuffix), **kwargs
            )
        return self.merge(
            right, how, left_on=on, right_index=True, suffixes=(lsuffix, rsuffix), **kwargs
        )

    # ------------------------------------------------------------ grouping
    def groupby(self, *args: Any, **kwargs: Any) -> Any:
        """``DataFrame.groupby``; aggregated rows name every input row of their group."""
        with quiet():
            grouped = FRAME.groupby(FRAME.copy(self, deep=False), *args, **kwargs)
        if lineage_of(self) is None or is_quiet():
            return grouped
        return TracedGroupBy(
            grouped, self, {"by": repr(kwargs.get("by", args[0] if args else None))}
        )

    def pivot_table(self, *args: Any, **kwargs: Any) -> Any:
        """``DataFrame.pivot_table``; each result row names the input rows of its index key."""
        with quiet():
            result = FRAME.pivot_table(FRAME.copy(self, deep=False), *args, **kwargs)
        return self._keyed(
            result, kwargs.get("index", args[1] if len(args) > 1 else None), "pivot_table"
        )

    def pivot(self, *args: Any, **kwargs: Any) -> Any:
        """``DataFrame.pivot``; each result row names the input rows of its index key."""
        with quiet():
            result = FRAME.pivot(FRAME.copy(self, deep=False), *args, **kwargs)
        return self._keyed(result, kwargs.get("index"), "pivot")

    def _keyed(self, result: pd.DataFrame, index: Any, name: str) -> Any:
        found = lineage_of(self)
        if found is None:
            return result
        if index is None:
            keys: pd.Index = self.index
        elif isinstance(index, list | tuple) and len(index) > 1:
            keys = pd.MultiIndex.from_frame(pd.DataFrame(self[list(index)]))
        else:
            column = index[0] if isinstance(index, list | tuple) else index
            keys = pd.Index(FRAME.__getitem__(self, column))
        codes = result.index.get_indexer(keys).astype(np.int64)
        return derive(
            result,
            self,
            grouped(found[0], codes, len(result)),
            name,
            "aggregation",
            {"index": repr(index)},
        )


def _finalize_concat(result: Any, objs: list[Any]) -> Any:
    """Lineage of ``pd.concat(objs)`` (rows or columns) and of ``pd.get_dummies``."""
    traced = [lineage_of(o) for o in objs]
    if not any(traced):
        return result
    states = [t[1] for t in traced if t is not None]
    if len(result) == sum(len(o) for o in objs):
        parts = [
            t[0]
            if t is not None
            else fallback_lineage(RowLineage((), (), 0), len(o), "", warn=False)
            for o, t in zip(objs, traced, strict=True)
        ]
        lineage = RowLineage.concat_rows(
            [p for p, t in zip(parts, traced, strict=True) if t is not None or p.n_rows]
        )
        if lineage.n_rows != len(result):
            return fallback(result, objs[0], "pd.concat")
        kind = "concat_rows"
    else:
        columns = []
        for obj, found in zip(objs, traced, strict=True):
            if found is None:
                continue
            if obj.index is result.index or obj.index.equals(result.index):
                columns.append(found[0])
            elif obj.index.is_unique:
                columns.append(found[0].take(obj.index.get_indexer(result.index)))
            else:
                return fallback(result, obj, "pd.concat(axis=1) of non-unique indexes")
        lineage = _unite(columns)
        kind = "concat_columns"
    node = record_op(kind, "transformation", [s.node for s in states], {"n_inputs": len(objs)})
    return attach(result, lineage, states[0].derive(node, *states[1:]))


def _unite(columns: list[RowLineage]) -> RowLineage:
    """Return the side-by-side lineage of row-aligned parts, each slot once.

    The columns of one frame share its lineage (``get_dummies`` concatenates them).
    """
    distinct = list({id(c): c for c in columns}.values())
    lineage = distinct[0]
    for extra in distinct[1:]:
        lineage = union_slots(lineage, extra)
    return lineage


def _view(obj: Any) -> FrameLineageView:
    found = lineage_of(obj)
    if found is None:  # pragma: no cover - guarded by the predicate
        raise LineageError("obj of rt.lineage carries no pandas lineage")
    lineage, state = found
    return FrameLineageView(lambda: lineage, state)


register_lineage_handler("pandas", lambda obj: lineage_of(obj) is not None, _view)
install_pandas(TracedDataFrame, TracedSeries)
