"""Row lineage through pandas operations, checked against hand-carried ground-truth columns."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from rowtrail.errors import LineageFallbackWarning
from rowtrail.lineage import lineage

pd = pytest.importorskip("pandas")


def truth(frame: Any) -> list[list[Any]]:
    columns = [c for c in frame.columns if str(c).startswith("gt_")]
    return frame[columns].to_numpy(dtype=object).tolist()


@pytest.fixture
def app(tables: Any) -> Any:
    return tables.pandas(
        "app",
        {
            "k": [1, 2, 3, 4, 5],
            "x": [10.0, 20.0, np.nan, 40.0, 50.0],
            "cat": ["a", "b", "a", "c", "b"],
        },
    )


@pytest.fixture
def bureau(tables: Any) -> Any:
    return tables.pandas("bureau", {"k": [1, 1, 3, 9, 3, 1], "y": [5, 6, 7, 8, 9, 10]})


def test_hidden_ids_are_not_columns(app: Any) -> None:
    assert list(app.columns) == ["k", "x", "cat", "gt_app"]
    assert app.to_numpy().shape == (5, 4)
    assert isinstance(app, pd.DataFrame)


@pytest.mark.parametrize(
    "select",
    [
        lambda f: f[f.x > 15],
        lambda f: f[(f.x > 15).to_numpy()],
        lambda f: f.query("x > 15"),
        lambda f: f.loc[f.x > 15, ["x", "gt_app"]],
        lambda f: f.iloc[[4, 0, 3]],
        lambda f: f.iloc[1:4],
        lambda f: f[["gt_app", "x"]],
        lambda f: f.sort_values("x", ascending=False),
        lambda f: f.sort_values(["cat", "x"], ignore_index=True),
        lambda f: f.sort_values("x").sort_index(ascending=False),
        lambda f: f.dropna(),
        lambda f: f.fillna({"x": 0.0}),
        lambda f: f.sample(frac=0.6, random_state=3),
        lambda f: f.sample(n=8, replace=True, random_state=1),
        lambda f: f.reset_index(),
        lambda f: f.sort_values("x").reset_index(drop=True),
        lambda f: f.set_index("k").sort_index(ascending=False),
        lambda f: f.drop_duplicates(subset=["cat"]),
        lambda f: f.head(2),
        lambda f: f.tail(2),
        lambda f: f.drop(index=[1, 3]),
        lambda f: f.assign(z=lambda d: d.x * 2)[lambda d: d.z > 30],
    ],
    ids=lambda f: "",
)
def test_row_selection_keeps_lineage(tables: Any, app: Any, select: Any) -> None:
    out = select(app)
    tables.check(lineage(out), truth(out))


@pytest.mark.parametrize("how", ["inner", "left", "right", "outer"])
def test_merge_one_to_many(tables: Any, app: Any, bureau: Any, how: str) -> None:
    out = app.merge(bureau, on="k", how=how)
    tables.check(lineage(out), truth(out))


def test_merge_many_to_many_and_self_join(tables: Any, bureau: Any) -> None:
    other = tables.pandas("other", {"k": [1, 1, 3], "z": [1, 2, 3]})
    out = bureau.merge(other, on="k")
    assert len(out) == 2 * 3 + 2 * 1
    tables.check(lineage(out), truth(out))
    selfjoin = bureau.merge(bureau, on="k", suffixes=("", "_r"))
    tables.check(lineage(selfjoin), truth(selfjoin))
    stacked = pd.concat([selfjoin, selfjoin.head(2)], ignore_index=True)
    tables.check(lineage(stacked), truth(stacked))


def test_long_op_chains_stay_exact(tables: Any, app: Any) -> None:
    frame = app
    for step in range(150):
        frame = frame.sort_values("x", ascending=step % 2 == 0)
    tables.check(lineage(frame), truth(frame))


def test_join_on_index_and_series(tables: Any, app: Any, bureau: Any) -> None:
    sums = bureau.groupby("k")["y"].sum().rename("y_sum")
    out = app.join(sums, on="k")
    gt = bureau.groupby("k")["gt_bureau"].agg(list)
    rows = [[g, *(gt.get(k, []))] for g, k in zip(out["gt_app"], out["k"], strict=True)]
    tables.check(lineage(out), rows)


def test_groupby_aggregate_names_every_group_row(tables: Any, bureau: Any) -> None:
    out = bureau.groupby("k").agg(total=("y", "sum"), gt=("gt_bureau", list)).reset_index()
    tables.check(lineage(out), out["gt"].tolist())
    sizes = bureau.groupby("k").size()
    tables.check(lineage(sizes), bureau.groupby("k")["gt_bureau"].agg(list).tolist())
    means = bureau.groupby("k", sort=False)[["y"]].mean()
    tables.check(lineage(means), bureau.groupby("k", sort=False)["gt_bureau"].agg(list).tolist())


def test_groupby_transform_keeps_own_row_and_group(tables: Any, bureau: Any) -> None:
    totals = bureau.groupby("k")["y"].transform("sum")
    groups = bureau.groupby("k")["gt_bureau"].agg(list)
    tables.check(lineage(totals), [groups[k] for k in bureau["k"]])
    out = bureau.assign(total=totals, share=lambda d: d.y / d.total)
    tables.check(lineage(out), [groups[k] for k in out["k"]])


def test_three_level_pipeline_join_of_aggregates(tables: Any, app: Any, bureau: Any) -> None:
    agg = bureau.groupby("k").agg(n=("y", "size"), gt_b=("gt_bureau", list)).reset_index()
    out = app.merge(agg, on="k", how="left").fillna({"n": 0})
    out = pd.get_dummies(out, columns=["cat"], dtype=float)
    rows = [
        [a, *(b if isinstance(b, list) else [])]
        for a, b in zip(out["gt_app"], out["gt_b"], strict=True)
    ]
    tables.check(lineage(out), rows)
    assert [c for c in out.columns if c.startswith("cat_")] == ["cat_a", "cat_b", "cat_c"]
    forward = lineage(out).derived_from("bureau", 1)
    assert forward.tolist() == [int(np.flatnonzero(out["k"].to_numpy() == 1)[0])]


def test_concat_rows_and_columns(tables: Any, app: Any, bureau: Any) -> None:
    rows = pd.concat([app.iloc[:2], bureau], ignore_index=True)
    tables.check(lineage(rows), truth(rows))
    stacked = pd.concat([app, app.iloc[[0]]])
    tables.check(lineage(stacked), truth(stacked))
    side = pd.concat([app[["x", "gt_app"]], bureau.iloc[:5][["y", "gt_bureau"]]], axis=1)
    tables.check(lineage(side), truth(side))


def test_pivot_table_rows_name_their_key_rows(tables: Any, bureau: Any) -> None:
    wide = bureau.assign(kind=np.where(bureau.y > 6, "big", "small")).pivot_table(
        index="k", columns="kind", values="y", aggfunc="sum"
    )
    tables.check(lineage(wide), bureau.groupby("k")["gt_bureau"].agg(list).tolist())


def test_get_dummies_keeps_rows(tables: Any, app: Any) -> None:
    out = pd.get_dummies(app, columns=["cat"])
    tables.check(lineage(out), truth(out))


def test_forward_query_and_sources(app: Any, bureau: Any) -> None:
    out = app.merge(bureau, on="k", how="left")
    view = lineage(out)
    assert view.sources() == {"app": [0, 1, 2, 3, 4], "bureau": [0, 1, 2, 4, 5]}
    assert (
        view.derived_from("bureau", 2).tolist() == np.flatnonzero(out["gt_bureau"] == 2002).tolist()
    )
    assert [op.name for op in view.ops()][-1] == "merge"
    assert view.ancestors(0)[0].kind == "join"


def test_unknown_row_change_falls_back_to_all_rows_and_warns(tables: Any, app: Any) -> None:
    with pytest.warns(LineageFallbackWarning):
        long = app.melt(id_vars=["k"], value_vars=["x", "gt_app"])
    view = lineage(long)
    assert view.rows_of(0).pairs() == tables.pairs(app["gt_app"])
    assert view.ops()[-1].fallback


def test_in_place_calls_keep_lineage(tables: Any, app: Any) -> None:
    frame = app.copy()
    frame.sort_values("x", ascending=False, inplace=True)
    frame.dropna(inplace=True)
    tables.check(lineage(frame), truth(frame))
