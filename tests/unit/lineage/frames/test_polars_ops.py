"""Row lineage through polars operations (lazy and eager), against ground-truth columns."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from rowtrail.errors import LineageFallbackWarning
from rowtrail.lineage import lineage

pl = pytest.importorskip("polars")


def truth(frame: Any) -> list[list[Any]]:
    eager = frame.collect() if hasattr(frame, "collect") else frame
    columns = [c for c in eager.columns if c.startswith("gt_")]
    return [list(row) for row in eager.select(columns).rows()]


def collected(frame: Any) -> Any:
    return frame.collect() if hasattr(frame, "collect") else frame


@pytest.fixture(params=["lazy", "eager"])
def app(request: Any, tables: Any) -> Any:
    return tables.polars(
        "app",
        {
            "k": [1, 2, 3, 4, 5],
            "x": [10.0, 20.0, None, 40.0, 50.0],
            "cat": ["a", "b", "a", "c", "b"],
        },
        lazy=request.param == "lazy",
    )


@pytest.fixture
def bureau(tables: Any) -> Any:
    return tables.polars("bureau", {"k": [1, 1, 3, 9, 3, 1], "y": [5, 6, 7, 8, 9, 10]})


def test_hidden_columns_are_not_in_schema(app: Any) -> None:
    assert app.columns == ["k", "x", "cat", "gt_app"]
    assert list(app.collect_schema().names()) == ["k", "x", "cat", "gt_app"]
    eager = collected(app)
    assert eager.shape == (5, 4)
    assert eager.to_numpy().shape == (5, 4)
    assert "__rt_" not in repr(eager)


@pytest.mark.parametrize(
    "select",
    [
        lambda f: f.filter(pl.col("x") > 15),
        lambda f: f.select("gt_app", "x"),
        lambda f: f.select(pl.col("x") * 2, pl.col("gt_app")),
        lambda f: f.select(pl.all()),
        lambda f: f.with_columns(z=pl.col("x") * 2).filter(pl.col("z") > 30),
        lambda f: f.with_columns(pl.all().cast(pl.String)),
        lambda f: f.sort("x", descending=True, nulls_last=True),
        lambda f: f.sort(["cat", "x"]),
        lambda f: f.drop_nulls(),
        lambda f: f.fill_null(0.0),
        lambda f: f.fill_null(strategy="forward"),
        lambda f: f.drop("cat"),
        lambda f: f.rename({"x": "amount"}),
        lambda f: f.head(2),
        lambda f: f.tail(2).reverse(),
        lambda f: f.unique(subset=["cat"], keep="first", maintain_order=True),
        lambda f: f.with_row_index("i").filter(pl.col("i") % 2 == 0),
        lambda f: f.pipe(lambda d: d.filter(pl.col("x") > 15)),
    ],
    ids=lambda f: "",
)
def test_row_selection_keeps_lineage(tables: Any, app: Any, select: Any) -> None:
    out = collected(select(app))
    tables.check(lineage(out), truth(out))


def test_sample_keeps_lineage(tables: Any, app: Any) -> None:
    out = collected(app).sample(n=8, with_replacement=True, seed=1)
    tables.check(lineage(out), truth(out))


@pytest.mark.parametrize("how", ["inner", "left", "right", "full"])
def test_join_one_to_many(tables: Any, app: Any, bureau: Any, how: str) -> None:
    right = bureau if hasattr(app, "collect") else collected(bureau)
    out = collected(app.join(right, on="k", how=how))
    tables.check(lineage(out), truth(out))


def test_join_many_to_many_semi_and_self(tables: Any, bureau: Any) -> None:
    other = tables.polars("other", {"k": [1, 1, 3], "z": [1, 2, 3]})
    out = bureau.join(other, on="k").collect()
    assert out.height == 2 * 3 + 2 * 1
    tables.check(lineage(out), truth(out))
    semi = bureau.join(other, on="k", how="semi").collect()
    tables.check(lineage(semi), truth(semi))
    selfjoin = bureau.join(bureau, on="k").collect()
    tables.check(lineage(selfjoin), truth(selfjoin))


def test_group_by_names_every_group_row(tables: Any, bureau: Any) -> None:
    out = bureau.group_by("k").agg(pl.col("y").sum(), pl.col("gt_bureau")).collect()
    tables.check(lineage(out), out["gt_bureau"].to_list())
    counts = bureau.group_by("k", maintain_order=True).len().collect()
    expected = bureau.collect().group_by("k", maintain_order=True).agg("gt_bureau")
    tables.check(lineage(counts), expected["gt_bureau"].to_list())


def test_group_by_null_keys_and_expressions(tables: Any) -> None:
    frame = tables.polars("t", {"k": [1, None, 1, None, 2], "v": [1, 2, 3, 4, 5]})
    out = frame.group_by((pl.col("k") * 10).alias("k10")).agg(pl.col("gt_t")).collect()
    tables.check(lineage(out), out["gt_t"].to_list())


def test_pipeline_join_of_aggregates_and_dummies(tables: Any, app: Any, bureau: Any) -> None:
    agg = bureau.group_by("k").agg(pl.len().alias("n"), pl.col("gt_bureau").alias("gt_b"))
    if not hasattr(app, "collect"):
        agg = agg.collect()
    out = collected(app.join(agg, on="k", how="left").with_columns(pl.col("n").fill_null(0)))
    out = out.to_dummies(["cat"])
    rows = [
        [a, *(list(b) if b is not None else [])]
        for a, b in zip(out["gt_app"], out["gt_b"], strict=True)
    ]
    tables.check(lineage(out), rows)
    assert [c for c in out.columns if c.startswith("cat_")] == ["cat_a", "cat_b", "cat_c"]
    forward = lineage(out).derived_from("bureau", 1)
    assert forward.tolist() == np.flatnonzero(out["k"].to_numpy() == 1).tolist()


def test_concat_rows_and_columns(tables: Any, app: Any, bureau: Any) -> None:
    from rowtrail.lineage.frames._polars_io import concat

    lazy = app if hasattr(app, "collect") else app.lazy()
    rows = concat(
        [lazy.head(2).select("k", "gt_app"), bureau.select("k", "gt_bureau")], how="diagonal"
    ).collect()
    tables.check(lineage(rows), truth(rows))
    stacked = concat([lazy, lazy.head(1)]).collect()
    tables.check(lineage(stacked), truth(stacked))
    agg = bureau.group_by("k").agg(pl.col("gt_bureau"))
    mixed = concat(
        [agg, bureau.select("k", pl.concat_list("gt_bureau").alias("gt_bureau"))]
    ).collect()
    tables.check(lineage(mixed), mixed["gt_bureau"].to_list())
    side = concat(
        [collected(app).select("x", "gt_app"), collected(bureau).head(5).select("y", "gt_bureau")],
        how="horizontal",
    )
    tables.check(lineage(side), truth(side))


def test_pivot_rows_name_their_key_rows(tables: Any, bureau: Any) -> None:
    eager = bureau.collect().with_columns(
        kind=pl.when(pl.col("y") > 6).then(pl.lit("big")).otherwise(pl.lit("small"))
    )
    wide = eager.pivot("kind", index="k", values="y", aggregate_function="sum")
    groups = dict(eager.group_by("k").agg("gt_bureau").rows())
    tables.check(lineage(wide), [groups[k] for k in wide["k"]])


def test_reductions_depend_on_all_rows(tables: Any, app: Any) -> None:
    total = collected(app.select(pl.col("x").sum()))
    assert lineage(total).rows_of(0).pairs() == tables.pairs(collected(app)["gt_app"])
    means = collected(app.mean())
    assert lineage(means).n_rows == 1
    assert collected(app).n_unique() == 5


def test_unknown_row_change_falls_back_and_warns(tables: Any, app: Any) -> None:
    with pytest.warns(LineageFallbackWarning):
        long = app.unpivot(index="k", on=["x"])
    out = collected(long)
    assert lineage(out).rows_of(0).pairs() == tables.pairs(collected(app)["gt_app"])


def test_lazy_plan_is_recorded(bureau: Any) -> None:
    out = bureau.filter(pl.col("y") > 5).group_by("k").agg(pl.col("y").sum())
    ops = lineage(out).ops()
    assert ops[-1].name == "optimized_plan"
    assert "AGGREGATE" in ops[-1].params["plan"] or "GROUP" in ops[-1].params["plan"].upper()
    assert [o.name for o in ops[:-1]][-2:] == ["polars.filter", "polars.group_by.agg"]
