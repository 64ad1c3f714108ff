"""polars adapter: values read back from traced frames as plain numbers.

A statistic computed with polars often leaves the plan as a Python number:
``df.select(pl.col("a").mean()).item()``, ``df["a"].mean()``, a group-by's means read with
``rows()`` / ``to_dicts()``. Such numbers are noted in
:data:`~rowtrail.lineage.frames._stats.FITTED_VALUES` with the rows they were fitted on, so a
later call on a traced frame that uses one as a literal records the statistic:

- values of a small aggregated frame (at most ``MAX_NOTED_ROWS`` rows) read with ``item``,
  ``row``, ``rows``, ``iter_rows`` or ``to_dicts``: each row's floats are fitted on that row's
  rows (a group's rows, or every row for a global aggregate);
- a column taken from a traced frame (``df["a"]``, ``get_column``, ``to_series``) is a
  :class:`TracedPolarsSeries`; its reductions (``mean``, ``median``, ``std``, ``quantile``, ...)
  note their result as fitted on every row of the frame. Series derived from it
  (``df["a"].fill_null(0)``) are plain polars Series: reduce through expressions
  (``pl.col("a").fill_null(0).mean()``) for those to be recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import polars as pl

from rowtrail.lineage.frames._core import RowLineage, Slot, record_op
from rowtrail.lineage.frames._stats import (
    MAX_NOTED_ROWS,
    global_stat_slot,
    note_fitted,
    note_rows,
    scope_of,
)

__all__ = [
    "COLUMN_EXPORTS",
    "VALUED_EXPORTS",
    "TracedPolarsSeries",
    "traced_series",
    "valued_export",
]

# Exports that hand row values to Python.
VALUED_EXPORTS: Final = frozenset({"item", "row", "rows", "iter_rows", "to_dicts"})
# Exports that hand out columns.
COLUMN_EXPORTS: Final = frozenset({"get_column", "to_series", "get_columns", "to_dict"})
_REDUCTIONS: Final = ("mean", "median", "std", "var", "sum", "min", "max", "quantile", "product")


class TracedPolarsSeries(pl.Series):
    """A column of a traced polars frame; its reductions note the value they fitted."""

    _rt_fitted: Callable[[], Slot] | None = None
    _rt_scope: object = None


def _reduction(name: str) -> Callable[..., Any]:
    base = getattr(pl.Series, name)

    def method(self: TracedPolarsSeries, *args: Any, **kwargs: Any) -> Any:
        value = base(self, *args, **kwargs)
        fitted = self._rt_fitted
        if fitted is not None and isinstance(value, float):
            note_fitted([value], [fitted()], self._rt_scope)
        return value

    method.__name__ = name
    method.__doc__ = f"``Series.{name}``; the value is noted as fitted on the frame's rows."
    return method


for _name in _REDUCTIONS:
    setattr(TracedPolarsSeries, _name, _reduction(_name))


def traced_series(series: Any, proxy: Any, lineage: Callable[[], RowLineage]) -> Any:
    """Return ``series`` (a column of ``proxy``) as a :class:`TracedPolarsSeries`."""
    if not isinstance(series, pl.Series):
        return series
    traced = TracedPolarsSeries._from_pyseries(series._s)
    state = proxy._state
    cache: list[Slot] = []

    def fitted() -> Slot:
        if not cache:
            params = {"column": series.name}
            node = record_op(
                "polars.Series.reduce", "aggregation", [state.node], params, statistics=True
            )
            cache.append(global_stat_slot(lineage, node))
        return cache[0]

    traced._rt_fitted = fitted
    traced._rt_scope = scope_of(state.workspace)
    return traced


def valued_export(proxy: Any, name: str, lineage: Callable[[], RowLineage]) -> Callable[..., Any]:
    """Return the export ``name`` of ``proxy``'s visible frame, noting the values it reads."""
    visible = proxy._visible()
    call = getattr(visible, name)

    def run(*args: Any, **kwargs: Any) -> Any:
        result = call(*args, **kwargs)
        if name in COLUMN_EXPORTS:
            if isinstance(result, dict):
                return {k: traced_series(v, proxy, lineage) for k, v in result.items()}
            if isinstance(result, list):
                return [traced_series(v, proxy, lineage) for v in result]
            return traced_series(result, proxy, lineage)
        height = proxy._inner.height
        if 0 < height <= MAX_NOTED_ROWS:
            node = record_op(
                f"polars.{name}",
                "aggregation",
                [proxy._state.node],
                {"rows": height},
                statistics=True,
            )
            scope = scope_of(proxy._state.workspace)
            note_rows(visible.rows(), lineage(), node, scope)
        return result

    return run
