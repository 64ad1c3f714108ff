"""The 3-table credit pipeline end to end through rt.pandas and rt.polars.

application ⨝ agg(bureau) ⨝ agg(previous_application), one-hot, split: every training row's
lineage must name its application row, all its bureau rows and all its previous-application
rows, checked against keys read from the raw files with the csv module.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import rowtrail as rt
from rowtrail.hashing import file_digest
from rowtrail.lineage import list_sources, rows_of_subject

pd = pytest.importorskip("pandas")
pl = pytest.importorskip("polars")


def pandas_pipeline(ws: Any, data: Any) -> Any:
    read = rt.pandas.read_csv
    app = read(
        data.data.application_path, source="application", subject="applicant_id", workspace=ws
    )
    bureau = read(data.data.bureau_path, source="bureau", workspace=ws)
    prev = read(data.data.previous_application_path, source="previous_application", workspace=ws)
    b = (
        bureau.groupby("SK_ID_CURR")
        .agg(b_n=("SK_ID_BUREAU", "size"), b_debt=("AMT_CREDIT_SUM_DEBT", "sum"))
        .reset_index()
    )
    p = (
        prev[prev.AMT_CREDIT > 0]
        .groupby("SK_ID_CURR")
        .agg(p_n=("SK_ID_PREV", "size"), p_credit=("AMT_CREDIT", "mean"))
        .reset_index()
    )
    table = app.merge(b, on="SK_ID_CURR", how="left").merge(p, on="SK_ID_CURR", how="left")
    table = table.fillna({"b_n": 0, "b_debt": 0.0, "p_n": 0, "p_credit": 0.0})
    table = pd.get_dummies(table, columns=["CODE_GENDER", "NAME_EDUCATION_TYPE"], dtype=float)
    return table.sample(frac=0.75, random_state=0)


def polars_pipeline(ws: Any, data: Any) -> Any:
    app = rt.polars.scan_csv(
        data.data.application_path, source="application", subject="applicant_id", workspace=ws
    )
    bureau = rt.polars.scan_csv(data.data.bureau_path, source="bureau", workspace=ws)
    prev = rt.polars.scan_csv(
        data.data.previous_application_path, source="previous_application", workspace=ws
    )
    b = bureau.group_by("SK_ID_CURR").agg(
        pl.len().alias("b_n"), pl.col("AMT_CREDIT_SUM_DEBT").sum().alias("b_debt")
    )
    p = (
        prev.filter(pl.col("AMT_CREDIT") > 0)
        .group_by("SK_ID_CURR")
        .agg(pl.len().alias("p_n"), pl.col("AMT_CREDIT").mean().alias("p_credit"))
    )
    table = (
        app.join(b, on="SK_ID_CURR", how="left")
        .join(p, on="SK_ID_CURR", how="left")
        .with_columns(pl.col("b_n", "p_n").fill_null(0))
        .collect()
    )
    table = table.to_dummies(["CODE_GENDER", "NAME_EDUCATION_TYPE"])
    return table.sample(fraction=0.75, seed=0, shuffle=True)


def expected(data: Any, key: int, prev_positive: np.ndarray) -> dict[str, list[int]]:
    truth = data.truth(key)
    kept = [r for r in truth.get("previous_application", []) if prev_positive[r]]
    truth.pop("previous_application", None)
    if kept:
        truth["previous_application"] = kept
    return truth


def _prev_positive(data: Any) -> np.ndarray:
    raw = pd.read_csv(data.data.previous_application_path)
    return (raw["AMT_CREDIT"] > 0).to_numpy()


@pytest.mark.parametrize("engine", ["pandas", "polars"])
def test_every_training_row_names_its_rows_in_three_tables(
    ws: Any, credit_files: Any, engine: str
) -> None:
    train = (pandas_pipeline if engine == "pandas" else polars_pipeline)(ws, credit_files)
    keys = np.asarray(train["SK_ID_CURR"])
    positive = _prev_positive(credit_files)
    view = rt.lineage(train)
    assert view.n_rows == len(keys) == 150
    for i, key in enumerate(keys):
        assert dict(view.rows_of(i)) == expected(credit_files, int(key), positive), f"row {i}"
    assert not any(c.startswith("__rt") for c in train.columns)


@pytest.mark.parametrize("engine", ["pandas", "polars"])
def test_forward_query_from_a_bureau_row(ws: Any, credit_files: Any, engine: str) -> None:
    train = (pandas_pipeline if engine == "pandas" else polars_pipeline)(ws, credit_files)
    keys = np.asarray(train["SK_ID_CURR"])
    view = rt.lineage(train)
    for row in (0, 17, len(credit_files.bureau_keys) - 1):
        owner = credit_files.bureau_keys[row]
        assert view.derived_from("bureau", row).tolist() == np.flatnonzero(keys == owner).tolist()


@pytest.mark.parametrize("engine", ["pandas", "polars"])
def test_model_inputs_keep_lineage(ws: Any, credit_files: Any, engine: str) -> None:
    train = (pandas_pipeline if engine == "pandas" else polars_pipeline)(ws, credit_files)
    features = ["b_n", "b_debt", "p_n", "AMT_CREDIT"]
    matrix = rt.to_numpy(train, features)
    assert matrix.shape == (150, 4)
    frame_view, array_view = rt.lineage(train), rt.lineage(matrix)
    for i in (0, 75, 149):
        assert dict(array_view.rows_of(i)) == dict(frame_view.rows_of(i))
    row = (
        int(np.asarray(frame_view.rows_of(3)["bureau"])[0])
        if "bureau" in frame_view.rows_of(3)
        else 0
    )
    assert (
        array_view.derived_from("bureau", row).tolist()
        == frame_view.derived_from("bureau", row).tolist()
    )


def test_torch_dataset_samples_carry_row_ids(ws: Any, credit_files: Any) -> None:
    torch = pytest.importorskip("torch")
    train = pandas_pipeline(ws, credit_files)
    ds = rt.torch.dataset(
        train, target="TARGET", features=["b_n", "p_n", "AMT_CREDIT"], with_index=True
    )
    assert isinstance(ds, torch.utils.data.Dataset)
    x, y, i = ds[5]
    assert x.shape == (3,)
    assert x.dtype == torch.float32
    assert int(y) == int(train["TARGET"].iloc[5])
    assert dict(ds.rows_of(i)) == dict(rt.lineage(train).rows_of(5))
    assert ds.sample_row_ids(i).tolist() == rt.lineage(train).row_ids(5).tolist()
    application = rt.lineage(train).source_infos()[0]
    assert application.name == "application"
    expected_primary = [
        application.row_id(dict(rt.lineage(train).rows_of(k))["application"][0])
        for k in range(len(train))
    ]
    assert ds.row_ids.tolist() == expected_primary
    loader = torch.utils.data.DataLoader(
        ds, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    xb, _, ib = next(iter(loader))
    assert xb.shape == (16, 3)
    assert len(ib) == 16
    from_array = rt.torch.dataset(
        rt.to_numpy(train, ["b_n", "p_n"]), target=train["TARGET"].to_numpy()
    )
    assert dict(from_array.rows_of(5)) == dict(ds.rows_of(5))


def test_sources_are_registered_with_digests_and_subjects(ws: Any, credit_files: Any) -> None:
    rt.pandas.read_csv(
        credit_files.data.application_path,
        source="application",
        subject="applicant_id",
        workspace=ws,
    )
    again = rt.polars.read_csv(
        credit_files.data.application_path, source="application", workspace=ws
    )
    infos = [s for s in list_sources(ws) if s.name == "application"]
    assert len(infos) == 1
    assert infos[0].digest == file_digest(credit_files.data.application_path)
    assert infos[0].n_rows == 200
    assert infos[0].subject_column == "applicant_id"
    raw = pd.read_csv(credit_files.data.application_path)
    rows = rows_of_subject(ws, str(raw["applicant_id"].iloc[11]))
    assert (rows & ((1 << 40) - 1)).tolist() == [11]
    assert rt.lineage(again).sources()["application"] == list(range(200))


def test_parquet_readers_and_track(ws: Any, credit_files: Any) -> None:
    directory = credit_files.data.application_path.parent.parent / "parquet"
    frame = rt.pandas.read_parquet(directory / "bureau.parquet", source="bureau.pq", workspace=ws)
    lazy = rt.polars.scan_parquet(directory / "bureau.parquet", source="bureau.pq", workspace=ws)
    eager = rt.polars.read_parquet(directory / "bureau.parquet", source="bureau.pq", workspace=ws)
    assert len({s.index for s in list_sources(ws) if s.name == "bureau.pq"}) == 1
    picked = frame[frame.CREDIT_DAY_OVERDUE > 0]
    assert (
        rt.lineage(picked).sources()["bureau.pq"]
        == np.flatnonzero(frame.CREDIT_DAY_OVERDUE.to_numpy() > 0).tolist()
    )
    assert rt.lineage(lazy.head(3)).sources() == rt.lineage(eager.head(3)).sources()
    plain = pd.DataFrame({"a": [3, 1, 2]})
    first = rt.pandas.track(plain, source="mem", workspace=ws)
    second = rt.pandas.track(plain.copy(), source="mem", workspace=ws)
    changed = rt.pandas.track(plain.assign(a=[3, 1, 5]), source="mem", workspace=ws)
    index = {rt.lineage(f).source_infos()[0].index for f in (first, second)}
    assert len(index) == 1
    assert rt.lineage(changed).source_infos()[0].index not in index
    tracked = rt.polars.track(pl.DataFrame({"a": [3, 1, 2]}), source="mem-pl", workspace=ws)
    assert dict(rt.lineage(tracked.sort("a")).rows_of(0)) == {"mem-pl": [1]}


def test_bad_arguments_raise_typed_errors(ws: Any, credit_files: Any) -> None:
    from rowtrail.errors import InvalidInputError, UnknownSourceError

    with pytest.raises(InvalidInputError, match=r"skiprows of rt\.pandas\.read_csv"):
        rt.pandas.read_csv(credit_files.data.bureau_path, skiprows=2, workspace=ws)
    with pytest.raises(InvalidInputError, match=r"subject of rt\.polars\.scan_csv"):
        rt.polars.scan_csv(credit_files.data.bureau_path, subject="nope", workspace=ws)
    with pytest.raises(InvalidInputError, match=r"frame of rt\.pandas\.track"):
        rt.pandas.track([1, 2], source="x", workspace=ws)
    frame = rt.pandas.read_csv(credit_files.data.bureau_path, workspace=ws)
    with pytest.raises(UnknownSourceError):
        rt.lineage(frame).derived_from("nope", 0)
    with pytest.raises(InvalidInputError, match="i of rows_of"):
        rt.lineage(frame).rows_of(10**9)
    with pytest.raises(InvalidInputError, match=r"columns of rt\.to_numpy"):
        rt.to_numpy(frame, "AMT_CREDIT_SUM")
