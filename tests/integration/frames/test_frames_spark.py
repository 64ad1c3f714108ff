"""Row lineage through a pyspark DataFrame plan in local[2] mode, against ground truth.

Runs wherever pyspark and Java are installed; CI (``CI=true``) never skips it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import rowtrail as rt

pytestmark = pytest.mark.slow

if os.environ.get("CI") != "true":
    pytest.importorskip("pyspark")
    if shutil.which("java") is None:
        pytest.skip("Spark needs Java", allow_module_level=True)


@pytest.fixture(scope="module")
def spark() -> Any:
    session = rt.spark.session("rowtrail-tests")
    session.sparkContext.setLogLevel("ERROR")
    return session


@pytest.fixture
def tables(tmp_path: Path, ws: Any, spark: Any) -> tuple[Any, Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(
        pa.table(
            {"k": [1, 2, 3, 4, 5], "x": [10.0, 20.0, None, 40.0, 50.0], "gt_app": [0, 1, 2, 3, 4]}
        ),
        tmp_path / "app.parquet",
    )
    pq.write_table(
        pa.table(
            {"k": [1, 1, 3, 9, 3, 1], "y": [5, 6, 7, 8, 9, 10], "gt_bureau": [0, 1, 2, 3, 4, 5]}
        ),
        tmp_path / "bureau.parquet",
    )
    app = rt.spark.read_parquet(tmp_path / "app.parquet", source="app", workspace=ws, spark=spark)
    bureau = rt.spark.read_parquet(
        tmp_path / "bureau.parquet", source="bureau", workspace=ws, spark=spark
    )
    return app, bureau


def check(frame: Any) -> None:
    """Every collected row's lineage equals its ground-truth columns."""
    view = rt.lineage(frame)
    columns = view.row_columns
    for i, row in enumerate(view.rows):
        truth: dict[str, list[int]] = {}
        for name in ("app", "bureau"):
            if f"gt_{name}" in columns:
                value = row[columns.index(f"gt_{name}")]
                values = value if isinstance(value, list) else [value]
                kept = sorted({int(v) for v in values if v is not None})
                if kept:
                    truth[name] = kept
        assert dict(view.rows_of(i)) == truth, f"row {i}: {row}"


def test_hidden_columns_are_not_visible(tables: tuple[Any, Any]) -> None:
    app, _ = tables
    assert app.columns == ["k", "x", "gt_app"]
    assert [f.name for f in app.schema.fields] == ["k", "x", "gt_app"]
    assert len(app.collect()[0]) == 3


def test_row_operations(tables: tuple[Any, Any]) -> None:
    from pyspark.sql import functions

    app, _ = tables
    check(app.filter(functions.col("x") > 15).orderBy(functions.col("x").desc()))
    check(app.select("gt_app", (functions.col("x") * 2).alias("x2")))
    check(app.withColumn("z", functions.col("x") + 1).where("z > 30"))
    check(app.dropna())
    check(app.fillna(0.0))
    check(app.na.fill(0.0).select("*"))
    check(app.dropDuplicates(["k"]).limit(3))


@pytest.mark.parametrize("how", ["inner", "left", "full"])
def test_join_one_to_many(tables: tuple[Any, Any], how: str) -> None:
    app, bureau = tables
    check(app.join(bureau, on="k", how=how))


def test_group_by_collects_the_ids_of_each_group(tables: tuple[Any, Any]) -> None:
    from pyspark.sql import functions

    app, bureau = tables
    agg = bureau.groupBy("k").agg(
        functions.sum("y").alias("total"), functions.collect_list("gt_bureau").alias("gt_bureau")
    )
    check(agg)
    joined = app.join(agg, on="k", how="left")
    check(joined)
    view = rt.lineage(joined)
    keys = [row[0] for row in view.rows]
    assert view.derived_from("bureau", 1).tolist() == [keys.index(1)]
    nested = agg.groupBy().agg(functions.count(functions.lit(1)).alias("n"))
    assert dict(rt.lineage(nested).rows_of(0)) == {"bureau": [0, 1, 2, 3, 4, 5]}


def test_union_and_track(tables: tuple[Any, Any], ws: Any, spark: Any) -> None:
    app, _ = tables
    check(app.union(app.limit(2)))
    plain = spark.createDataFrame([(3,), (1,), (2,)], ["a"])
    tracked = rt.spark.track(plain, source="mem", workspace=ws)
    view = rt.lineage(tracked.orderBy("a"))
    assert [dict(view.rows_of(i)) for i in range(3)] == [{"mem": [1]}, {"mem": [2]}, {"mem": [0]}]
    assert np.asarray(view.derived_from("mem", 0)).tolist() == [2]


def test_issue10_collected_statistic_inlined_in_a_column_is_recorded(
    tables: tuple[Any, Any],
) -> None:
    """``m = sdf.agg(F.mean(c)).first()[0]`` written into a Column keeps its fitted rows."""
    from pyspark.sql import functions

    app, _bureau = tables
    train = app.filter(functions.col("k") <= 4)
    mean = float(train.agg(functions.mean("x")).first()[0])  # a plain float: 70 / 3
    std = train.agg(functions.stddev("x")).first()[0]
    centred = app.withColumn("z", (functions.col("x") - mean) / std)
    filled = app.select(
        "gt_app",
        functions.when(functions.col("x").isNull(), functions.lit(mean))
        .otherwise(functions.col("x"))
        .alias("x"),
    )
    for frame in (centred, filled):
        check(frame)
        view = rt.lineage(frame)
        stats = view.statistics()
        assert stats, "the inlined statistic was not recorded"
        assert {s.op for s in stats} <= {"spark.collect"}
        # Fitted on the training rows (k <= 4 holds for app rows 0..3; the aggregation read
        # row 2 too, whose x is null), none other.
        assert {table: sorted(rows) for s in stats for table, rows in s.fitted_on.items()} == {
            "app": [0, 1, 2, 3]
        }
    # A literal that is no fitted value records nothing.
    assert rt.lineage(app.withColumn("z", functions.col("x") * 2.5)).statistics() == []
