"""Spark adapter: a proxy over ``pyspark.sql.DataFrame`` carrying hidden id columns.

Hidden columns (``__rt_<n>``) ride inside the Spark plan: ``long`` source row ids through
filter / select / sort / join (the missing side of an outer join is null), and ``array<long>``
id lists after a ``groupBy`` (``collect_list``, flattened through nested aggregations), since
Spark has no cheap per-row group code to keep. The proxy hides them from ``columns`` /
``schema`` / ``collect`` / ``toPandas`` / ``show`` / writes. A Spark frame has no stable row
order between actions, so ``rt.lineage(sdf)`` collects the rows and their lineage together
once; its ``rows`` are the rows that ``rows_of(i)`` describes.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from rowtrail.errors import LineageFallbackWarning
from rowtrail.lineage._dispatch import register_lineage_handler
from rowtrail.lineage.frames._core import (
    IDS,
    FrameState,
    GroupNode,
    IdArray,
    RowLineage,
    Slot,
    fresh_name,
    record_op,
)
from rowtrail.lineage.frames._query import FrameLineageView
from rowtrail.lineage.frames._spark_stats import window_functions
from rowtrail.lineage.frames._stats import fitted_slots, scope_of, with_slots

__all__ = ["SparkLineageView", "TracedSparkFrame", "materialize_rows"]

_CARRY = frozenset(
    {
        "filter",
        "where",
        "orderBy",
        "sort",
        "limit",
        "sample",
        "withColumnRenamed",
        "withColumnsRenamed",
        "cache",
        "persist",
        "unpersist",
        "repartition",
        "coalesce",
        "sortWithinPartitions",
        "alias",
        "hint",
        "localCheckpoint",
        "checkpoint",
    }
)
_EXPORT = frozenset(
    {
        "toPandas",
        "show",
        "write",
        "writeTo",
        "toLocalIterator",
        "take",
        "head",
        "count",
        "printSchema",
        "describe",
        "summary",
        "toJSON",
        "toArrow",
        "rdd",
        "isEmpty",
        "tail",
        "createOrReplaceTempView",
        "createTempView",
        "explain",
    }
)


def _functions() -> Any:
    from pyspark.sql import functions

    return functions


class TracedSparkFrame:
    """A ``pyspark.sql.DataFrame`` proxy whose rows carry hidden source row ids."""

    __slots__ = ("_hidden", "_inner", "_state", "_stats")

    def __init__(
        self,
        inner: Any,
        hidden: tuple[tuple[str, str], ...],
        state: FrameState,
        stats: tuple[Slot, ...] = (),
    ) -> None:
        object.__setattr__(self, "_inner", inner)
        object.__setattr__(self, "_hidden", hidden)
        object.__setattr__(self, "_state", state)
        # Statistics every row depends on (a fill value fitted on rows), kept per frame.
        object.__setattr__(self, "_stats", stats)

    @property
    def _scope(self) -> object:
        return scope_of(self._state.workspace)

    @property
    def _names(self) -> list[str]:
        return [h for h, _ in self._hidden]

    def _visible(self) -> Any:
        return self._inner.drop(*self._names)

    def _derive(
        self,
        inner: Any,
        name: str,
        kind: str,
        *,
        hidden: Any = None,
        others: Sequence[TracedSparkFrame] = (),
        fallback: bool = False,
        stats: Sequence[Slot] = (),
        params: dict[str, Any] | None = None,
    ) -> TracedSparkFrame:
        fitted = [s.stat for s in stats if s.stat is not None]
        node = record_op(
            f"spark.{name}",
            kind,
            [self._state.node, *(o._state.node for o in others), *fitted],
            params,
            fallback=fallback,
            statistics=bool(fitted),
        )
        every = (*self._stats, *(s for o in others for s in o._stats), *stats)
        return TracedSparkFrame(
            inner,
            self._hidden if hidden is None else hidden,
            self._state.derive(node, *(o._state for o in others)),
            tuple(dict.fromkeys(every)),
        )

    def _as_lists(self) -> list[Any]:
        """Aggregate expressions turning every hidden column into one id list per group."""
        functions = _functions()
        return [
            (
                functions.collect_list(h)
                if kind == "ids"
                else functions.flatten(functions.collect_list(h))
            ).alias(fresh_name())
            for h, kind in self._hidden
        ]

    def _aggregated(self, inner: Any, name: str, n_lists: int) -> TracedSparkFrame:
        names = inner.columns[-n_lists:] if n_lists else []
        return self._derive(inner, name, "aggregation", hidden=tuple((n, "list") for n in names))

    # ------------------------------------------------------------ schema
    @property
    def columns(self) -> list[str]:
        """The user's columns (hidden lineage columns excluded)."""
        return list(self._visible().columns)

    @property
    def schema(self) -> Any:
        """The user's schema (hidden lineage columns excluded)."""
        return self._visible().schema

    @property
    def dtypes(self) -> list[tuple[str, str]]:
        """The user's column types."""
        return list(self._visible().dtypes)

    # ------------------------------------------------------------ operations
    def select(self, *cols: Any) -> TracedSparkFrame:
        """``select``; aggregate-only selections depend on all rows."""
        from pyspark.errors import AnalysisException

        flat = [c for x in cols for c in (x if isinstance(x, list | tuple) else [x])]
        if window_functions(flat):
            return self._windowed(self._visible().select(*flat), "select", flat)
        star = any(isinstance(c, str) and c == "*" for c in flat)
        hidden = [] if star else self._names  # "*" already selects the hidden columns
        try:
            inner = self._inner.select(*flat, *hidden)
            inner.schema  # noqa: B018 - forces analysis, which rejects aggregate + plain columns
        except AnalysisException:
            lists = self._as_lists()
            return self._aggregated(self._inner.select(*flat, *lists), "select", len(lists))
        stats = fitted_slots(*flat, scope=self._scope)
        return self._derive(inner, "select", "transformation", stats=stats)

    @property
    def na(self) -> _TracedNa:
        """``DataFrame.na``: ``fill`` / ``drop`` / ``replace`` over the user's columns."""
        return _TracedNa(self)

    def drop(self, *cols: Any) -> TracedSparkFrame:
        """``drop`` of user columns."""
        kept = [c for c in cols if not (isinstance(c, str) and c in self._names)]
        return self._derive(self._inner.drop(*kept), "drop", "transformation")

    def dropna(
        self, how: str = "any", thresh: int | None = None, subset: Any = None
    ) -> TracedSparkFrame:
        """``dropna`` over the user's columns."""
        subset = self.columns if subset is None else subset
        return self._derive(self._inner.dropna(how, thresh, subset), "dropna", "filter")

    def fillna(self, value: Any, subset: Any = None) -> TracedSparkFrame:
        """``fillna`` of user columns only; a fill value fitted on rows is recorded."""
        subset = self.columns if subset is None and not isinstance(value, dict) else subset
        inner = self._inner.fillna(value, subset)
        stats = fitted_slots(value, scope=self._scope)
        return self._derive(inner, "fillna", "transformation", stats=stats)

    def withColumn(self, colName: str, col: Any) -> TracedSparkFrame:  # noqa: N802, N803
        """``withColumn``; a window function falls back to all rows (warns)."""
        if window_functions([col]):
            return self._windowed(self._visible().withColumn(colName, col), "withColumn", [col])
        inner = self._inner.withColumn(colName, col)
        stats = fitted_slots(col, scope=self._scope)
        return self._derive(inner, "withColumn", "transformation", stats=stats)

    def withColumns(self, *colsMap: Any) -> TracedSparkFrame:  # noqa: N802, N803
        """``withColumns``; a window function falls back to all rows (warns)."""
        columns = [c for m in colsMap for c in m.values()]
        if window_functions(columns):
            return self._windowed(self._visible().withColumns(*colsMap), "withColumns", columns)
        inner = self._inner.withColumns(*colsMap)
        stats = fitted_slots(*columns, scope=self._scope)
        return self._derive(inner, "withColumns", "transformation", stats=stats)

    def _windowed(self, inner: Any, name: str, columns: Sequence[Any]) -> TracedSparkFrame:
        functions = "; ".join(window_functions(columns))
        return self._fallback(inner, f"{name}() with {functions}", stacklevel=4)

    def agg(self, *exprs: Any) -> TracedSparkFrame:
        """``agg`` over all rows; the result row names every input row."""
        return self.groupBy().agg(*exprs)

    def collect(self) -> list[Any]:
        """``collect``; numbers of an aggregation's rows are traced to the rows they read."""
        if self._state.node.kind != "aggregation" or not self._hidden:
            return list(self._visible().collect())
        from pyspark.sql import Row

        from rowtrail.lineage.frames._spark_stats import traced_rows

        collected = self._inner.select(*self.columns, *self._names).collect()
        lineage = materialize_rows(collected, self._hidden)
        visible = [Row(**{c: row[c] for c in self.columns}) for row in collected]
        return traced_rows(self, visible, lineage, "collect")

    def first(self) -> Any:
        """``first``; see :meth:`collect` (the first row of an aggregation is traced)."""
        rows = self.collect() if self._state.node.kind == "aggregation" else None
        if rows is None:
            return self._visible().first()
        return rows[0] if rows else None

    def dropDuplicates(self, subset: Any = None) -> TracedSparkFrame:  # noqa: N802 - Spark API
        """``dropDuplicates`` over the user's columns; kept rows keep their own lineage."""
        subset = self.columns if subset is None else subset
        return self._derive(self._inner.dropDuplicates(subset), "dropDuplicates", "filter")

    def distinct(self) -> TracedSparkFrame:
        """``distinct`` over the user's columns."""
        return self.dropDuplicates()

    def join(self, other: Any, on: Any = None, how: str | None = None) -> TracedSparkFrame:
        """``join``; each result row carries the lineage of its left and right rows."""
        if not isinstance(other, TracedSparkFrame):
            return self._derive(self._inner.join(other, on, how), "join", "join")
        renames = {h: fresh_name() for h in other._names}
        right = other._inner.withColumnsRenamed(renames)
        inner = self._inner.join(right, on, how)
        if how in ("semi", "leftsemi", "left_semi", "anti", "leftanti", "left_anti"):
            return self._derive(inner, "join", "join", others=[other])
        hidden = (*self._hidden, *((renames[h], k) for h, k in other._hidden))
        return self._derive(inner, "join", "join", hidden=hidden, others=[other])

    def crossJoin(self, other: TracedSparkFrame) -> TracedSparkFrame:  # noqa: N802 - Spark API
        """``crossJoin``; each row carries both sides' lineage."""
        return self.join(other, None, "cross")

    def union(self, other: TracedSparkFrame) -> TracedSparkFrame:
        """``union`` (by position) of frames with the same lineage columns."""
        return self._union(other, by_name=False)

    def unionByName(  # noqa: N802 - Spark API
        self,
        other: TracedSparkFrame,
        allowMissingColumns: bool = False,  # noqa: N803 - Spark API
    ) -> TracedSparkFrame:
        """``unionByName`` of frames; lineage columns are lined up by kind."""
        return self._union(other, by_name=True, allow_missing=allowMissingColumns)

    def _union(
        self, other: TracedSparkFrame, *, by_name: bool, allow_missing: bool = False
    ) -> TracedSparkFrame:
        functions = _functions()
        mine = [h for h, _ in self._hidden]
        theirs = list(other._hidden)
        selected = []
        for h, kind in self._hidden:
            match = next((t for t in theirs if t[1] == kind), None)
            if match is None:
                empty = functions.lit(None).cast("long" if kind == "ids" else "array<long>")
                selected.append(empty.alias(h))
            else:
                theirs.remove(match)
                selected.append(functions.col(match[0]).alias(h))
        right = other._inner.select(*other.columns, *selected)
        if theirs:
            return self._fallback(
                self._inner.unionByName(right, allowMissingColumns=True).drop(*mine),
                "union of frames with different lineage columns",
            )
        if by_name:
            inner = self._inner.unionByName(right, allowMissingColumns=allow_missing)
        else:
            inner = self._inner.union(right)
        return self._derive(inner, "union", "transformation", others=[other])

    def groupBy(self, *cols: Any) -> TracedSparkGroupedData:  # noqa: N802 - Spark API
        """``groupBy``; each group row carries the ids of all its input rows (``collect_list``)."""
        return TracedSparkGroupedData(self, cols)

    groupby = groupBy

    def _fallback(self, inner: Any, op: str, stacklevel: int = 3) -> TracedSparkFrame:
        warnings.warn(
            f"rowtrail does not follow rows through Spark {op}; lineage falls back to all input "
            "rows (sound, not exact).",
            LineageFallbackWarning,
            stacklevel=stacklevel,
        )
        functions = _functions()
        everything = self._inner.select(*self._as_lists())
        names = everything.columns
        inner = inner.crossJoin(
            everything.select(functions.flatten(functions.array(*names)).alias(names[0]))
        )
        return self._derive(inner, op, "unknown", hidden=((names[0], "list"),), fallback=True)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name in _EXPORT:
            return getattr(self._visible(), name)
        if name in _CARRY and callable(attr):
            return lambda *a, **k: self._derive(attr(*a, **k), name, "filter")
        if not callable(attr) or name.startswith("_"):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            result = getattr(self._inner, name)(*args, **kwargs)
            if not hasattr(result, "columns") or not hasattr(result, "schema"):
                return result
            if all(h in result.columns for h in self._names):
                return self._derive(result, name, "transformation")
            return self._fallback(result, f"{name}()")

        return call

    def __getitem__(self, key: Any) -> Any:
        return self._inner[key]

    def __repr__(self) -> str:
        return repr(self._visible())


class _TracedNa:
    """``sdf.na`` of a traced frame."""

    def __init__(self, frame: TracedSparkFrame) -> None:
        self._frame = frame

    def fill(self, value: Any, subset: Any = None) -> TracedSparkFrame:
        """Fill nulls of user columns."""
        return self._frame.fillna(value, subset)

    def drop(self, how: str = "any", thresh: int | None = None, subset: Any = None) -> Any:
        """Drop rows with nulls in user columns."""
        return self._frame.dropna(how, thresh, subset)

    def replace(self, to_replace: Any, value: Any = None, subset: Any = None) -> Any:
        """Replace values in user columns."""
        frame = self._frame
        subset = frame.columns if subset is None else subset
        return frame._derive(
            frame._inner.na.replace(to_replace, value, subset), "replace", "transformation"
        )


class TracedSparkGroupedData:
    """``GroupedData`` of a traced frame: ``agg`` adds one id list per hidden column."""

    def __init__(self, frame: TracedSparkFrame, cols: tuple[Any, ...]) -> None:
        self._frame = frame
        self._cols = cols

    def agg(self, *exprs: Any) -> TracedSparkFrame:
        """``agg``; the result rows carry their groups' input row ids."""
        if len(exprs) == 1 and isinstance(exprs[0], dict):
            functions = _functions()
            exprs = tuple(
                getattr(functions, "mean" if f == "avg" else f)(c).alias(f"{f}({c})")
                for c, f in exprs[0].items()
            )
        lists = self._frame._as_lists()
        inner = self._frame._inner.groupBy(*self._cols).agg(*exprs, *lists)
        return self._frame._aggregated(inner, "groupBy.agg", len(lists))

    def count(self) -> TracedSparkFrame:
        """Rows per group."""
        return self.agg(_functions().count(_functions().lit(1)).alias("count"))

    def _simple(self, fn: str, cols: tuple[str, ...]) -> TracedSparkFrame:
        functions = _functions()
        return self.agg(*[getattr(functions, fn)(c).alias(f"{fn}({c})") for c in cols])

    def sum(self, *cols: str) -> TracedSparkFrame:
        """Sum per group."""
        return self._simple("sum", cols)

    def avg(self, *cols: str) -> TracedSparkFrame:
        """Mean per group."""
        return self._simple("avg", cols)

    mean = avg

    def max(self, *cols: str) -> TracedSparkFrame:
        """Max per group."""
        return self._simple("max", cols)

    def min(self, *cols: str) -> TracedSparkFrame:
        """Min per group."""
        return self._simple("min", cols)


def materialize_rows(rows: Sequence[Any], hidden: tuple[tuple[str, str], ...]) -> RowLineage:
    """Return the :class:`RowLineage` of collected Spark rows holding the hidden columns."""
    slots: list[Slot] = []
    values: list[IdArray] = []
    n = len(rows)
    for name, kind in hidden:
        column = [row[name] for row in rows]
        if kind == "ids":
            slots.append(IDS)
            values.append(np.array([-1 if v is None else v for v in column], dtype=np.int64))
            continue
        lists = [v or [] for v in column]
        lengths = np.array([len(v) for v in lists], dtype=np.int64)
        flat = np.array([x for v in lists for x in v], dtype=np.int64)
        codes = np.repeat(np.arange(n, dtype=np.int64), lengths)
        node = GroupNode(_constant(codes, RowLineage.from_ids(flat)))
        slots.append(Slot("group", node))
        values.append(np.arange(n, dtype=np.int64))
    return RowLineage(slots, values, n)


def _constant(codes: IdArray, lineage: RowLineage) -> Callable[[], tuple[IdArray, RowLineage]]:
    return lambda: (codes, lineage)


class SparkLineageView(FrameLineageView):
    """Lineage of a Spark frame, with the collected ``rows`` its row numbers refer to."""

    def __init__(self, frame: TracedSparkFrame) -> None:
        collected = frame._inner.select(*frame.columns, *frame._names).collect()
        visible = frame.columns
        self.rows = [tuple(row[c] for c in visible) for row in collected]
        self.row_columns = visible
        lineage = with_slots(materialize_rows(collected, frame._hidden), frame._stats)
        super().__init__(lambda: lineage, frame._state)


register_lineage_handler("spark", lambda obj: isinstance(obj, TracedSparkFrame), SparkLineageView)
