"""polars adapter: statistics and row-mixing functions inside ``with_columns`` / ``select``.

A row-wise ``with_columns`` / ``select`` may still read other rows: an aggregation broadcast
onto the rows (``(pl.col("a") - pl.col("a").mean()) / pl.col("a").std()``,
``pl.col("a").fill_null(pl.col("a").mean())``) fits a statistic on every row of the input; a
window (``pl.col("a").mean().over("k")``) fits one per key; a row-mixing function
(``shift``, ``cum_sum``, ``rank``, ``rolling_mean``, a forward fill, ...) reads neighbouring
rows. The expressions are read from their serialized tree (``Expr.meta.serialize``), and
each finding becomes one hidden struct column evaluated in the same call:

- global statistics: one statistic slot (see :mod:`._stats`) fitted on all input rows, not
  part of ``rows_of`` (as for NumPy);
- a window with an aggregation: a group slot keyed by the ``partition_by`` expressions that
  is also a statistic (the row's value is its group's aggregate, so the group is in
  ``rows_of`` too, as for pandas ``groupby.transform``); a window without one (``rank``,
  ``cum_sum`` over a key) keeps its group in ``rows_of`` only;
- a row-mixing function outside a window: a sound fallback to all input rows in
  ``rows_of``, with a :class:`~rowtrail.errors.LineageFallbackWarning` naming the function.
"""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import polars as pl

from rowtrail.errors import LineageFallbackWarning
from rowtrail.lineage.frames._core import Slot, fresh_name, record_op
from rowtrail.lineage.frames._ops import OpNode
from rowtrail.lineage.frames._polars_group import HiddenSlots, PolarsGroupNode
from rowtrail.lineage.frames._stats import fitted_slots, scope_of

__all__ = ["ExpressionLineage", "expression_lineage", "fill_null_lineage"]

# Functions (``{"Function": {"function": NAME}}``) fitted on every row of a column: they
# reduce it to one value, or give each row a value computed from all rows (a rank, a
# duplicate flag) without copying other rows' data into it.
_REDUCING: Final = frozenset(
    {
        "Quantile",
        "NullCount",
        "ArgMax",
        "ArgMin",
        "Len",
        "Rank",
        "IsDuplicated",
        "IsUnique",
        "IsFirstDistinct",
        "IsLastDistinct",
    }
)
# Functions that make a row's value depend on other rows (outside a window: fallback).
_MIXING: Final = frozenset(
    {
        "Shift",
        "CumSum",
        "CumProd",
        "CumMin",
        "CumMax",
        "CumCount",
        "Diff",
        "PctChange",
        "RollingExpr",
        "RollingExprBy",
        "EwmMean",
        "EwmStd",
        "EwmVar",
        "Interpolate",
        "Reverse",
        "Random",
        "ArgSort",
        "Sort",
        "SortBy",
        "Gather",
    }
)


@dataclass
class _Findings:
    statistics: list[str] = field(default_factory=list)
    windows: dict[str, tuple[list[Any], list[tuple[str, str]]]] = field(default_factory=dict)
    mixing: list[str] = field(default_factory=list)
    opaque: bool = False


def _function_name(function: Any) -> str:
    if isinstance(function, str):
        return function
    if isinstance(function, dict) and len(function) == 1:
        (name, value), *_ = function.items()
        if name == "Boolean" and isinstance(value, str):
            return value
        if name == "FillNullWithStrategy" and value in ("Mean", "Min", "Max"):
            return "FillNullWithStatistic"
        return str(name)
    return "?"


def _text(node: Any) -> str:
    """Return the polars text of a serialized expression node (``col("a").mean()``)."""
    try:
        return str(pl.Expr.deserialize(io.StringIO(json.dumps(node)), format="json"))
    except Exception:  # pragma: no cover - a node polars cannot read back alone
        return json.dumps(node)[:120]


def _kind(node: dict[str, Any]) -> tuple[str, str] | None:
    """Return ``("stat", text)`` or ``("mixing", name)`` for one expression node, or None."""
    if "Agg" in node:
        return "stat", _text(node)
    for name in ("Sort", "SortBy", "Gather"):
        if name in node:
            return "mixing", name
    anonymous = node.get("AnonymousFunction")
    if isinstance(anonymous, dict):  # a Python function: elementwise only if polars says so
        flags = str((anonymous.get("options") or {}).get("flags", ""))
        return None if "ROW_SEPARABLE" in flags else ("mixing", "map_batches")
    function = node.get("Function")
    if isinstance(function, dict):
        name = _function_name(function.get("function"))
        if name in _REDUCING or name == "FillNullWithStatistic":
            return "stat", _text(node)
        if name in _MIXING or name == "FillNullWithStrategy":
            return "mixing", name
    return None


def _walk(node: Any, found: _Findings, window: list[tuple[str, str]] | None) -> None:
    """Collect statistics, windows and row-mixing functions of one serialized expression."""
    if node == "Len":
        node = {"Function": {"function": "Len", "input": []}}
    if isinstance(node, list):
        for child in node:
            _walk(child, found, window)
        return
    if not isinstance(node, dict):
        return
    over = node.get("Over")
    if isinstance(over, dict):
        keys = list(over.get("partition_by") or [])
        key = json.dumps(keys, sort_keys=True)
        inner = found.windows.setdefault(key, (keys, []))[1]
        _walk(over.get("function"), found, inner)
        return
    kind = _kind(node)
    if kind is not None and window is not None:
        window.append(kind)
    elif kind is not None:
        (found.statistics if kind[0] == "stat" else found.mixing).append(kind[1])
    if kind is None or kind[0] == "mixing":
        for child in node.values():
            _walk(child, found, window)


def _findings(exprs: Sequence[Any]) -> _Findings:
    found = _Findings()
    for expr in exprs:
        if not isinstance(expr, pl.Expr):
            continue
        try:
            tree = json.loads(expr.meta.serialize(format="json"))
        except Exception:  # a Python function inside (map_batches): cannot be read
            found.opaque = True
            continue
        _walk(tree, found, None)
    return found


@dataclass
class ExpressionLineage:
    """What a row-wise call must add: hidden struct columns, their slots, their ops."""

    columns: list[pl.Expr] = field(default_factory=list)
    slots: HiddenSlots = ()
    nodes: list[OpNode] = field(default_factory=list)

    def add(self, proxy: Any, keys: Sequence[pl.Expr], node: OpNode, slot_of: Any) -> None:
        """Add one hidden key struct over ``keys`` and its slot (``slot_of(group_node)``)."""
        hidden = fresh_name()
        struct = pl.struct(
            pl.lit(True).alias("__p"), *[k.alias(f"k{i}") for i, k in enumerate(keys)]
        )
        self.columns.append(struct.alias(hidden))
        self.slots = (*self.slots, (hidden, slot_of(PolarsGroupNode(proxy, keys))))
        self.nodes.append(node)

    def add_fitted(self, slot: Slot) -> None:
        """Add a statistic fitted elsewhere whose value the call uses as a literal."""
        self.columns.append(pl.lit(0, dtype=pl.Int64).alias(fresh_name()))
        self.slots = (*self.slots, (self.columns[-1].meta.output_name(), slot))
        if slot.stat is not None:
            self.nodes.append(slot.stat)


def expression_lineage(proxy: Any, exprs: Sequence[Any], call: str) -> ExpressionLineage:
    """Return the statistics, windows and fallbacks of a row-wise ``call`` (module docstring).

    A literal equal to a value fitted on traced rows (``pl.col("a").fill_null(m)`` with
    ``m = df.select(pl.col("a").mean()).item()``) records that statistic on every row (see
    :class:`~rowtrail.lineage.frames._stats.FittedValues`).
    """
    out = _lineage(proxy, _findings(exprs), call)
    values = [v for e in exprs for v in (literal_values(e) if isinstance(e, pl.Expr) else [e])]
    for slot in fitted_slots(*values, scope=scope_of(proxy._state.workspace)):
        out.add_fitted(slot)
    return out


def literal_values(expr: pl.Expr, limit: int = 100_000) -> list[Any]:
    """Return the literal values inside ``expr`` (a mapping's values, a fill value, ...).

    Read from the serialized tree: a float literal directly, any other literal (a list or a
    Series, as ``replace_strict(mapping)`` holds) by evaluating that literal alone.
    """
    try:
        tree = json.loads(expr.meta.serialize(format="json"))
    except Exception:  # a Python function inside: its literals cannot be read
        return []
    found: list[Any] = []
    stack: list[Any] = [tree]
    while stack and len(found) < limit:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        literal = node.get("Literal")
        if literal is None:
            stack.extend(node.values())
            continue
        dynamic = literal.get("Dyn") if isinstance(literal, dict) else None
        if isinstance(dynamic, dict) and "Float" in dynamic:
            found.append(float(dynamic["Float"]))
            continue
        try:
            series = pl.select(_expr(node)).to_series()
        except Exception:  # pragma: no cover - a literal polars cannot evaluate alone
            continue
        if series.dtype.is_nested():
            series = series.explode()
        if series.dtype.is_float():
            found.extend(series.head(limit).to_list())
    return found


def fill_null_lineage(proxy: Any, value: Any, strategy: Any) -> ExpressionLineage:
    """Return what a frame's ``fill_null(value)`` / ``fill_null(strategy=...)`` must record.

    ``"mean"`` / ``"min"`` / ``"max"`` fit a statistic on all rows; a value expression is
    read like any expression.
    """
    if strategy in ("mean", "min", "max"):
        text = f"fill_null(strategy={strategy!r})"
        return _lineage(proxy, _Findings(statistics=[text]), "fill_null")
    # A frame's forward / backward fill stays row-wise, as the frame tests pin it (an
    # expression's ``forward_fill()`` falls back); a value expression is read as any other.
    return expression_lineage(proxy, [value], "fill_null")


def _lineage(proxy: Any, found: _Findings, call: str) -> ExpressionLineage:
    out = ExpressionLineage()
    parent = [proxy._state.node]
    if found.statistics:
        params = {"call": call, "statistics": list(dict.fromkeys(found.statistics))}
        node = record_op("polars.statistics", "aggregation", parent, params, statistics=True)
        out.add(proxy, [pl.lit(0)], node, lambda g: Slot("group", g, stat=node, in_rows=False))
    for keys_json, inner in found.windows.values():
        keys = [_expr(k) for k in keys_json]
        fitted = [text for kind, text in inner if kind == "stat"]
        params = {"partition_by": [str(k) for k in keys], "functions": [t for _, t in inner]}
        node = record_op("polars.over", "aggregation", parent, params, statistics=bool(fitted))
        stat = node if fitted else None
        out.add(proxy, keys, node, lambda g, stat=stat: Slot("group", g, stat=stat))
    if found.mixing or found.opaque:
        names = sorted(set(found.mixing)) or ["a Python function (map_batches)"]
        warnings.warn(
            f"rowtrail does not follow rows through polars {', '.join(names)} in {call}(); "
            "lineage of its rows falls back to all input rows (sound, not exact).",
            LineageFallbackWarning,
            stacklevel=4,
        )
        params = {"call": call, "functions": names}
        node = record_op("polars.row_mixing", "unknown", parent, params, fallback=True)
        out.add(proxy, [pl.lit(0)], node, lambda g: Slot("group", g))
    return out


def _expr(node: Any) -> pl.Expr:
    return pl.Expr.deserialize(io.StringIO(json.dumps(node)), format="json")
