"""pandas adapter: ``TracedSeries`` and ``TracedGroupBy`` (group codes, never id lists)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

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
from rowtrail.lineage.frames._pandas_base import (
    SERIES,
    as_traced,
    attach,
    derive,
    fallback,
    grouped,
    is_quiet,
    lineage_of,
    quiet,
)
from rowtrail.lineage.frames._pandas_stats import StatisticsMixin
from rowtrail.lineage.frames._stats import STATISTICS

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["TracedGroupBy", "TracedSeries"]


class TracedSeries(StatisticsMixin, pd.Series):  # type: ignore[misc]  # overrides pandas methods stubs mark final
    """A ``pandas.Series`` (e.g. a group-by aggregate) whose rows carry lineage."""

    _metadata = ["_rt_lineage", "_rt_state"]  # noqa: RUF012 - pandas reads this class attribute
    _rt_lineage: RowLineage | None = None
    _rt_state: FrameState | None = None

    @property
    def _constructor(self) -> Callable[..., TracedSeries]:
        return TracedSeries

    @property
    def _constructor_expanddim(self) -> Callable[..., Any]:
        from rowtrail.lineage.frames._pandas import TracedDataFrame

        return TracedDataFrame

    def __finalize__(self, other: Any, method: str | None = None, **kwargs: Any) -> Any:
        if isinstance(other, pd.Series):
            # pandas keeps a Series' name in ``_metadata``, which this class replaces.
            object.__setattr__(self, "_name", other.name)
        found = lineage_of(other)
        if is_quiet() or found is None or other is self:
            return self
        if len(self) == len(other) and (
            self.index is other.index or self.index.equals(other.index)
        ):
            return attach(self, found[0], found[1])
        if isinstance(other, pd.DataFrame):
            # One row as a Series of its columns (``df.iloc[0]``, ``apply(axis=1)``) or a
            # reduction rowtrail does not override: values, not rows; left untraced as pandas
            # columns were before (reductions that fit statistics are overridden).
            return self
        return fallback(self, other, f"Series.{method or 'operation'}")

    def __getitem__(self, key: Any) -> Any:
        with quiet():
            result = SERIES.__getitem__(self, key)
        found = lineage_of(self)
        if found is None or is_quiet() or not isinstance(result, pd.Series):
            return result
        if len(result) == len(self) and result.index.equals(self.index):
            return attach(result, found[0], found[1])
        if isinstance(key, pd.Series) and key.dtype == bool and key.index.equals(self.index):
            rows = np.flatnonzero(key.to_numpy())
        elif isinstance(key, np.ndarray) and key.dtype == bool:
            rows = np.flatnonzero(key)
        else:
            probe = pd.Series(np.arange(len(self)), index=self.index)
            rows = np.atleast_1d(np.asarray(probe[key], dtype=np.intp))
        return derive(result, self, found[0].take(rows), "getitem", "filter")

    @property
    def loc(self) -> Any:
        """Label-based indexer; selected rows keep their lineage."""
        from rowtrail.lineage.frames._pandas import _TracedIndexer

        return _TracedIndexer(self, "loc")

    @property
    def iloc(self) -> Any:
        """Position-based indexer; selected rows keep their lineage."""
        from rowtrail.lineage.frames._pandas import _TracedIndexer

        return _TracedIndexer(self, "iloc")

    def reset_index(self, *args: Any, **kwargs: Any) -> Any:
        """``Series.reset_index``; rows (and their lineage) are unchanged."""
        if kwargs.get("inplace"):
            return SERIES.reset_index(self, *args, **kwargs)
        with quiet():
            result = SERIES.reset_index(self, *args, **kwargs)
        found = lineage_of(self)
        return attach(as_traced(result), *found) if found and result is not None else result

    def to_frame(self, *args: Any, **kwargs: Any) -> Any:
        """``Series.to_frame``; rows (and their lineage) are unchanged."""
        with quiet():
            result = SERIES.to_frame(self, *args, **kwargs)
        found = lineage_of(self)
        return attach(as_traced(result), *found) if found else result


_ROW_PRESERVING = frozenset(
    {
        "transform",
        "cumsum",
        "cumprod",
        "cummax",
        "cummin",
        "cumcount",
        "rank",
        "shift",
        "diff",
        "ffill",
        "bfill",
        "pct_change",
        "ngroup",
    }
)
_ROW_SUBSET = frozenset({"head", "tail", "nth", "filter", "sample"})


class TracedGroupBy:
    """Wraps a pandas ``GroupBy``: results carry group lineage built from pandas' group codes."""

    def __init__(self, groupby: Any, frame: Any, params: dict[str, Any]) -> None:
        self._grouped = groupby
        self._frame = frame
        self._params = params

    def __getitem__(self, key: Any) -> TracedGroupBy:
        return TracedGroupBy(self._grouped[key], self._frame, {**self._params, "select": repr(key)})

    def __iter__(self) -> Iterator[Any]:
        return iter(self._grouped)

    def __len__(self) -> int:
        return len(self._grouped)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._grouped, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._wrap(name, attr(*args, **kwargs), args[0] if args else kwargs.get("func"))

        call.__name__ = name
        call.__doc__ = getattr(attr, "__doc__", None)
        return call

    def _codes(self) -> NDArray[np.int64]:
        codes = np.asarray(self._grouped.ngroup(), dtype=np.float64)
        return np.where(np.isnan(codes), -1, codes).astype(np.int64)

    def _wrap(self, name: str, result: Any, func: Any = None) -> Any:
        found = lineage_of(self._frame)
        if found is None or not isinstance(result, pd.DataFrame | pd.Series):
            return result
        lineage, frame = found[0], self._frame
        params = {**self._params, "method": name}
        if name in _ROW_PRESERVING and len(result) == len(frame):
            return self._per_row(name, result, func, found[1], params)
        if name in _ROW_SUBSET and frame.index.is_unique:
            rows = frame.index.get_indexer(result.index)
            return derive(result, frame, lineage.take(rows), f"groupby.{name}", "filter", params)
        if len(result) == int(self._grouped.ngroups):
            by_group = grouped(lineage, self._codes(), len(result))
            return derive(result, frame, by_group, f"groupby.{name}", "aggregation", params)
        lineage = fallback_lineage(lineage, len(result), f"groupby.{name}")
        return derive(result, frame, lineage, f"groupby.{name}", "unknown", params, fallback=True)

    def _per_row(
        self, name: str, result: Any, func: Any, state: FrameState, params: dict[str, Any]
    ) -> Any:
        """Lineage of a per-row group result: the row plus its group's rows.

        ``transform`` with a reducer (``"mean"``, ``"std"``, ...) fits a statistic on the rows
        of each group (a target encoding, a group mean feature): the group slot also records
        it, so ``statistics(row=i)`` names the rows the value of row ``i`` was fitted on.
        """
        frame = self._frame
        lineage = frame._rt_lineage
        func_name = func if isinstance(func, str) else getattr(func, "__name__", None)
        fitted = name == "transform" and func_name in STATISTICS
        if func_name is not None:
            params = {**params, "func": func_name}
        node = record_op(f"groupby.{name}", "aggregation", [state.node], params, statistics=fitted)
        codes = self._codes()
        group = GroupNode(lambda: (codes, lineage))
        slot = Slot("group", group, stat=node if fitted else None)
        own = RowLineage((*lineage.slots, slot), (*lineage.values, codes), len(frame))
        return attach(as_traced(result), own, state.derive(node))
