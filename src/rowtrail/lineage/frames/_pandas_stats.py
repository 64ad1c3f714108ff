"""pandas adapter: fitted statistics (reductions used as features or fill values).

A reduction of a traced Series (``s.mean()``) returns a :class:`TracedFloat` /
:class:`TracedInt`: the plain number, plus the statistic slot (see :mod:`._stats`) naming the
rows it was fitted on. A reduction of a traced frame along rows (``df.mean()``) returns a
traced Series whose entries depend on every row. When such a value meets traced rows,
in arithmetic (``(s - s.mean()) / s.std()``, ``df - df.mean()``) or as a fill value
(``df.fillna(df.mean())``, ``s.fillna(s.median())``), the result records the statistic:
``rt.lineage(result).statistics()`` lists it with its rows while ``rows_of(i)`` stays the
row's own rows. A ``fillna`` marks only the rows it filled. Arithmetic with another row-aligned
traced Series (a group ``transform``) unites the two rows' lineage.

:class:`StatisticsMixin` is mixed into ``TracedSeries`` and ``TracedDataFrame``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from rowtrail.lineage.frames._core import Slot, fallback_lineage, record_op
from rowtrail.lineage.frames._ops import OpNode
from rowtrail.lineage.frames._pandas_base import (
    FRAME,
    SERIES,
    as_traced,
    attach,
    fallback,
    is_quiet,
    lineage_of,
    quiet,
)
from rowtrail.lineage.frames._stats import (
    TracedFloat,
    TracedInt,
    fitted_slots,
    global_stat_slot,
    note_fitted,
    scope_of,
    traced_number,
    union_slots,
    with_slots,
)

__all__ = ["StatisticsMixin", "TracedFloat", "TracedInt", "statistic_slots"]


def _is_rows_of(value: Any, frame: Any) -> bool:
    """Whether ``value`` (a Series or frame) is row-aligned with ``frame``."""
    return len(value) == len(frame) and (
        value.index is frame.index or value.index.equals(frame.index)
    )


def statistic_slots(value: Any, frame: Any) -> tuple[list[Slot], list[OpNode]]:
    """Return the statistic slots ``value`` carries into ``frame``, and their ops.

    ``value`` is a traced number, a dict of them, or a traced Series that is *not* one value
    per row of ``frame`` (a frame reduction indexed by column name).
    """
    if isinstance(value, pd.Series) and not _is_rows_of(value, frame):
        found = lineage_of(value)
        if found is None:
            return [], []
        node = found[1].node
        cached = getattr(value, "_rt_stat_slot", None)
        if cached is None or cached.stat is not node:
            cached = global_stat_slot(found[0], node)
            object.__setattr__(value, "_rt_stat_slot", cached)
        slots = [cached]
    elif isinstance(value, pd.Series | pd.DataFrame):
        slots = []
    else:  # a traced number, or a plain value equal to one (see _stats.FittedValues)
        slots = fitted_slots(value, scope=_scope(frame))
    slots = list(dict.fromkeys(slots))
    return slots, [s.stat for s in slots if s.stat is not None]


def _scope(frame: Any) -> object:
    found = lineage_of(frame)
    return scope_of(found[1].workspace) if found is not None else None


def _reduction(name: str) -> Callable[..., Any]:
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        is_frame = isinstance(self, pd.DataFrame)
        base = FRAME if is_frame else SERIES
        found = lineage_of(self)
        if found is None or is_quiet() or kwargs.get("axis") in (1, "columns"):
            return getattr(base, name)(self, *args, **kwargs)
        with quiet():
            result = getattr(base, name)(self, *args, **kwargs)
        lineage, state = found
        scope = scope_of(state.workspace)
        params: dict[str, Any] = {"column": str(self.name)} if not is_frame else {}
        if is_frame:
            params["columns"] = [str(c) for c in self.columns]
        if args or kwargs:
            params["args"] = repr((args, kwargs))
        node = record_op(
            f"{_kind(self)}.{name}", "aggregation", [state.node], params, statistics=True
        )
        if isinstance(result, pd.Series):  # one value per column (or per quantile)
            every = fallback_lineage(lineage, len(result), name, warn=False)
            traced = attach(as_traced(result), every, state.derive(node))
            # Its values may be read back as plain numbers (``.to_dict()``): one slot for all.
            slot = global_stat_slot(lineage, node)
            object.__setattr__(traced, "_rt_stat_slot", slot)
            note_fitted(SERIES.to_numpy(result, dtype=object).tolist(), [slot], scope)
            return traced
        return traced_number(result, (global_stat_slot(lineage, node),), scope)

    method.__name__ = name
    method.__doc__ = f"``{name}``; the result records the rows it was fitted on (a statistic)."
    return method


def _row_mixing(name: str) -> Callable[..., Any]:
    """Build a call whose rows read neighbouring rows (``shift``, ``cumsum``, ``ffill``, ...)."""

    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        base = _base(self)
        found = lineage_of(self)
        if found is None or is_quiet() or kwargs.get("axis") in (1, "columns"):
            return getattr(base, name)(self, *args, **kwargs)
        with quiet():
            result = getattr(base, name)(self, *args, **kwargs)
        target = self if result is None else as_traced(result)
        fallback(target, self, f"{_kind(self)}.{name}")
        return result

    method.__name__ = name
    method.__doc__ = f"``{name}``; rows read other rows: lineage falls back to all rows (warns)."
    return method


class _TracedWindow:
    """A pandas window (``rolling`` / ``expanding`` / ``ewm``) over a traced object.

    pandas builds window results without ``__finalize__``, so their lineage is set here: each
    row reads its neighbours, so it falls back to all rows of the input (sound; warns).
    """

    def __init__(self, window: Any, frame: Any, name: str) -> None:
        self._window = window
        self._frame = frame
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self._window, attr)
        if not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            result = value(*args, **kwargs)
            if isinstance(result, pd.Series | pd.DataFrame):
                return fallback(as_traced(result), self._frame, f"{self._name}.{attr}")
            return result

        return call

    def __iter__(self) -> Any:
        return iter(self._window)


def _window(name: str) -> Callable[..., Any]:
    """Build ``rolling`` / ``expanding`` / ``ewm``, whose results fall back to all rows."""

    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        base = _base(self)
        window = getattr(base, name)(self, *args, **kwargs)
        if lineage_of(self) is None or is_quiet():
            return window
        return _TracedWindow(window, self, f"{_kind(self)}.{name}")

    method.__name__ = name
    method.__doc__ = f"``{name}``; window results fall back to all rows (warns)."
    return method


def _kind(obj: Any) -> str:
    return "DataFrame" if isinstance(obj, pd.DataFrame) else "Series"


def _base(obj: Any) -> Any:
    """Return the pandas class whose methods run the call (``self`` is typed as the mixin)."""
    return FRAME if isinstance(obj, pd.DataFrame) else SERIES


def _valued(name: str) -> Callable[..., Any]:
    """Build ``clip`` / ``where`` / ``mask`` / ``replace``, which record fitted values passed in."""

    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        base = _base(self)
        result = getattr(base, name)(self, *args, **kwargs)
        found = lineage_of(self)
        if found is None or is_quiet():
            return result
        pairs = [statistic_slots(v, self) for v in (*args, *kwargs.values())]
        slots = [s for found_slots, _ in pairs for s in found_slots]
        if not slots:
            return result
        stats = list(dict.fromkeys(n for _, nodes in pairs for n in nodes))
        node = record_op(name, "transformation", [found[1].node, *stats], {}, statistics=True)
        target = self if result is None else as_traced(result)
        attach(target, with_slots(found[0], slots), found[1].derive(node))
        return result

    method.__name__ = name
    method.__doc__ = f"``{name}``; values fitted on rows (``s.quantile(.99)``) are recorded."
    return method


class StatisticsMixin:
    """Reductions, ``fillna`` and arithmetic of traced pandas objects that record statistics."""

    shift = _row_mixing("shift")
    diff = _row_mixing("diff")
    pct_change = _row_mixing("pct_change")
    cumsum = _row_mixing("cumsum")
    cumprod = _row_mixing("cumprod")
    cummax = _row_mixing("cummax")
    cummin = _row_mixing("cummin")
    ffill = _row_mixing("ffill")
    bfill = _row_mixing("bfill")
    interpolate = _row_mixing("interpolate")
    rolling = _window("rolling")
    expanding = _window("expanding")
    ewm = _window("ewm")
    clip = _valued("clip")
    where = _valued("where")
    mask = _valued("mask")
    replace = _valued("replace")
    map = _valued("map")

    def apply(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        """``apply``; a frame's column-wise call sees every row, so its lineage widens.

        A result with one value per column is a statistic of all rows (like ``df.mean()``);
        a column-wise result with the frame's rows may have mixed rows (``lambda c: c -
        c.mean()`` or ``lambda c: c.shift()``): it falls back to all rows and warns.
        Row-wise calls (``axis=1``, ``Series.apply``) keep each row's own lineage.
        """
        base = _base(self)
        found = lineage_of(self)
        axis = kwargs.get("axis", args[0] if args else 0)
        if base is SERIES or found is None or is_quiet() or axis in (1, "columns"):
            return base.apply(self, func, *args, **kwargs)
        with quiet():
            result = base.apply(self, func, *args, **kwargs)
        if not isinstance(result, pd.Series | pd.DataFrame):
            return result
        columns = self.columns  # type: ignore[attr-defined]
        if isinstance(result, pd.Series) and result.index.equals(columns):
            params = {"func": getattr(func, "__name__", repr(func))}
            node = record_op(
                "DataFrame.apply", "aggregation", [found[1].node], params, statistics=True
            )
            every = fallback_lineage(found[0], len(result), "apply", warn=False)
            return attach(as_traced(result), every, found[1].derive(node))
        name = getattr(func, "__name__", type(func).__name__)
        return fallback(as_traced(result), self, f"DataFrame.apply({name}, axis=0)")

    def rank(self, *args: Any, **kwargs: Any) -> Any:
        """``rank``; a row's rank is a statistic fitted on every row (recorded)."""
        base = _base(self)
        found = lineage_of(self)
        if found is None or is_quiet() or kwargs.get("axis") in (1, "columns"):
            return base.rank(self, *args, **kwargs)
        with quiet():
            result = base.rank(self, *args, **kwargs)
        params = {"args": repr((args, kwargs))} if args or kwargs else {}
        node = record_op(
            f"{_kind(self)}.rank", "transformation", [found[1].node], params, statistics=True
        )
        lineage = with_slots(found[0], [global_stat_slot(found[0], node)])
        return attach(as_traced(result), lineage, found[1].derive(node))

    mean = _reduction("mean")
    median = _reduction("median")
    std = _reduction("std")
    var = _reduction("var")
    sum = _reduction("sum")
    min = _reduction("min")
    max = _reduction("max")
    quantile = _reduction("quantile")
    sem = _reduction("sem")
    prod = _reduction("prod")
    count = _reduction("count")
    nunique = _reduction("nunique")
    skew = _reduction("skew")
    kurt = _reduction("kurt")
    value_counts = _reduction("value_counts")
    mode = _reduction("mode")

    def fillna(self, value: Any = None, *args: Any, **kwargs: Any) -> Any:
        """``fillna``; a fill value fitted on rows is recorded on the rows it filled."""
        base = _base(self)
        found = lineage_of(self)
        if found is None or is_quiet():
            return base.fillna(self, value, *args, **kwargs)
        aligned = isinstance(value, pd.Series) and _is_rows_of(value, self)
        slots, stats = ([], []) if aligned else statistic_slots(value, self)
        filled = _filled_rows(self, value) if slots else None
        result = base.fillna(self, value, *args, **kwargs)
        target = self if kwargs.get("inplace") else result
        theirs = lineage_of(value) if aligned else None
        if not slots and theirs is None:
            return result
        lineage = with_slots(found[0], slots, filled)
        if theirs is not None:
            lineage = union_slots(lineage, theirs[0])
        inputs = [found[1].node, *stats, *([theirs[1].node] if theirs else [])]
        node = record_op(
            "fillna", "transformation", inputs, _describe(value), statistics=bool(stats)
        )
        others = [theirs[1]] if theirs is not None else []
        attach(as_traced(target), lineage, found[1].derive(node, *others))
        return result

    def _arith_method(self, other: Any, op: Any) -> Any:
        return _binary(self, "_arith_method", other, op)

    def _flex_arith_method(self, other: Any, op: Any, *args: Any, **kwargs: Any) -> Any:
        return _binary(self, "_flex_arith_method", other, op, *args, **kwargs)

    def _flex_method(self, other: Any, op: Any, *args: Any, **kwargs: Any) -> Any:
        return _binary(self, "_flex_method", other, op, *args, **kwargs)


def _binary(obj: Any, method: str, other: Any, op: Any, *args: Any, **kwargs: Any) -> Any:
    """Run pandas' binary op ``method`` once, then record what ``other`` brought in."""
    call = getattr(_base(obj), method)
    if lineage_of(obj) is None or is_quiet():
        return call(obj, other, op, *args, **kwargs)
    with quiet():  # pandas would finalize with each operand in turn; done once below
        result = call(obj, other, op, *args, **kwargs)
    return _with_operand(obj, other, result, str(getattr(op, "__name__", "arith")))


def _filled_rows(frame: Any, value: Any) -> Any:
    """Boolean mask of the rows ``fillna(value)`` changes (a null in a filled column)."""
    with quiet():
        if isinstance(frame, pd.Series):
            return frame.isna().to_numpy()
        if isinstance(value, dict | pd.Series):
            columns = [c for c in frame.columns if c in value]
        else:
            columns = list(frame.columns)
        if not columns:
            return np.zeros(len(frame), dtype=bool)
        return FRAME.isna(frame[columns]).any(axis=1).to_numpy()


def _describe(value: Any) -> dict[str, Any]:
    if isinstance(value, pd.Series | dict):
        return {
            "value": {
                str(k): float(v) if isinstance(v, float) else repr(v) for k, v in value.items()
            }
        }
    return {"value": float(value) if isinstance(value, float) else repr(value)}


def _with_operand(frame: Any, other: Any, result: Any, op: str) -> Any:
    """Record the statistics (or row-aligned lineage) ``other`` brought into ``result``.

    pandas finalizes a binary op with ``self`` and then with ``other``, so the lineage of the
    left operand would be replaced by the right one's; the result gets both here.
    """
    mine = lineage_of(frame)
    if mine is None or is_quiet() or not isinstance(result, pd.Series | pd.DataFrame):
        return result
    if not _is_rows_of(result, frame):  # alignment changed the rows
        return fallback(as_traced(result), frame, f"{op} of misaligned indexes")
    aligned = isinstance(other, pd.Series | pd.DataFrame) and _is_rows_of(other, frame)
    theirs = lineage_of(other) if aligned else None
    slots, stats = ([], []) if aligned else statistic_slots(other, frame)
    if not slots and (theirs is None or theirs[0] is mine[0]):
        return attach(as_traced(result), mine[0], mine[1])
    lineage = with_slots(mine[0], slots)
    if theirs is not None:
        lineage = union_slots(lineage, theirs[0])
    others = [theirs[1]] if theirs is not None else []
    inputs = [mine[1].node, *stats, *(state.node for state in others)]
    params = {"op": op, "operand": type(other).__name__}
    node = record_op(op, "transformation", inputs, params, statistics=bool(stats))
    return attach(as_traced(result), lineage, mine[1].derive(node, *others))
