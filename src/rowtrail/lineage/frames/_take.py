"""Row gathers by position on traced frames: the selections scikit-learn makes.

``train_test_split``, ``shuffle``, ``resample`` and the cross-validation helpers pick rows with
``sklearn.utils._safe_indexing``, which calls ``DataFrame.take`` / ``Series.take`` on pandas
objects (``iloc`` / ``loc`` for slices and masks) and ``X[indices, ...]`` on anything else that
has a ``shape`` (a traced polars frame, whose ``__getitem__`` accepts that form); user code
applies ``KFold`` indices with ``X.iloc[train_idx]`` / ``y.iloc[train_idx]``. Each of these
maps the frame's lineage through the very positions the engine gathered (one ``int64``
gather, pending until queried), so the rows keep their exact source rows. A label column read
from a traced frame (``df["TARGET"]``) is a traced Series (its ``[]``, ``loc`` and ``iloc``
and its statistic-recording reductions are the Series class's own), so a split's target keeps
its lineage too; the Series calls installed here that select or reorder rows (``dropna``,
``sort_values``, ``drop_duplicates``, ``nlargest``, ...) map it through the index labels they
kept, which name the rows exactly when the index is unique (else they fall back and warn);
``describe`` depends on every row, and ``groupby`` aggregates name the rows of their group, as
the frame's do.

The methods live here, installed on the adapter classes by :func:`install_pandas`; a method the
Series class defines itself is never replaced.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from rowtrail.lineage.frames._core import fallback_lineage
from rowtrail.lineage.frames._pandas_base import (
    FRAME,
    SERIES,
    as_traced,
    attach,
    derive,
    fallback,
    is_quiet,
    lineage_of,
    quiet,
)

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["install_pandas"]

_ROW_AXES = (0, "index", "rows")
# Series reductions whose result rows each summarise all input rows.
# ``quantile`` and ``mode`` are TracedSeries' own statistic-recording reductions.
_SERIES_SUMMARIES = ("describe",)
# Series calls that select or reorder rows (their result's labels are input labels).
_SERIES_SELECTIONS = (
    "dropna",
    "sort_values",
    "sort_index",
    "drop_duplicates",
    "nlargest",
    "nsmallest",
    "reindex",
)


def _positions(indices: Any, n: int) -> NDArray[np.intp]:
    """Positions selected by an integer (or boolean) array-like, negatives wrapped."""
    index = np.asarray(indices)
    if index.dtype == bool:
        return np.flatnonzero(index).astype(np.intp)
    index = np.atleast_1d(index).astype(np.intp, copy=False)
    return np.where(index < 0, index + n, index) if index.size and index.min() < 0 else index


def _take(obj: Any, base: Any, indices: Any, axis: Any, kwargs: dict[str, Any]) -> Any:
    """``take`` of a traced pandas object: rows keep their lineage, columns keep all of it."""
    with quiet():
        result = base.take(obj, indices, axis=axis, **kwargs)
    found = lineage_of(obj)
    if found is None or is_quiet():
        return result
    if axis not in _ROW_AXES:
        return attach(result, found[0], found[1])
    rows = _positions(indices, len(obj))
    return derive(result, obj, found[0].take(rows), "take", "filter", {"n": len(rows)})


def _frame_take(self: Any, indices: Any, axis: Any = 0, **kwargs: Any) -> Any:
    """``DataFrame.take``; taken rows keep their lineage (``train_test_split`` calls it)."""
    return _take(self, FRAME, indices, axis, kwargs)


def _series_take(self: Any, indices: Any, axis: Any = 0, **kwargs: Any) -> Any:
    """``Series.take``; taken rows keep their lineage (``train_test_split`` calls it)."""
    return _take(self, SERIES, indices, axis, kwargs)


def _by_label(series: Any, name: str, op: Any, kwargs: dict[str, Any]) -> Any:
    """Run a row-selecting Series call; map lineage through the labels it kept.

    The result's index labels name the selected rows exactly when the input's index is
    unique (``ignore_index`` is applied after the mapping); otherwise lineage falls back.
    """
    inplace = bool(kwargs.pop("inplace", False))
    renumber = bool(kwargs.pop("ignore_index", False))
    with quiet():
        result = op(series, **kwargs)
    found = lineage_of(series)
    if found is not None and not is_quiet() and isinstance(result, pd.Series):
        rows = series.index.get_indexer(result.index) if series.index.is_unique else None
        # reindex may add labels the input lacks: those rows come from no source row.
        if rows is not None and (name == "reindex" or (rows >= 0).all()):
            result = derive(result, series, found[0].take(rows), f"Series.{name}", "filter")
        else:
            result = fallback(as_traced(result), series, f"Series.{name} (non-unique index)")
        if renumber:
            result = result.reset_index(drop=True)
    elif renumber and isinstance(result, pd.Series):
        result = SERIES.reset_index(result, drop=True)
    if not inplace:
        return result
    SERIES._update_inplace(series, result)
    lineage = lineage_of(result)
    if lineage is not None:
        attach(series, *lineage)
    return None


def _series_method(name: str) -> Any:
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = getattr(SERIES, name)
        return _by_label(self, name, lambda s, **k: call(s, *args, **k), kwargs)

    method.__name__ = name
    method.__doc__ = f"``Series.{name}``; the selected rows keep their lineage."
    return method


def _series_summary(name: str) -> Any:
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        with quiet():
            result = getattr(SERIES, name)(self, *args, **kwargs)
        found = lineage_of(self)
        if found is None or is_quiet() or not isinstance(result, pd.Series):
            return result
        # Each summary row (a quantile, a mode, a describe line) depends on every input row:
        # exact for a reduction, so no warning.
        every = fallback_lineage(found[0], len(result), f"Series.{name}", warn=False)
        return derive(result, self, every, f"Series.{name}", "aggregation")

    method.__name__ = name
    method.__doc__ = f"``Series.{name}``; each result row depends on every input row."
    return method


def _series_groupby(self: Any, *args: Any, **kwargs: Any) -> Any:
    """``Series.groupby``; aggregated rows name every input row of their group."""
    from rowtrail.lineage.frames._pandas_group import TracedGroupBy

    with quiet():  # grouped over an untraced copy: TracedGroupBy attaches the lineage
        grouped = SERIES.groupby(SERIES.copy(self, deep=False), *args, **kwargs)
    if lineage_of(self) is None or is_quiet():
        return grouped
    return TracedGroupBy(grouped, self, {"by": repr(kwargs.get("by", args[0] if args else None))})


def install_pandas(frame_class: type, series_class: type) -> None:
    """Install the row gathers on the traced pandas classes (see module docstring)."""
    series_methods: dict[str, Any] = {
        "take": _series_take,
        **{name: _series_method(name) for name in _SERIES_SELECTIONS},
        **{name: _series_summary(name) for name in _SERIES_SUMMARIES},
        "groupby": _series_groupby,
    }
    own = {
        name
        for klass in series_class.__mro__
        if klass.__module__.startswith("rowtrail.")
        for name in vars(klass)
    }
    for name, value in series_methods.items():
        if name not in own:  # the class's own methods record statistics / exact selections
            setattr(series_class, name, value)
    setattr(frame_class, "take", _frame_take)  # noqa: B010 - installed like the Series methods
