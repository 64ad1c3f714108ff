"""Issue 10: fitted statistics of pandas / polars frames name the exact rows they were fitted on.

Each test carries a row-number column by hand (``rid`` / ``bid``: the file row of every row)
through the pipeline, so the truth (which source rows a mean, a standard deviation, a group
mean used as a target encoding was computed from) is read off the data itself and compared
with ``rt.lineage(x).statistics(row=i)`` and ``rows_of(i)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import rowtrail as rt
from rowtrail.errors import LineageFallbackWarning

pd = pytest.importorskip("pandas")
pl = pytest.importorskip("polars")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from rowtrail.datasets import credit

    return credit(n_applicants=300, seed=1, out_dir=tmp_path_factory.mktemp("credit"))


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[rt.Workspace]:
    with rt.init(tmp_path / "ws") as workspace:
        yield workspace


def fits(view: Any, row: int) -> dict[tuple[str, str], dict[str, list[int]]]:
    """``{(op, what): fitted rows}`` of row ``row`` (``what``: the column or expression)."""
    out = {}
    for dep in view.statistics(row=row):
        what = str(dep.params.get("column", dep.params.get("select", "")))
        out[(dep.op, what)] = dict(dep.fitted_on)
    return out


def read_pandas(ws: Any, data: Any, table: str = "application", column: str = "rid") -> Any:
    frame = rt.pandas.read_csv(data.paths[table], source=table, workspace=ws)
    frame[column] = np.arange(len(frame))
    return frame


def test_issue10_pandas_global_statistics_name_their_fit_rows(ws: Any, data: Any) -> None:
    app = read_pandas(ws, data)
    train = app[app["CNT_CHILDREN"] < 2]
    fit_rows = sorted(train["rid"].tolist())
    credit = train["AMT_CREDIT"]
    z = (credit - credit.mean()) / credit.std()
    ext = train["EXT_SOURCE_1"].fillna(train["EXT_SOURCE_1"].median())
    out = train.assign(z=z, ext=ext).sample(frac=0.5, random_state=0)
    view = rt.lineage(out)
    fitted = {"application": fit_rows}
    for i in range(len(out)):
        assert dict(view.rows_of(i)) == {"application": [int(out["rid"].iloc[i])]}
        expected = {("Series.mean", "AMT_CREDIT"): fitted, ("Series.std", "AMT_CREDIT"): fitted}
        if np.isnan(out["EXT_SOURCE_1"].iloc[i]):  # only filled rows used the median
            expected[("Series.median", "EXT_SOURCE_1")] = fitted
        assert fits(view, i) == expected
    names = [op.name for op in view.ops()]
    for name in ("Series.mean", "sub", "Series.std", "truediv", "Series.median", "fillna"):
        assert name in names
    mean_op = next(op for op in view.ops() if op.name == "Series.mean")
    assert mean_op.statistics
    assert mean_op.params["column"] == "AMT_CREDIT"
    assert view.sources(include_statistics=True) == fitted
    assert len(out) < len(fit_rows) < len(app)


@pytest.mark.parametrize(
    ("scale", "ops"),
    [
        (lambda f: f["AMT_CREDIT"].sub(f["AMT_CREDIT"].mean()), ["Series.mean"]),
        (lambda f: f["AMT_CREDIT"].rsub(2 * f["AMT_CREDIT"].median()), ["Series.median"]),
        (lambda f: f[["AMT_CREDIT"]] / f[["AMT_CREDIT"]].max(), ["DataFrame.max"]),
        (lambda f: f[["AMT_CREDIT"]].sub(f[["AMT_CREDIT"]].mean(), axis=1), ["DataFrame.mean"]),
        (lambda f: f["AMT_CREDIT"] * 2 + 1, []),
    ],
    ids=["sub", "rsub", "frame-div", "frame-flex", "plain"],
)
def test_issue10_pandas_arithmetic_forms(ws: Any, data: Any, scale: Any, ops: list[str]) -> None:
    app = read_pandas(ws, data)
    train = app[app["CNT_CHILDREN"] == 1]
    out = scale(train)
    view = rt.lineage(out)
    fitted = {"application": sorted(train["rid"].tolist())}
    assert dict(view.rows_of(2)) == {"application": [int(train["rid"].iloc[2])]}
    assert [(d.op, dict(d.fitted_on)) for d in view.statistics(row=2)] == [
        (op, fitted) for op in ops
    ]


def test_issue10_pandas_frame_fillna_with_frame_mean(ws: Any, data: Any) -> None:
    app = read_pandas(ws, data)
    train = app[app["REGION_RATING_CLIENT"] != 3].reset_index(drop=True)
    filled = train.fillna(train.mean(numeric_only=True)).sort_values("AMT_CREDIT")
    view = rt.lineage(filled)
    numeric = train.select_dtypes("number").columns
    had_null = train[numeric].isna().any(axis=1).to_numpy()[filled.index]
    assert had_null.any()
    assert not had_null.all()
    fitted = {"application": sorted(train["rid"].tolist())}
    for i in range(len(filled)):
        assert dict(view.rows_of(i)) == {"application": [int(filled["rid"].iloc[i])]}
        deps = view.statistics(row=i)
        assert [(d.op, dict(d.fitted_on)) for d in deps] == (
            [("DataFrame.mean", fitted)] if had_null[i] else []
        )
    assert [d.op for d in view.statistics()] == ["DataFrame.mean"]
    assert not filled["OWN_CAR_AGE"].isna().any()


def test_issue10_pandas_target_encoding_is_fitted_on_its_category(ws: Any, data: Any) -> None:
    app = read_pandas(ws, data)
    train = app.sample(frac=0.7, random_state=1)
    te = train.groupby("NAME_EDUCATION_TYPE")["TARGET"].transform("mean")
    inc = train.groupby("CODE_GENDER")["AMT_INCOME_TOTAL"].transform("median")
    out = train.assign(te=te, inc=inc).sort_values("AMT_CREDIT")
    view = rt.lineage(out)
    education = out["NAME_EDUCATION_TYPE"].to_numpy()
    gender = out["CODE_GENDER"].to_numpy()
    rids = out["rid"].to_numpy()
    for i in range(len(out)):
        same_education = sorted(rids[education == education[i]].tolist())
        same_gender = sorted(rids[gender == gender[i]].tolist())
        assert fits(view, i) == {
            ("groupby.transform", "'TARGET'"): {"application": same_education},
            ("groupby.transform", "'AMT_INCOME_TOTAL'"): {"application": same_gender},
        }
        assert out["te"].iloc[i] == pytest.approx(
            out["TARGET"].to_numpy()[education == education[i]].mean()
        )
        # The encoded value *is* the group's aggregate: its rows stay row lineage too.
        own = dict(view.rows_of(i))["application"]
        assert own == sorted({*same_education, *same_gender})
    # Fitted after "te" joined the rows, the gender median is fitted on rows that now carry
    # their education group too: lineage is per row, not per column (sound, wider).
    train["te"] = te
    later = train.groupby("CODE_GENDER")["AMT_INCOME_TOTAL"].transform("median")
    first = rt.lineage(later).statistics(row=0)[-1].fitted_on["application"]
    same_gender = train["CODE_GENDER"] == train["CODE_GENDER"].iloc[0]
    assert set(first) >= set(train["rid"][same_gender].tolist())
    transform = [op for op in view.ops() if op.name == "groupby.transform"]
    assert [op.params["func"] for op in transform] == ["mean", "median"]
    assert all(op.statistics and op.params["by"] for op in transform)


def test_issue10_pandas_aggregate_merged_back_is_row_lineage(ws: Any, data: Any) -> None:
    app = read_pandas(ws, data)
    bureau = read_pandas(ws, data, "bureau", "bid")
    agg = bureau.groupby("SK_ID_CURR").agg(b_sum=("AMT_CREDIT_SUM", "sum")).reset_index()
    out = app.merge(agg, on="SK_ID_CURR", how="left")
    out["b_z"] = (out["b_sum"] - out["b_sum"].mean()) / out["b_sum"].std()
    view = rt.lineage(out)
    keys = bureau["SK_ID_CURR"].to_numpy()
    reached = sorted(bureau["bid"].to_numpy()[np.isin(keys, out["SK_ID_CURR"])].tolist())
    fitted = {"application": sorted(out["rid"].tolist()), "bureau": reached}
    for i in range(0, len(out), 7):
        key = out["SK_ID_CURR"].iloc[i]
        expected = {"application": [int(out["rid"].iloc[i])]}
        if (keys == key).any():
            expected["bureau"] = sorted(bureau["bid"].to_numpy()[keys == key].tolist())
        assert dict(view.rows_of(i)) == expected  # the aggregate's rows: row lineage
        assert fits(view, i) == {("Series.mean", "b_sum"): fitted, ("Series.std", "b_sum"): fitted}
    # The merged aggregate is aggregation lineage, not a statistic: only the mean/std are.
    assert [d.op for d in view.statistics()] == ["Series.mean", "Series.std"]


def read_polars(ws: Any, data: Any, *, lazy: bool) -> Any:
    reader = rt.polars.scan_csv if lazy else rt.polars.read_csv
    return reader(data.paths["application"], source="application", workspace=ws).with_row_index(
        "rid"
    )


@pytest.mark.parametrize("lazy", [False, True], ids=["eager", "lazy"])
def test_issue10_polars_statistics_and_windows(ws: Any, data: Any, lazy: bool) -> None:
    train = read_polars(ws, data, lazy=lazy).filter(pl.col("CNT_CHILDREN") < 2)
    credit, ext = pl.col("AMT_CREDIT"), pl.col("EXT_SOURCE_1")
    out = train.with_columns(
        z=(credit - credit.mean()) / credit.std(),
        ext=ext.fill_null(ext.mean()),
        te=pl.col("TARGET").mean().over("NAME_EDUCATION_TYPE"),
    ).sort("AMT_CREDIT")
    frame = out.collect() if lazy else out
    view = rt.lineage(frame)
    rids = frame["rid"].to_numpy()
    education = frame["NAME_EDUCATION_TYPE"].to_numpy()
    fitted = {"application": sorted(rids.tolist())}
    for i in range(len(frame)):
        group = {"application": sorted(rids[education == education[i]].tolist())}
        assert [(d.op, dict(d.fitted_on)) for d in view.statistics(row=i)] == [
            ("polars.statistics", fitted),
            ("polars.over", group),
        ]
        assert dict(view.rows_of(i)) == group  # own row and its window: row lineage
        assert int(rids[i]) in group["application"]
    ops = {op.name: op for op in view.ops()}
    assert ops["polars.statistics"].params["statistics"] == [
        'col("AMT_CREDIT").mean()',
        'col("AMT_CREDIT").std()',
        'col("EXT_SOURCE_1").mean()',
    ]
    assert ops["polars.over"].params["partition_by"] == ['col("NAME_EDUCATION_TYPE")']
    assert ops["polars.statistics"].statistics
    assert ops["polars.over"].statistics


def test_issue10_polars_global_statistic_keeps_rows_of_exact(ws: Any, data: Any) -> None:
    app = read_polars(ws, data, lazy=False)
    train = app.filter(pl.col("REGION_RATING_CLIENT") != 3)
    a = pl.col("AMT_ANNUITY")
    out = train.select("rid", scaled=(a - a.mean()) / a.std()).sample(fraction=0.5, seed=2)
    view = rt.lineage(out)
    fitted = {"application": sorted(train["rid"].to_list())}
    for i in range(len(out)):
        assert dict(view.rows_of(i)) == {"application": [int(out["rid"][i])]}
        assert [dict(d.fitted_on) for d in view.statistics(row=i)] == [fitted]
    assert view.sources(include_statistics=True) == fitted


def test_issue10_row_mixing_ops_fall_back_with_a_warning(ws: Any, data: Any) -> None:
    app = read_pandas(ws, data)
    head = app.head(20)
    with pytest.warns(LineageFallbackWarning, match="shift"):
        lagged = head["AMT_CREDIT"].shift(1)
    with pytest.warns(LineageFallbackWarning, match="rolling"):
        rolled = head["AMT_CREDIT"].rolling(3).mean()
    everything = {"application": list(range(20))}
    assert dict(rt.lineage(lagged).rows_of(5)) == everything
    assert dict(rt.lineage(rolled).rows_of(5)) == everything
    frame = read_polars(ws, data, lazy=False).head(20)
    with pytest.warns(LineageFallbackWarning, match="CumSum"):
        summed = frame.with_columns(total=pl.col("AMT_CREDIT").cum_sum())
    view = rt.lineage(summed)
    assert dict(view.rows_of(5)) == everything
    assert [op.name for op in view.fallbacks()] == ["polars.row_mixing"]


def test_issue10_pandas_columns_stay_traced_through_row_selection(ws: Any, data: Any) -> None:
    app = read_pandas(ws, data).sort_values("AMT_CREDIT")
    credit, rid = app["AMT_CREDIT"], app["rid"]
    mask = credit > 500_000
    picks = [
        (credit[mask], rid[mask]),
        (credit.loc[mask], rid.loc[mask]),
        (credit.iloc[3:40:3], rid.iloc[3:40:3]),
        (credit[mask.to_numpy()], rid[mask.to_numpy()]),
        (app.loc[mask, "AMT_CREDIT"], rid[mask]),
    ]
    for picked, truth in picks:
        view = rt.lineage(picked)
        assert len(picked) == len(truth) > 0
        for i in range(len(picked)):
            assert dict(view.rows_of(i)) == {"application": [int(truth.iloc[i])]}
    assert rt.lineage(credit).statistics() == []


def test_issue10_more_fitting_ops_record_their_rows(ws: Any, data: Any) -> None:
    app = read_pandas(ws, data)
    train = app[app["CNT_CHILDREN"] == 0]
    fitted = {"application": sorted(train["rid"].tolist())}
    income = train["AMT_INCOME_TOTAL"]
    capped = income.clip(upper=income.quantile(0.95))
    ranked = income.rank(pct=True)
    for series, op in ((capped, "Series.quantile"), (ranked, "Series.rank")):
        view = rt.lineage(series)
        assert dict(view.rows_of(3)) == {"application": [int(train["rid"].iloc[3])]}
        assert [(d.op, dict(d.fitted_on)) for d in view.statistics(row=3)] == [(op, fitted)]
    education = train["NAME_EDUCATION_TYPE"]
    frequency = education.map(education.value_counts())  # frequency encoding
    view = rt.lineage(frequency)
    assert dict(view.rows_of(0)) == {"application": [int(train["rid"].iloc[0])]}
    assert [(d.op, dict(d.fitted_on)) for d in view.statistics(row=0)] == [
        ("Series.value_counts", fitted)
    ]
    means = train[["EXT_SOURCE_1", "EXT_SOURCE_3"]].apply(np.mean)
    filled = train.fillna(means)
    assert [d.op for d in rt.lineage(filled).statistics()] == ["DataFrame.apply"]
    with pytest.warns(LineageFallbackWarning, match="DataFrame.apply"):
        centred = train[["AMT_CREDIT"]].apply(lambda column: column - column.mean())
    assert dict(rt.lineage(centred).rows_of(0)) == fitted
    frame = read_polars(ws, data, lazy=False).filter(pl.col("CNT_CHILDREN") == 0)
    mean_filled = frame.select("rid", "EXT_SOURCE_1", "EXT_SOURCE_3").fill_null(strategy="mean")
    view = rt.lineage(mean_filled)
    assert [(d.op, dict(d.fitted_on)) for d in view.statistics(row=0)] == [
        ("polars.statistics", fitted)
    ]
    assert dict(view.rows_of(0)) == {"application": [int(frame["rid"][0])]}
    with pytest.warns(LineageFallbackWarning, match="map_batches"):
        mapped = frame.with_columns(c=pl.col("AMT_CREDIT").map_batches(lambda s: s - s.mean()))
    assert dict(rt.lineage(mapped).rows_of(0)) == fitted


def test_issue10_statistics_survive_to_numpy_and_torch(ws: Any, data: Any) -> None:
    app = read_pandas(ws, data)
    train = app[app["CNT_CHILDREN"] < 2]
    fit_rows = sorted(train["rid"].tolist())
    credit = train["AMT_CREDIT"]
    features = train.assign(z=(credit - credit.mean()) / credit.std())
    matrix = rt.to_numpy(features, ["z", "AMT_ANNUITY"])
    view = rt.lineage(matrix)
    assert dict(view.rows_of(4)) == {"application": [int(features["rid"].iloc[4])]}
    assert [(d.op, dict(d.fitted_on)) for d in view.statistics()] == [
        ("Series.mean", {"application": fit_rows}),
        ("Series.std", {"application": fit_rows}),
    ]
    pytest.importorskip("torch")
    ds = rt.torch.dataset(features, target="TARGET", features=["z", "AMT_ANNUITY"])
    assert sorted((ds.statistic_ids & ((1 << 40) - 1)).tolist()) == fit_rows
    assert ds.aggregated_ids.size == 0


@pytest.mark.slow
def test_issue10_spark_fill_value_and_window_functions(ws: Any, tmp_path: Path) -> None:
    import shutil

    pytest.importorskip("pyspark")
    if shutil.which("java") is None:
        pytest.skip("Spark needs Java")
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyspark.sql import Window, functions

    table = {"k": [1, 1, 2, 2, 1, 3], "x": [10.0, None, 30.0, 40.0, None, 70.0]}
    pq.write_table(pa.table({**table, "gt": list(range(6))}), tmp_path / "t.parquet")
    spark = rt.spark.session("rowtrail-tests")
    spark.sparkContext.setLogLevel("ERROR")
    sdf = rt.spark.read_parquet(tmp_path / "t.parquet", source="t", workspace=ws, spark=spark)
    train = sdf.filter(functions.col("k") < 3).filter(functions.col("gt") > 0)
    mean = train.agg(functions.mean("x").alias("m")).first()["m"]
    assert mean == pytest.approx(35.0)
    out = sdf.fillna({"x": mean}).orderBy(functions.desc("gt"))
    view = rt.lineage(out)
    gts = [row[view.row_columns.index("gt")] for row in view.rows]
    for i, gt in enumerate(gts):
        assert dict(view.rows_of(i)) == {"t": [gt]}
        assert [(d.op, dict(d.fitted_on)) for d in view.statistics(row=i)] == [
            ("spark.collect", {"t": [1, 2, 3, 4]})
        ]
    assert "spark.fillna" in [op.name for op in view.ops()]
    with pytest.warns(LineageFallbackWarning, match=r"avg\(x\) OVER \(PARTITION BY k"):
        windowed = sdf.withColumn("g", functions.mean("x").over(Window.partitionBy("k")))
    assert dict(rt.lineage(windowed).rows_of(0)) == {"t": list(range(6))}
