"""Issue 10: a statistic that leaves the traced world as a plain number is still recorded.

``float(s.mean())``, ``df.median().to_dict()``, polars' ``.item()`` / ``df["a"].mean()`` and a
group-by's means read back with ``rows()`` hand out plain Python numbers; used later as a fill
value, in arithmetic or in a polars expression, rowtrail recognises them by value (see
``rowtrail.lineage.frames._stats.FittedValues``) and records the statistic with the rows it was
fitted on. The truth comes from a row-number column carried by hand (``rid``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import rowtrail as rt

pd = pytest.importorskip("pandas")
pl = pytest.importorskip("polars")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from rowtrail.datasets import credit

    return credit(n_applicants=240, seed=3, out_dir=tmp_path_factory.mktemp("credit"))


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[rt.Workspace]:
    with rt.init(tmp_path / "ws") as workspace:
        yield workspace


def fitted(view: Any, row: int) -> dict[str, dict[str, list[int]]]:
    """``{op: fitted rows}`` of the statistics row ``row`` used."""
    out: dict[str, dict[str, list[int]]] = {}
    for dep in view.statistics(row=row):
        merged = out.setdefault(dep.op, {})
        for table, rows in dict(dep.fitted_on).items():
            merged[table] = sorted(set(merged.get(table, [])) | set(rows))
    return out


def pandas_app(ws: Any, data: Any) -> Any:
    frame = rt.pandas.read_csv(data.paths["application"], source="application", workspace=ws)
    frame["rid"] = np.arange(len(frame))
    return frame


def polars_app(ws: Any, data: Any) -> Any:
    frame = rt.polars.read_csv(data.paths["application"], source="application", workspace=ws)
    return frame.with_columns(pl.Series("rid", np.arange(frame.height)))


def test_issue10_pandas_float_of_a_mean_is_still_a_statistic(ws: Any, data: Any) -> None:
    app = pandas_app(ws, data)
    train = app[app["CNT_CHILDREN"] < 2]
    fit_rows = sorted(train["rid"].tolist())
    mean = float(train["AMT_CREDIT"].mean())  # a plain float now
    scale = float(train["AMT_CREDIT"].std())
    out = app.assign(z=(app["AMT_CREDIT"] - mean) / scale)
    view = rt.lineage(out)
    for i in (0, 7, len(out) - 1):
        assert dict(view.rows_of(i)) == {"application": [int(out["rid"].iloc[i])]}
        assert fitted(view, i) == {
            "Series.mean": {"application": fit_rows},
            "Series.std": {"application": fit_rows},
        }


def test_issue10_pandas_to_dict_fill_values_mark_the_filled_rows(ws: Any, data: Any) -> None:
    app = pandas_app(ws, data)
    train = app[app["AMT_INCOME_TOTAL"] > app["AMT_INCOME_TOTAL"].quantile(0.2)]
    fit_rows = sorted(train["rid"].tolist())
    columns = ["EXT_SOURCE_1", "EXT_SOURCE_3"]
    fills = train[columns].median().to_dict()  # {column: plain float}
    assert all(type(v) is float for v in fills.values())
    out = app.fillna(fills)
    view = rt.lineage(out)
    missing = app[columns].isna().any(axis=1).to_numpy()
    assert missing.any()
    assert not missing.all()
    for i in range(len(out)):
        expected = {"DataFrame.median": {"application": fit_rows}} if missing[i] else {}
        found = fitted(view, i)
        found.pop("DataFrame.quantile", None)  # the filter's own threshold, not under test
        assert found == expected, i


def test_issue10_pandas_group_means_as_a_plain_map_are_recorded(ws: Any, data: Any) -> None:
    app = pandas_app(ws, data)
    train = app.iloc[: len(app) // 2]
    means = train.groupby("NAME_EDUCATION_TYPE")["AMT_CREDIT"].mean().to_dict()
    encoded = app["NAME_EDUCATION_TYPE"].map(means)
    view = rt.lineage(encoded)
    groups = train.groupby("NAME_EDUCATION_TYPE")["rid"].apply(sorted).to_dict()
    for i in range(0, len(app), 17):
        own = groups[app["NAME_EDUCATION_TYPE"].iloc[i]]
        used = fitted(view, i)
        rows = sorted({r for fit in used.values() for r in fit.get("application", [])})
        # Sound: every row of the row's own group is named; nothing outside the fit rows is.
        assert set(own) <= set(rows) <= set(train["rid"].tolist())


def test_issue10_polars_item_and_series_reductions_are_recorded(ws: Any, data: Any) -> None:
    app = polars_app(ws, data)
    train = app.filter(pl.col("CNT_CHILDREN") < 2)
    fit_rows = sorted(train["rid"].to_list())
    mean = train.select(pl.col("AMT_CREDIT").mean()).item()
    median = train["EXT_SOURCE_1"].median()
    assert type(mean) is float
    assert type(median) is float
    out = app.with_columns(
        (pl.col("AMT_CREDIT") - mean).alias("centred"),
        pl.col("EXT_SOURCE_1").fill_null(median),
    )
    view = rt.lineage(out)
    rid = out["rid"].to_list()
    for i in (0, 11, out.height - 1):
        assert dict(view.rows_of(i)) == {"application": [rid[i]]}
        found = fitted(view, i)
        assert set(found) == {"polars.item", "polars.Series.reduce"}
        assert all(rows == {"application": fit_rows} for rows in found.values())


def test_issue10_polars_group_means_read_back_with_rows(ws: Any, data: Any) -> None:
    app = polars_app(ws, data)
    means = dict(app.group_by("NAME_EDUCATION_TYPE").agg(pl.col("AMT_CREDIT").mean()).rows())
    out = app.with_columns(pl.col("NAME_EDUCATION_TYPE").replace_strict(means).alias("te"))
    view = rt.lineage(out)
    frame = app.select("NAME_EDUCATION_TYPE", "rid").to_pandas()
    groups = frame.groupby("NAME_EDUCATION_TYPE")["rid"].apply(sorted).to_dict()
    education = out["NAME_EDUCATION_TYPE"].to_list()
    for i in range(0, out.height, 19):
        used = fitted(view, i)
        rows = {r for fit in used.values() for r in fit.get("application", [])}
        assert set(groups[education[i]]) <= rows


def test_issue10_plain_constants_and_other_workspaces_record_nothing(
    tmp_path: Path, data: Any
) -> None:
    with rt.init(tmp_path / "a") as first, rt.init(tmp_path / "b") as second:
        app = pandas_app(first, data)
        mean = float(app["AMT_CREDIT"].mean())
        other = pandas_app(second, data)
        # The same value in another workspace is not that workspace's statistic.
        assert rt.lineage(other["AMT_CREDIT"] - mean).statistics() == []
        # Constants that equal no fitted value, and the everyday 0 / 1, record nothing.
        assert rt.lineage(app["AMT_CREDIT"] * 2.5 + 1.0).statistics() == []
        assert rt.lineage(app[["AMT_CREDIT", "EXT_SOURCE_1"]].fillna(0.0)).statistics() == []
        # The value itself is recognised in its own workspace.
        assert [s.op for s in rt.lineage(app["AMT_CREDIT"] - mean).statistics()] == ["Series.mean"]
