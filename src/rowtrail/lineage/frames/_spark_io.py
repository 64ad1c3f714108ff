"""``rt.spark``: read or track Spark DataFrames whose rows carry hidden source row ids.

Row numbers of a Parquet file come from Spark's own ``_metadata.row_index`` (the position in
the file), so reading stays distributed; ``track`` numbers the rows of an existing frame with
``zipWithIndex`` in its current order.
"""

from __future__ import annotations

import os
from typing import Any

from rowtrail import _context
from rowtrail._optional import require
from rowtrail.errors import InvalidInputError
from rowtrail.ids import ROW_BITS
from rowtrail.lineage.frames._core import FrameState, fresh_name, record_op
from rowtrail.lineage.frames._query import column_digest, register_table

__all__ = ["read_parquet", "session", "track"]


def session(app_name: str = "rowtrail", *, partitions: int = 2) -> Any:
    """Return the active Spark session, or start a small ``local[2]`` one (UI off).

    Parameters
    ----------
    app_name : str
        Application name of a new session.
    partitions : int
        ``spark.sql.shuffle.partitions`` of a new session (small: this is for one machine).
    """
    require("pyspark", extra="spark", feature="rt.spark.session()")
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    return (
        SparkSession.builder.master("local[2]")
        .appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", str(partitions))
        .config("spark.driver.memory", "1g")
        .getOrCreate()
    )


def _wrap(
    inner: Any, hidden: str, info: Any, workspace: Any, op: str, params: dict[str, Any]
) -> Any:
    from rowtrail.lineage.frames._spark import TracedSparkFrame

    node = record_op(
        f"spark.{op}", "source", [], {"source": info.name, "digest": info.digest, **params}
    )
    state = FrameState(node=node, known={info.index: info}, workspace=workspace)
    return TracedSparkFrame(inner, ((hidden, "ids"),), state)


def read_parquet(
    path: str | os.PathLike[str],
    *,
    source: str | None = None,
    subject: str | None = None,
    workspace: Any = None,
    spark: Any = None,
) -> Any:
    """Read one Parquet file as a traced Spark DataFrame and register it as a source.

    Parameters
    ----------
    path : str or os.PathLike
        One Parquet file (its SHA-256 identifies the source).
    source, subject, workspace
        As for ``rt.pandas.read_csv``.
    spark : SparkSession, optional
        Default: the active session, or a new ``local[2]`` one (:func:`session`).
    """
    require("pyspark", extra="spark", feature="rt.spark.read_parquet()")
    from pyspark.sql import functions

    if not os.path.isfile(path):
        raise InvalidInputError(
            f"path of rt.spark.read_parquet must be one Parquet file; got {os.fspath(path)!r}. "
            "Register each file of a dataset as its own source."
        )
    spark = spark or session()
    scan = spark.read.parquet(os.fspath(path))
    index = functions.col("_metadata.row_index")
    ws = _context.resolve_workspace(workspace)

    def subject_values(column: str) -> list[Any]:
        rows = scan.select(column, index.alias("i")).orderBy("i").collect()
        return [row[column] for row in rows]

    info = register_table(
        ws,
        caller="rt.spark.read_parquet()",
        name=source,
        path=path,
        format="parquet",
        schema=dict(scan.dtypes),
        n_rows=scan.count,
        subject=subject,
        subject_values=subject_values,
    )
    hidden = fresh_name()
    inner = scan.select("*", (index + (info.index << ROW_BITS)).cast("long").alias(hidden))
    return _wrap(inner, hidden, info, ws, "read_parquet", {"path": os.fspath(path)})


def track(frame: Any, *, source: str, subject: str | None = None, workspace: Any = None) -> Any:
    """Register an existing Spark DataFrame (collected once for its digest) and trace it."""
    require("pyspark", extra="spark", feature="rt.spark.track()")
    if not hasattr(frame, "rdd") or not hasattr(frame, "schema"):
        raise InvalidInputError(
            f"frame of rt.spark.track must be a pyspark.sql.DataFrame; got {type(frame).__name__}."
        )
    from pyspark.sql.types import LongType, StructField, StructType

    numbered = frame.rdd.zipWithIndex()
    rows = numbered.collect()
    columns = [(c, t, [r[0][c] for r in rows]) for c, t in frame.dtypes]
    import numpy as np

    digest = column_digest([(c, t, np.asarray(v, dtype=object)) for c, t, v in columns])
    ws = _context.resolve_workspace(workspace)
    info = register_table(
        ws,
        caller="rt.spark.track()",
        name=source,
        path=None,
        format="spark",
        schema=dict(frame.dtypes),
        n_rows=len(rows),
        digest=digest,
        subject=subject,
        subject_values=lambda c: [r[0][c] for r in rows],
    )
    hidden = fresh_name()
    base = info.index << ROW_BITS
    schema = StructType([*frame.schema.fields, StructField(hidden, LongType(), False)])
    spark = frame.sparkSession
    inner = spark.createDataFrame(numbered.map(lambda r: (*r[0], r[1] + base)), schema)
    return _wrap(inner, hidden, info, ws, "track", {})
