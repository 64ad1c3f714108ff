"""Issue 10, done-when: scikit-learn's documentation-style pipeline on the 3-table credit data.

pandas (or polars) reads the three tables, aggregates bureau and previous applications per
applicant and joins them onto the applications; scikit-learn splits, encodes, scales and
fits a logistic regression (``rt.sklearn.trace`` is the one rowtrail line), inside a training
run; a held-out decision is logged and explained. Every check compares rowtrail's answer with
the truth derived from ``SK_ID_CURR``, carried by hand and read back from plain CSVs: each
training row, each prediction's input row and each fitted statistic must name exactly the
right rows of every table.
"""

# ruff: noqa: N806 - X, y: scikit-learn's naming

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import rowtrail as rt
from rowtrail.attribution import (
    Attributor,
    ExactInfluenceScorer,
    RowMapLineage,
    convex_fit_query,
    log_prediction,
)
from rowtrail.datasets import credit
from rowtrail.ids import ROW_BITS
from rowtrail.lineage import get_source
from rowtrail.training import sample_usage

pd = pytest.importorskip("pandas")
pl = pytest.importorskip("polars")
pytest.importorskip("sklearn")

from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.impute import SimpleImputer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.pipeline import Pipeline, make_pipeline  # noqa: E402
from sklearn.preprocessing import OneHotEncoder, StandardScaler  # noqa: E402

NUMERIC = ["AMT_INCOME_TOTAL", "AMT_CREDIT", "EXT_SOURCE_2", "debt", "n_loans", "n_prev"]
CATEGORICAL = ["CODE_GENDER", "NAME_INCOME_TYPE"]
TABLES = ("application", "bureau", "previous_application")


@pytest.fixture(scope="module")
def truth(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The three CSVs and, per table, each applicant's row numbers as plain pandas reads them."""
    data = credit(n_applicants=300, seed=4, out_dir=tmp_path_factory.mktemp("credit"))
    rows: dict[str, dict[int, list[int]]] = {}
    for name in TABLES:
        keys = pd.read_csv(data.paths[name])["SK_ID_CURR"].to_numpy()
        by_key: dict[int, list[int]] = {}
        for number, key in enumerate(keys.tolist()):
            by_key.setdefault(int(key), []).append(number)
        rows[name] = by_key
    return {"paths": data.paths, "rows": rows}


def expected(truth: dict[str, Any], key: int) -> dict[str, list[int]]:
    """The source rows of applicant ``key`` in every table (tables it has no rows in omitted)."""
    found = {name: truth["rows"][name].get(key, []) for name in TABLES}
    return {name: rows for name, rows in found.items() if rows}


def pipeline_frames(engine: str, ws: Any, paths: dict[str, Path]) -> Any:
    """Read, aggregate and join the three tables as a user writes it, in pandas or polars."""
    if engine == "pandas":
        app = rt.pandas.read_csv(paths["application"], source="application", workspace=ws)
        bureau = rt.pandas.read_csv(paths["bureau"], source="bureau", workspace=ws)
        prev = rt.pandas.read_csv(
            paths["previous_application"], source="previous_application", workspace=ws
        )
        loans = bureau.groupby("SK_ID_CURR").agg(
            debt=("AMT_CREDIT_SUM_DEBT", "sum"), n_loans=("SK_ID_BUREAU", "size")
        )
        previous = prev.groupby("SK_ID_CURR").agg(n_prev=("SK_ID_PREV", "size"))
        table = app.merge(loans.reset_index(), on="SK_ID_CURR", how="left")
        return table.merge(previous.reset_index(), on="SK_ID_CURR", how="left")
    app = rt.polars.read_csv(paths["application"], source="application", workspace=ws)
    bureau = rt.polars.read_csv(paths["bureau"], source="bureau", workspace=ws)
    prev = rt.polars.read_csv(
        paths["previous_application"], source="previous_application", workspace=ws
    )
    loans = bureau.group_by("SK_ID_CURR").agg(
        pl.col("AMT_CREDIT_SUM_DEBT").sum().alias("debt"), pl.len().alias("n_loans")
    )
    previous = prev.group_by("SK_ID_CURR").agg(pl.len().alias("n_prev"))
    table = app.join(loans, on="SK_ID_CURR", how="left")
    return table.join(previous, on="SK_ID_CURR", how="left")


def scorecard() -> Pipeline:
    prep = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), NUMERIC),
            ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
        ]
    )
    return Pipeline([("prep", prep), ("clf", LogisticRegression(C=0.2, max_iter=2000))])


def run_pipeline(engine: str, ws: Any, truth: dict[str, Any]) -> dict[str, Any]:
    table = pipeline_frames(engine, ws, truth["paths"])
    columns = [*NUMERIC, *CATEGORICAL, "SK_ID_CURR"]
    X_train, X_test, y_train, _ = train_test_split(
        table[columns], table["TARGET"], test_size=0.25, random_state=0
    )
    model = rt.sklearn.trace(scorecard())
    features = [*NUMERIC, *CATEGORICAL]
    with ws.training_run("scorecard"):
        model.fit(X_train[features], y_train)
    return {
        "model": model,
        "X_train": X_train,
        "X_test": X_test,
        "y_train": np.asarray(y_train, dtype=np.float64),
        "Z_train": model[:-1].transform(X_train[features]),
        "Z_test": model[:-1].transform(X_test[features]),
        "train_keys": np.asarray(X_train["SK_ID_CURR"]).astype(np.int64),
        "test_keys": np.asarray(X_test["SK_ID_CURR"]).astype(np.int64),
    }


@pytest.fixture(params=["pandas", "polars"])
def fitted(
    request: pytest.FixtureRequest, tmp_path: Path, truth: dict[str, Any]
) -> dict[str, Any]:
    ws = rt.init(tmp_path / "ws")
    return {"ws": ws, "engine": request.param, **run_pipeline(request.param, ws, truth)}


def test_issue10_every_training_row_names_its_rows_in_every_table(
    fitted: dict[str, Any], truth: dict[str, Any]
) -> None:
    view = rt.lineage(fitted["Z_train"])
    keys = fitted["train_keys"]
    assert view.n_rows == len(keys)
    for i, key in enumerate(keys.tolist()):
        assert dict(view.rows_of(i)) == expected(truth, key), f"training row {i} (id {key})"


def test_issue10_the_training_run_recorded_each_row_and_its_aggregated_rows(
    fitted: dict[str, Any], truth: dict[str, Any]
) -> None:
    ws = fitted["ws"]
    train, test = fitted["train_keys"].tolist(), fitted["test_keys"].tolist()
    with_loans = [k for k in train if k in truth["rows"]["bureau"]]
    bureau_row = truth["rows"]["bureau"][with_loans[0]][0]
    uses = {(u.kind, u.via) for u in sample_usage(ws, source="bureau", rows=[bureau_row])}
    assert {("split", "aggregated"), ("fit", "aggregated")} <= uses
    app_row = truth["rows"]["application"][train[0]][0]
    assert {("split", "row"), ("fit", "row")} <= {
        (u.kind, u.via) for u in sample_usage(ws, source="application", rows=[app_row])
    }
    # A held-out applicant's rows reached no training sample and no fitted statistic.
    held_out = next(k for k in test if k in truth["rows"]["bureau"])
    assert sample_usage(ws, source="bureau", rows=truth["rows"]["bureau"][held_out]) == []
    assert sample_usage(ws, source="application", rows=truth["rows"]["application"][held_out]) == []


def test_issue10_every_fitted_statistic_names_exactly_the_training_rows(
    fitted: dict[str, Any], truth: dict[str, Any]
) -> None:
    training: dict[str, set[int]] = {name: set() for name in TABLES}
    for key in fitted["train_keys"].tolist():
        for name, rows in expected(truth, key).items():
            training[name].update(rows)
    stats = rt.lineage(fitted["Z_test"]).statistics()
    names = {s.op for s in stats}
    assert {"SimpleImputer.fit", "StandardScaler.fit", "OneHotEncoder.fit"} <= names
    for stat in stats:
        fitted_on = {name: set(rows) for name, rows in dict(stat.fitted_on).items()}
        assert fitted_on == {n: r for n, r in training.items() if r}, stat.op


def test_issue10_a_decision_names_its_own_rows_in_every_table_first(
    fitted: dict[str, Any], truth: dict[str, Any]
) -> None:
    ws, model = fitted["ws"], fitted["model"]
    fit = model.training_fit_
    z_train = np.asarray(fitted["Z_train"])
    attributor = Attributor(
        ExactInfluenceScorer.from_convex_fit(fit, z_train, fitted["y_train"]),
        lineage=RowMapLineage.from_view(rt.lineage(fitted["Z_train"]), len(z_train)),
        model="scorecard",
        featurize=lambda rows: [convex_fit_query(fit, rows, target=1)],
    )
    keys = fitted["test_keys"]
    several = [i for i, k in enumerate(keys.tolist()) if len(expected(truth, k)) == 3][:3]
    assert len(several) == 3  # decisions built from rows of all three tables are covered
    for i in [*several, 0]:
        index = log_prediction(ws, attributor, fitted["Z_test"][i], payload={"i": i})
        explanation = ws.explain(index, top_k=3)
        decision = explanation.decision
        assert decision.is_known
        assert decision.rows == expected(truth, int(keys[i])), f"decision on test row {i}"
        packed = [
            (get_source(ws, name).index << ROW_BITS) | row
            for name, rows in decision.rows.items()
            for row in rows
        ]
        assert decision.row_ids == sorted(packed)
        ops = [op["name"] for op in decision.ops]
        assert ops.count("source") == 3
        assert {"StandardScaler.fit", "OneHotEncoder.fit"} <= {s["op"] for s in decision.statistics}
        text = explanation.to_text()
        assert text.index("source rows of the input") < text.index("top supporting")
