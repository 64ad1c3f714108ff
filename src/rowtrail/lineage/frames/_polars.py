"""polars adapter: thin proxies over ``LazyFrame`` / ``DataFrame`` carrying hidden id columns.

A polars schema cannot hide a column, so traced frames are proxies: the wrapped polars frame
holds the user's columns plus hidden lineage columns (``__rt_<n>``), and the proxy shows only
the user's columns in ``columns`` / ``schema`` / ``repr`` and in every export (``to_numpy``,
``to_pandas``, ``write_*``, ``sink_*``). Every other attribute is the polars one, so ordinary
polars code runs unchanged; row-wise operations carry the hidden columns inside the same polars
plan (the ids ride along for the cost of one ``Int64`` column per slot). Group-bys keep only
the group keys (as a hidden struct), never per-group id lists; the key -> input rows index is
built on the first lineage query. Lazy plans keep their optimized plan (``explain()``), shown
by ``rt.lineage(frame).ops()``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import polars as pl

from rowtrail.errors import InvalidInputError
from rowtrail.lineage._dispatch import register_lineage_handler
from rowtrail.lineage.frames._core import (
    FrameState,
    OpNode,
    RowLineage,
    Slot,
    fresh_name,
    record_op,
)
from rowtrail.lineage.frames._escape import warn_if_sklearn_converts
from rowtrail.lineage.frames._polars_group import (
    HiddenSlots,
    PolarsGroupNode,
    UnknownCall,
    key_struct,
    materialize,
    multi,
    probe_height,
    raise_missing_index,
)
from rowtrail.lineage.frames._polars_group import TracedGroupBy as TracedGroupBy
from rowtrail.lineage.frames._polars_stats import (
    ExpressionLineage,
    expression_lineage,
    fill_null_lineage,
)
from rowtrail.lineage.frames._polars_values import (
    COLUMN_EXPORTS,
    VALUED_EXPORTS,
    traced_series,
    valued_export,
)
from rowtrail.lineage.frames._query import FrameLineageView

__all__ = [
    "PolarsGroupNode",
    "TracedGroupBy",
    "TracedLazyFrame",
    "TracedPolarsFrame",
    "materialize",
    "wrap",
]


# Calls that keep or subset rows: run on the full frame, the hidden columns ride along.
_CARRY = frozenset(
    {
        "filter",
        "sort",
        "head",
        "tail",
        "limit",
        "slice",
        "reverse",
        "gather_every",
        "top_k",
        "bottom_k",
        "with_row_index",
        "cache",
        "clone",
        "set_sorted",
        "sample",
        "shift",
        "first",
        "last",
        "explode",
        "interpolate",
        "gather",
        "rechunk",
        "shrink_to_fit",
        "fill_nan",
    }
)
# Reductions: one row that depends on every row (exact, no warning).
_REDUCE = frozenset(
    {
        "sum",
        "mean",
        "median",
        "min",
        "max",
        "std",
        "var",
        "quantile",
        "null_count",
        "count",
        "n_unique",
        "product",
    }
)
# Exports: run on the visible columns only.
_EXPORT_PREFIXES = ("to_", "write_", "sink_", "iter_", "serialize", "show")
_EXPORT = frozenset(
    {
        "rows",
        "row",
        "item",
        "get_column",
        "get_columns",
        "glimpse",
        "equals",
        "estimated_size",
        "transpose",
        "describe",
        "is_empty",
        "is_duplicated",
        "is_unique",
        "hash_rows",
        "partition_by",
        "unstack",
        "map_rows",
        "width",
        "dtypes",
        "collect_batches",
    }
)


def wrap(
    inner: pl.LazyFrame | pl.DataFrame,
    slots: HiddenSlots,
    state: FrameState,
    plan: pl.LazyFrame | None = None,
) -> Any:
    """Wrap a polars frame holding hidden columns in the matching proxy."""
    if isinstance(inner, pl.LazyFrame):
        return TracedLazyFrame(inner, slots, state, inner)
    return TracedPolarsFrame(inner, slots, state, plan)


class _Proxy:
    """Shared behaviour of the lazy and eager proxies."""

    __slots__ = ("_inner", "_plan", "_slots", "_state")

    def __init__(
        self, inner: Any, slots: HiddenSlots, state: FrameState, plan: pl.LazyFrame | None = None
    ) -> None:
        object.__setattr__(self, "_inner", inner)
        object.__setattr__(self, "_slots", slots)
        object.__setattr__(self, "_state", state)
        object.__setattr__(self, "_plan", plan)

    # ------------------------------------------------------------ helpers
    @property
    def _hidden(self) -> list[str]:
        return [name for name, _ in self._slots]

    def _all_names(self) -> list[str]:
        if isinstance(self._inner, pl.LazyFrame):
            return list(self._inner.collect_schema().names())
        return list(self._inner.columns)

    def _visible(self) -> Any:
        return self._inner.drop(self._hidden)

    def _derive(
        self,
        inner: Any,
        name: str,
        kind: str,
        params: dict[str, Any] | None = None,
        *,
        slots: HiddenSlots | None = None,
        others: Sequence[_Proxy] = (),
        fallback: bool = False,
        inputs: Sequence[OpNode] = (),
    ) -> Any:
        node = record_op(
            f"polars.{name}",
            kind,
            [self._state.node, *(o._state.node for o in others), *inputs],
            params,
            fallback=fallback,
        )
        state = self._state.derive(node, *(o._state for o in others))
        return wrap(inner, self._slots if slots is None else slots, state, self._plan)

    def _grouped(
        self,
        result: Any,
        keys: Sequence[pl.Expr],
        key_names: Sequence[str],
        name: str,
        params: dict[str, Any],
    ) -> Any:
        hidden = fresh_name()
        node = PolarsGroupNode(self, keys)
        result = result.with_columns(key_struct(key_names).alias(hidden))
        return self._derive(
            result, name, "aggregation", params, slots=((hidden, Slot("group", node)),)
        )

    def _reduce(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        result = getattr(self._visible(), name)(*args, **kwargs)
        if not isinstance(result, pl.DataFrame | pl.LazyFrame):
            return result  # a scalar (e.g. DataFrame.n_unique()) carries no rows
        return self._grouped(
            result.with_columns(pl.lit(0).alias("__rt_all")), [pl.lit(0)], ["__rt_all"], name, {}
        ).drop("__rt_all")

    # ------------------------------------------------------------ schema
    @property
    def columns(self) -> list[str]:
        """The user's column names (hidden lineage columns excluded)."""
        hidden = set(self._hidden)
        return [c for c in self._all_names() if c not in hidden]

    def collect_schema(self) -> pl.Schema:
        """Return the user's schema (hidden lineage columns excluded)."""
        if isinstance(self._inner, pl.LazyFrame):
            return self._visible().collect_schema()  # type: ignore[no-any-return]
        return self._visible().schema  # type: ignore[no-any-return]

    @property
    def schema(self) -> pl.Schema:
        """The user's schema (hidden lineage columns excluded)."""
        return self.collect_schema()

    @property
    def width(self) -> int:
        """Number of user columns."""
        return len(self.columns)

    @property
    def dtypes(self) -> list[pl.DataType]:
        """Dtypes of the user's columns."""
        return list(self.collect_schema().dtypes())

    # ------------------------------------------------------------ row-wise calls
    def _attach_hidden(self, computed: Any, extra: Sequence[pl.Expr] = ()) -> Any:
        """Return ``computed`` (this frame's rows, user columns only) plus the hidden columns."""
        hidden = self._inner.select(*self._hidden, *extra)
        if isinstance(computed, pl.DataFrame):
            return computed.hstack(hidden.get_columns())
        return pl.concat([computed, hidden], how="horizontal")

    def select(self, *exprs: Any, **named: Any) -> Any:
        """``select``; row-wise selections keep lineage, aggregations depend on all rows."""
        flat = [e for x in exprs for e in (x if isinstance(x, list | tuple) else [x])]
        height = probe_height(self.collect_schema(), flat, named)
        if height == 1:
            return self._reduce("select", tuple(flat), named)
        if height not in (None, 2):
            return UnknownCall(self, "select")(*flat, **named)
        extra = expression_lineage(self, [*flat, *named.values()], "select")
        if multi(flat):
            inner = self._attach_hidden(self._visible().select(*flat, **named), extra.columns)
        else:
            inner = self._inner.select(*flat, *self._hidden, *extra.columns, **named)
        return self._row_wise(inner, "select", len(flat) + len(named), extra)

    def with_columns(self, *exprs: Any, **named: Any) -> Any:
        """``with_columns``; rows keep their lineage, statistics and windows are recorded."""
        flat = [e for x in exprs for e in (x if isinstance(x, list | tuple) else [x])]
        extra = expression_lineage(self, [*flat, *named.values()], "with_columns")
        if multi(flat):
            visible = self._visible().with_columns(*flat, **named)
            inner = self._attach_hidden(visible, extra.columns)
        else:
            inner = self._inner.with_columns(*flat, *extra.columns, **named)
        return self._row_wise(inner, "with_columns", len(flat) + len(named), extra)

    def _row_wise(self, inner: Any, name: str, n_exprs: int, extra: ExpressionLineage) -> Any:
        slots = (*self._slots, *extra.slots)
        params = {"n_exprs": n_exprs}
        return self._derive(inner, name, "transformation", params, slots=slots, inputs=extra.nodes)

    def drop(self, *columns: Any, strict: bool = True) -> Any:
        """``drop`` of user columns; lineage columns stay."""
        kept = self._visible().drop(*columns, strict=strict)
        names = kept.collect_schema().names() if isinstance(kept, pl.LazyFrame) else kept.columns
        return self._derive(self._inner.select(*names, *self._hidden), "drop", "transformation")

    def rename(self, mapping: Any, *, strict: bool = True) -> Any:
        """``rename`` of user columns."""
        if callable(mapping):
            mapping = {c: mapping(c) for c in self.columns}
        return self._derive(self._inner.rename(mapping, strict=strict), "rename", "transformation")

    def cast(self, dtypes: Any, *, strict: bool = True) -> Any:
        """``cast`` of user columns."""
        if not isinstance(dtypes, dict):
            dtypes = dict.fromkeys(self.columns, dtypes)
        return self._derive(self._inner.cast(dtypes, strict=strict), "cast", "transformation")

    def fill_null(self, *args: Any, **kwargs: Any) -> Any:
        """``fill_null`` of user columns (lineage columns are never null-filled)."""
        strategy = kwargs.get("strategy", args[1] if len(args) > 1 else None)
        value = kwargs.get("value", args[0] if args else None)
        extra = fill_null_lineage(self, value, strategy)
        if strategy is None and (args or "value" in kwargs) and not extra.columns:
            # A value fill skips the Int64 id columns (never null) and the key structs (no
            # supertype with a scalar), so it can run on the whole frame inside the plan.
            inner = self._inner.fill_null(*args, **kwargs)
        else:
            inner = self._attach_hidden(self._visible().fill_null(*args, **kwargs), extra.columns)
        return self._row_wise(inner, "fill_null", 1, extra)

    def drop_nulls(self, subset: Any = None) -> Any:
        """``drop_nulls`` over the user's columns."""
        subset = self.columns if subset is None else subset
        return self._derive(self._inner.drop_nulls(subset), "drop_nulls", "filter")

    def drop_nans(self, subset: Any = None) -> Any:
        """``drop_nans`` over the user's columns."""
        subset = (
            [c for c, t in self.collect_schema().items() if t.is_float()]
            if subset is None
            else subset
        )
        return self._derive(self._inner.drop_nans(subset), "drop_nans", "filter")

    def unique(self, subset: Any = None, *args: Any, **kwargs: Any) -> Any:
        """Drop duplicate rows over the user's columns (``unique``); kept rows keep lineage."""
        subset = self.columns if subset is None else subset
        return self._derive(self._inner.unique(subset, *args, **kwargs), "unique", "filter")

    def join(self, other: Any, *args: Any, **kwargs: Any) -> Any:
        """``join``; each result row carries the lineage of its left and right rows."""
        how = kwargs.get("how", args[1] if len(args) > 1 else "inner")
        if not isinstance(other, _Proxy):
            return self._derive(
                self._inner.join(other, *args, **kwargs), "join", "join", {"how": how}
            )
        renames = {h: fresh_name() for h in other._hidden}
        right = other._inner.rename(renames)
        right_slots = tuple((renames[h], s) for h, s in other._slots)
        inner = self._inner.join(right, *args, **kwargs)
        if how in ("semi", "anti"):
            return self._derive(inner, "join", "join", {"how": how}, others=[other])
        fills = [
            pl.col(h).fill_null(-1) for h, s in (*self._slots, *right_slots) if s.kind == "ids"
        ]
        if how in ("left", "right", "full", "outer"):
            inner = inner.with_columns(fills)
        return self._derive(
            inner, "join", "join", {"how": how}, slots=(*self._slots, *right_slots), others=[other]
        )

    def pipe(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``pipe``: call ``function`` with this traced frame (hidden columns stay hidden)."""
        return function(self, *args, **kwargs)

    def group_by(self, *by: Any, maintain_order: bool = False, **named_by: Any) -> TracedGroupBy:
        """``group_by``; aggregated rows name every input row of their group."""
        return TracedGroupBy(self, by, maintain_order, named_by)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name in _EXPORT or name.startswith(_EXPORT_PREFIXES):
            self._state.resolve()  # rows leave the plan: register pending sources
            if isinstance(self._inner, pl.DataFrame) and (
                name in VALUED_EXPORTS or name in COLUMN_EXPORTS
            ):
                return valued_export(self, name, lambda: _view(self).lineage)
            return getattr(self._visible(), name)
        if not callable(attr):
            return attr
        if name in _CARRY:
            return lambda *a, **k: self._derive(attr(*a, **k), name, "filter", {})
        if name in _REDUCE:
            return lambda *a, **k: self._reduce(name, a, k)
        return UnknownCall(self, name)

    def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
        """``numpy.asarray(frame)`` of the user's columns (never the hidden ones).

        Warns when unwrapped scikit-learn does it (see :mod:`._escape`).
        """
        warn_if_sklearn_converts("polars frame")
        self._state.resolve()
        visible = self._visible()
        if isinstance(visible, pl.LazyFrame):
            visible = visible.collect()
        return visible.__array__(dtype, copy)

    def __repr__(self) -> str:
        return repr(self._visible())

    def __str__(self) -> str:
        return str(self._visible())

    def _repr_html_(self) -> str:
        return str(self._visible()._repr_html_())


class TracedLazyFrame(_Proxy):
    """A ``polars.LazyFrame`` proxy whose rows carry hidden source row ids."""

    __slots__ = ()

    def collect(self, *args: Any, **kwargs: Any) -> TracedPolarsFrame:
        """Run the plan; the result keeps lineage and the optimized plan.

        A scan's file is read here, so polars' own errors about it (a malformed CSV, a missing
        column) surface here; they are raised as :class:`~rowtrail.errors.InvalidInputError`,
        and nothing is registered.
        """
        try:
            frame = self._inner.collect(*args, **kwargs)
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise InvalidInputError(
                f"the lazy plan of a traced polars frame failed when collected: {exc}. Check the "
                "scanned file and the operations on it; nothing was registered."
            ) from exc
        self._state.resolve()  # the file was hashed while the plan ran; register it now
        node = record_op("polars.collect", "identity", [self._state.node], {})
        return TracedPolarsFrame(frame, self._slots, self._state.derive(node), self._inner)

    def lazy(self) -> TracedLazyFrame:
        """Return self (already lazy)."""
        return self


class TracedPolarsFrame(_Proxy):
    """A ``polars.DataFrame`` proxy whose rows carry hidden source row ids."""

    __slots__ = ()

    @property
    def height(self) -> int:
        """Number of rows."""
        return int(self._inner.height)

    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, user columns)``."""
        return self.height, self.width

    def __len__(self) -> int:
        return self.height

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return traced_series(self._inner[key], self, lambda: _view(self).lineage)
        if isinstance(key, list | tuple) and key and all(isinstance(k, str) for k in key):
            return self.select(list(key))
        if isinstance(key, tuple) and len(key) == 2 and key[1] is Ellipsis:
            key = key[0]  # scikit-learn's _safe_indexing selects rows as X[indices, ...]
        result = self._inner[key]
        if isinstance(result, pl.DataFrame) and all(h in result.columns for h in self._hidden):
            return self._derive(result, "getitem", "filter", {})
        return result

    def lazy(self) -> TracedLazyFrame:
        """Return a lazy proxy over the same rows."""
        return TracedLazyFrame(self._inner.lazy(), self._slots, self._state, None)

    def to_dummies(self, columns: Any = None, **kwargs: Any) -> Any:
        """``to_dummies`` of user columns (all of them by default)."""
        columns = self.columns if columns is None else columns
        return self._derive(
            self._inner.to_dummies(columns, **kwargs),
            "to_dummies",
            "transformation",
            {"columns": repr(columns)},
        )

    def pivot(self, on: Any, *args: Any, index: Any = None, **kwargs: Any) -> Any:
        """``pivot``; each result row names the input rows of its index key."""
        if index is None:
            raise_missing_index()
        keys = [index] if isinstance(index, str) else list(index)
        result = self._visible().pivot(on, *args, index=keys, **kwargs)
        return self._grouped(
            result,
            [pl.col(k) for k in keys],
            keys,
            "pivot",
            {"index": repr(keys)},
        )


def _view(obj: _Proxy) -> FrameLineageView:
    def lineage() -> RowLineage:
        hidden = obj._inner.select(obj._hidden)
        frame = hidden.collect() if isinstance(hidden, pl.LazyFrame) else hidden
        return materialize(obj._slots, frame)

    plan = obj._plan
    return FrameLineageView(
        lineage, obj._state, plan=(lambda: str(plan.explain())) if plan is not None else None
    )


register_lineage_handler("polars", lambda obj: isinstance(obj, _Proxy), _view)
