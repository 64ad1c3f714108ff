"""Spark adapter: fitted statistics, and the window functions it does not follow.

Covered exactly:

- a value fitted by a Spark aggregation and brought back to Python
  (``m = sdf.agg(F.mean("a")).first()[0]``, ``sdf.select(F.mean("a")).collect()``,
  ``sdf.groupBy(...).agg(...).collect()``) is a traced number (see :mod:`._stats`) naming the
  rows it was aggregated from; ``sdf.fillna(m)`` / ``sdf.fillna({"a": m})`` /
  ``sdf.na.fill(...)`` then records it as a statistic of every row of the result (a Spark
  frame has no stable row order, so the statistic is kept per frame, not per filled row).

Not followed, with a :class:`~rowtrail.errors.LineageFallbackWarning` naming the function and
a sound fallback to all input rows: window functions (``F.mean("a").over(w)``,
``F.lag``, ``F.rank``, ...) in ``select`` / ``withColumn`` / ``withColumns``.

A number fitted on traced rows and written into a Column expression (``F.col("a") - m``,
``F.when(F.col("a").isNull(), m)``) becomes a Spark literal without identity; ``select`` /
``withColumn`` / ``withColumns`` / ``fillna`` read the float literals of their Columns and
record the statistic whose fitted value they equal (see
:class:`~rowtrail.lineage.frames._stats.FittedValues`: a match can add a statistic, never
miss one that was copied exactly).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rowtrail.lineage.frames._core import RowLineage, Slot, record_op
from rowtrail.lineage.frames._stats import global_stat_slot, scope_of, traced_number

__all__ = ["traced_rows", "window_functions"]


def window_functions(columns: Sequence[Any]) -> list[str]:
    """Return the text of every Column in ``columns`` that holds a window function."""
    found: list[str] = []
    for column in columns:
        if isinstance(column, str):
            continue
        text = str(column)
        if " OVER (" in text:
            found.append(text.removeprefix("Column<'").removesuffix("'>"))
    return found


def traced_rows(frame: Any, rows: list[Any], lineage: RowLineage, name: str) -> list[Any]:
    """Return collected rows of an aggregated frame with numbers traced to their rows.

    Each numeric value of row ``i`` becomes a traced number fitted on ``rows_of(i)``: the rows
    the aggregation read for that result row.
    """
    from pyspark.sql import Row

    params = {"aggregation": frame._state.node.name, "columns": list(frame.columns)}
    node = record_op(f"spark.{name}", "aggregation", [frame._state.node], params, statistics=True)
    out = []
    for i, row in enumerate(rows):
        own = RowLineage.from_ids(lineage.ids_of_rows(np.array([i], dtype=np.intp)))
        slot: Slot = global_stat_slot(own, node)
        scope = scope_of(frame._state.workspace)
        values = {k: traced_number(v, (slot,), scope) for k, v in row.asDict().items()}
        out.append(Row(**values))
    return out
