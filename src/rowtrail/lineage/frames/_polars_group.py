"""polars adapter internals: hidden-key group nodes, expression probes, unknown-call fallback.

A polars group-by keeps, per output row, a hidden struct of its group keys (plus a non-null
marker); :class:`PolarsGroupNode` maps those keys back to the input rows on the first lineage
query (one ``unique`` + two joins), so capture adds one struct column and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import polars as pl

from rowtrail.errors import LineageError
from rowtrail.lineage.frames._core import (
    GroupNode,
    IdArray,
    RowLineage,
    Slot,
)

__all__ = [
    "HiddenSlots",
    "PolarsGroupNode",
    "TracedGroupBy",
    "UnknownCall",
    "key_struct",
    "materialize",
    "multi",
    "probe_height",
    "raise_missing_index",
]

HiddenSlots = tuple[tuple[str, Slot], ...]


def key_struct(names: Sequence[str]) -> pl.Expr:
    """Hidden group value: a non-null marker plus the keys (null struct = no group)."""
    return pl.struct(
        pl.lit(True).alias("__p"), *[pl.col(n).alias(f"k{i}") for i, n in enumerate(names)]
    )


class PolarsGroupNode(GroupNode):
    """A polars group-by: input rows grouped by key expressions, resolved on first query."""

    def __init__(self, source: Any, keys: Sequence[pl.Expr]) -> None:
        self._keys = [k.alias(f"k{i}") for i, k in enumerate(keys)]
        self._unique: pl.DataFrame | None = None
        inner, slots = source._inner, source._slots
        names = [f"k{i}" for i in range(len(self._keys))]

        def load() -> tuple[IdArray, RowLineage]:
            frame = inner.select(*self._keys, *[pl.col(h) for h, _ in slots])
            if isinstance(frame, pl.LazyFrame):
                frame = frame.collect()
            keyframe = frame.select(names)
            self._unique = keyframe.unique(maintain_order=True).with_row_index("__g")
            codes = keyframe.join(
                self._unique, on=names, how="left", nulls_equal=True, maintain_order="left"
            )["__g"]
            return codes.cast(pl.Int64).to_numpy(), materialize(slots, frame)

        super().__init__(load)

    def codes_of(self, values: pl.Series) -> IdArray:
        """Group codes of hidden key structs (``-1`` where the struct is null)."""
        self._load()
        if self._unique is None:  # pragma: no cover - _load always sets it
            raise LineageError("polars group node has no key table")
        keys = values.struct.unnest()
        names = [f"k{i}" for i in range(len(self._keys))]
        joined = keys.join(
            self._unique, on=names, how="left", nulls_equal=True, maintain_order="left"
        )
        codes = joined["__g"].cast(pl.Int64).fill_null(-1).to_numpy()
        return np.where(joined["__p"].is_null().to_numpy(), -1, codes).astype(np.int64)


def materialize(slots: HiddenSlots, frame: pl.DataFrame) -> RowLineage:
    """Return the :class:`RowLineage` of an eager frame holding the hidden columns."""
    values: list[IdArray] = []
    for name, slot in slots:
        column = frame[name]
        if slot.kind == "ids":
            ids = column.fill_null(-1).cast(pl.Int64).to_numpy()
            if slot.pending is not None:
                ids = np.where(ids >= 0, ids + slot.pending.base, -1)
            values.append(ids)
        elif isinstance(slot.group, PolarsGroupNode):
            values.append(slot.group.codes_of(column))
        else:  # a statistic fitted elsewhere, used as a literal: a code column (0, or -1)
            values.append(column.cast(pl.Int64).fill_null(-1).to_numpy())
    return RowLineage([s for _, s in slots], values, frame.height)


def multi(exprs: Sequence[Any]) -> bool:
    """Whether any expression expands to several columns (``pl.all()``, selectors)."""
    return any(isinstance(e, pl.Expr) and e.meta.has_multiple_outputs() for e in exprs)


def probe_height(schema: pl.Schema, exprs: Sequence[Any], named: dict[str, Any]) -> int | None:
    """Height of a select on 2 null rows: 2 row-wise, 1 aggregate, other: rows change."""
    try:
        two = pl.DataFrame(schema=schema).clear(2).select(*exprs, **named).height
        if two == 1 and pl.DataFrame(schema=schema).clear(3).select(*exprs, **named).height != 1:
            return None
        return int(two)
    except Exception:
        return None


def raise_missing_index() -> None:
    """Raise the error for a pivot without ``index``."""
    from rowtrail.errors import InvalidInputError

    raise InvalidInputError(
        "index of rt.polars pivot must name the row key columns; got None. "
        "Pass index='SK_ID_CURR' (rows of the result are the index keys)."
    )


class TracedGroupBy:
    """A polars group-by over a traced frame: results keep group lineage via hidden keys."""

    def __init__(
        self, proxy: Any, by: tuple[Any, ...], maintain_order: bool, named_by: dict[str, Any]
    ) -> None:
        self._proxy = proxy
        flat = [b for x in by for b in (x if isinstance(x, list | tuple) else [x])]
        self._keys = [pl.col(b) if isinstance(b, str) else b for b in flat]
        self._keys += [e.alias(n) for n, e in named_by.items()]
        self._names = [k.meta.output_name() for k in self._keys]
        self._grouped = proxy._visible().group_by(*flat, maintain_order=maintain_order, **named_by)

    def _finish(self, name: str, result: Any) -> Any:
        return self._proxy._grouped(
            result, self._keys, self._names, f"group_by.{name}", {"by": self._names}
        )

    def agg(self, *aggs: Any, **named: Any) -> Any:
        """``agg``; each group row names all input rows of its group."""
        return self._finish("agg", self._grouped.agg(*aggs, **named))

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._grouped, name)
        return lambda *a, **k: self._finish(name, method(*a, **k))


class UnknownCall:
    """A polars method the adapter does not know: run it, then keep or fall back soundly."""

    def __init__(self, proxy: Any, name: str) -> None:
        self._proxy, self._name = proxy, name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        proxy = self._proxy
        result = getattr(proxy._inner, self._name)(*args, **kwargs)
        if not isinstance(result, pl.LazyFrame | pl.DataFrame):
            return result
        names = (
            result.collect_schema().names() if isinstance(result, pl.LazyFrame) else result.columns
        )
        if all(h in names for h in proxy._hidden):
            return proxy._derive(result, self._name, "transformation", {})
        import warnings

        from rowtrail.errors import LineageFallbackWarning

        warnings.warn(
            f"rowtrail does not follow rows through polars {self._name}(); lineage of its "
            "result falls back to all input rows (sound, not exact).",
            LineageFallbackWarning,
            stacklevel=2,
        )
        result = result.drop([h for h in proxy._hidden if h in names])
        result = result.with_columns(pl.lit(0).alias("__rt_all"))
        return proxy._grouped(result, [pl.lit(0)], ["__rt_all"], self._name, {}).drop("__rt_all")
