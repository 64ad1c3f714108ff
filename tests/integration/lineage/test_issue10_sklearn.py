"""Issue 10: the scikit-learn code people write keeps exact row lineage on traced frames.

Every check compares lineage with an id carried by hand: ``SK_ID_CURR`` stays in the frames
(and is read back from each split), and the truth is the row of that id in
``application.csv`` as plain pandas reads it. Both engines (pandas, polars) run the same code.
"""

# ruff: noqa: N803, N806 - X, y: scikit-learn's naming

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import rowtrail as rt
from rowtrail._workspace import Workspace
from rowtrail.datasets import credit
from rowtrail.errors import LineageFallbackWarning
from rowtrail.lineage import TracedArray, get_source
from rowtrail.training import sample_usage

pd = pytest.importorskip("pandas")
pl = pytest.importorskip("polars")
pytest.importorskip("sklearn")

from sklearn.base import BaseEstimator, ClassifierMixin, clone, is_classifier  # noqa: E402
from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.ensemble import RandomForestClassifier, VotingClassifier  # noqa: E402
from sklearn.impute import SimpleImputer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import (  # noqa: E402
    StratifiedKFold,
    cross_val_score,
    train_test_split,
)
from sklearn.pipeline import Pipeline, make_pipeline  # noqa: E402
from sklearn.preprocessing import (  # noqa: E402
    FunctionTransformer,
    KBinsDiscretizer,
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    PolynomialFeatures,
    StandardScaler,
    TargetEncoder,
)
from sklearn.utils import resample, shuffle  # noqa: E402

SOURCE = "application.csv"
NUM = ["AMT_INCOME_TOTAL", "AMT_CREDIT", "AMT_ANNUITY", "OWN_CAR_AGE"]
CAT = ["CODE_GENDER", "NAME_INCOME_TYPE", "OCCUPATION_TYPE"]
LEAVES = [
    "SimpleImputer.fit",
    "StandardScaler.fit",
    "KBinsDiscretizer.fit",
    "MinMaxScaler.fit",
    "PolynomialFeatures.fit",
    "OneHotEncoder.fit",
    "OrdinalEncoder.fit",
    "TargetEncoder.fit",
]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("issue10_sklearn")
    ds = credit(n_applicants=300, seed=1, out_dir=root)
    plain = pd.read_csv(ds.paths["application"])
    row_of = {int(k): i for i, k in enumerate(plain["SK_ID_CURR"])}
    return {"path": ds.paths["application"], "row_of": row_of, "root": root}


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return rt.init(tmp_path / "ws")


def _read(engine: str, data: dict[str, Any], ws: Workspace) -> Any:
    reader = rt.pandas.read_csv if engine == "pandas" else rt.polars.read_csv
    return reader(data["path"], workspace=ws)


def _without(frame: Any, column: str) -> Any:
    return frame.drop(columns=[column]) if hasattr(frame, "iloc") else frame.drop(column)


def _rows(frame: Any, data: dict[str, Any]) -> list[int]:
    """Row numbers in application.csv of the frame's rows, from the id carried by hand."""
    return [data["row_of"][int(k)] for k in np.asarray(frame["SK_ID_CURR"]).ravel()]


def _assert_exact(obj: Any, truth: list[int]) -> None:
    view = rt.lineage(obj)
    assert view.n_rows == len(truth)
    assert [view.rows_of(i).pairs() for i in range(len(truth))] == [[(SOURCE, t)] for t in truth]


def _split(engine: str, data: dict[str, Any], ws: Workspace) -> tuple[Any, Any, Any, Any]:
    frame = _read(engine, data, ws)
    X_train, X_test, y_train, y_test = train_test_split(
        _without(frame, "TARGET"), frame["TARGET"], test_size=0.25, random_state=0
    )
    return X_train, X_test, y_train, y_test


def _prep() -> ColumnTransformer:
    return ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), NUM),
            (
                "bins",
                make_pipeline(
                    SimpleImputer(),
                    KBinsDiscretizer(n_bins=3, quantile_method="averaged_inverted_cdf"),
                ),
                ["DAYS_BIRTH"],
            ),
            (
                "poly",
                make_pipeline(SimpleImputer(), MinMaxScaler(), PolynomialFeatures(2)),
                ["DAYS_EMPLOYED"],
            ),
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"),
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                CAT,
            ),
            (
                "ord",
                OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
                ["NAME_FAMILY_STATUS"],
            ),
            ("te", TargetEncoder(), ["NAME_EDUCATION_TYPE"]),
        ]
    )


@pytest.mark.parametrize("engine", ["pandas", "polars"])
def test_issue10_train_test_split_keeps_exact_rows(
    engine: str, data: dict[str, Any], ws: Workspace
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", LineageFallbackWarning)
        X_train, X_test, y_train, y_test = _split(engine, data, ws)
    _assert_exact(X_train, _rows(X_train, data))
    _assert_exact(X_test, _rows(X_test, data))
    assert len(X_train) == 225
    assert sorted(_rows(X_train, data) + _rows(X_test, data)) == list(range(300))
    if engine == "pandas":  # a label column of a traced pandas frame is a traced Series
        _assert_exact(y_train, _rows(X_train, data))
        _assert_exact(y_test, _rows(X_test, data))
    frame = _read(engine, data, ws)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LineageFallbackWarning)
        picked = [
            *train_test_split(frame, stratify=frame["TARGET"], test_size=0.3, random_state=1),
            shuffle(frame, random_state=0),
            resample(frame, n_samples=50, random_state=0),
        ]
    for part in picked:
        _assert_exact(part, _rows(part, data))


def test_issue10_selections_of_a_traced_column_keep_exact_rows(
    data: dict[str, Any], ws: Workspace
) -> None:
    frame = _read("pandas", data, ws)
    ids = frame["SK_ID_CURR"]  # the id column itself: each value names its row
    credit_col = frame["AMT_ANNUITY"]
    truth = data["row_of"]

    def check(selected: Any) -> None:
        _assert_exact(selected, [truth[int(k)] for k in selected.to_numpy()])

    with warnings.catch_warnings():
        warnings.simplefilter("error", LineageFallbackWarning)
        check(ids[ids % 3 == 0])
        check(ids[credit_col.notna()].sort_values(ascending=False, ignore_index=True))
        check(ids.sample(frac=0.5, random_state=0).sort_index())
        check(ids.nlargest(7))
        check(ids.drop_duplicates().head(10))
        check(ids.take([5, -1, 2]))
        check(ids.iloc[[3, 1]])
        values = frame["AMT_ANNUITY"].dropna()
        kept = ids.loc[values.index]
        check(kept)
        _assert_exact(values, [truth[int(k)] for k in kept.to_numpy()])
        ids.dropna(inplace=True)
        check(ids)
        grown = ids.reindex([4, 2, 1000])  # label 1000 is no row: NaN, from no source row
        check(grown.iloc[:2])
        assert rt.lineage(grown).rows_of(2).pairs() == []


def test_issue10_summaries_of_a_traced_column_name_their_rows_without_warnings(
    data: dict[str, Any], ws: Workspace
) -> None:
    frame = _read("pandas", data, ws)
    plain = pd.read_csv(data["path"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", LineageFallbackWarning)
        sums = frame["AMT_CREDIT"].groupby(frame["CODE_GENDER"]).sum()
        quartiles = frame["AMT_CREDIT"].quantile([0.25, 0.75])
        summary = frame["AMT_CREDIT"].describe()
    for i, gender in enumerate(sums.index):
        rows = np.flatnonzero(plain["CODE_GENDER"].to_numpy() == gender).tolist()
        assert rt.lineage(sums).rows_of(i).pairs() == [(SOURCE, r) for r in rows]
    for summarised in (quartiles, summary):
        view = rt.lineage(summarised)
        assert view.rows_of(len(summarised) - 1).pairs() == [(SOURCE, r) for r in range(300)]


@pytest.mark.parametrize("engine", ["pandas", "polars"])
def test_issue10_cross_validation_indices_keep_exact_rows(
    engine: str, data: dict[str, Any], ws: Workspace
) -> None:
    frame = _read(engine, data, ws)
    X, y = _without(frame, "TARGET"), frame["TARGET"]
    folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)
    for train_idx, test_idx in folds.split(X, y):
        for idx in (train_idx, test_idx):
            part = X.iloc[idx] if engine == "pandas" else X[idx]
            _assert_exact(part, [int(i) for i in idx])
            if engine == "pandas":
                _assert_exact(y.iloc[idx], [int(i) for i in idx])
                _assert_exact(y.take(idx), [int(i) for i in idx])


@pytest.mark.parametrize("engine", ["pandas", "polars"])
def test_issue10_pipeline_outputs_and_fitted_statistics_by_column_name(
    engine: str, data: dict[str, Any], ws: Workspace
) -> None:
    X_train, X_test, y_train, _ = _split(engine, data, ws)
    train_rows, test_rows = _rows(X_train, data), _rows(X_test, data)
    model = rt.sklearn.trace(
        Pipeline([("prep", _prep()), ("clf", LogisticRegression(max_iter=1000))])
    )
    model.fit(X_train, y_train)
    for output in (model.predict_proba(X_test), model.predict(X_test)):
        assert isinstance(output, TracedArray)
        _assert_exact(output, test_rows)
    view = rt.lineage(model.predict_proba(X_test))
    stats = view.statistics()
    ops = [s.op for s in stats]
    assert ops[:2] == ["Pipeline.fit", "ColumnTransformer.fit"]
    assert ops[-1] == "LogisticRegression.fit"
    assert set(LEAVES) <= set(ops)
    for stat in stats:  # every fitted part learned from exactly the training rows
        assert stat.fitted_on.pairs() == [(SOURCE, r) for r in sorted(train_rows)]
    scaler = next(s for s in stats if s.op == "StandardScaler.fit")
    assert "mean_" in scaler.params["fitted"]
    assert scaler.params["path"].endswith("[num]/Pipeline[standardscaler]/StandardScaler")
    everything = view.sources(include_statistics=True)[SOURCE]
    assert everything == sorted(train_rows + test_rows)
    assert not view.fallbacks()


@pytest.mark.parametrize("engine", ["pandas", "polars"])
def test_issue10_column_transformer_fit_transform_and_transform(
    engine: str, data: dict[str, Any], ws: Workspace
) -> None:
    X_train, X_test, y_train, _ = _split(engine, data, ws)
    prep = rt.sklearn.trace(_prep())
    Z_train = prep.fit_transform(X_train, y_train)
    _assert_exact(Z_train, _rows(X_train, data))
    Z_test = prep.transform(X_test)
    _assert_exact(Z_test, _rows(X_test, data))
    encoder = next(s for s in rt.lineage(Z_test).statistics() if s.op == "TargetEncoder.fit")
    # fit_transform of a TargetEncoder is cross-fitted: each row's value comes from other
    # training rows, all of which the statistic names.
    assert encoder.params["method"] == "fit_transform"
    assert encoder.fitted_on.pairs() == [(SOURCE, r) for r in sorted(_rows(X_train, data))]


def test_issue10_lazy_polars_frame_is_collected_once_and_traced(
    data: dict[str, Any], ws: Workspace
) -> None:
    lazy = rt.polars.scan_csv(data["path"], workspace=ws).filter(pl.col("AMT_CREDIT") > 0)
    model = rt.sklearn.trace(ColumnTransformer([("num", StandardScaler(), ["AMT_CREDIT"])]))
    Z = model.fit_transform(lazy)
    truth = _rows(lazy.collect(), data)
    _assert_exact(Z, truth)
    (whole, scaler) = rt.lineage(Z).statistics()
    assert (whole.op, scaler.op) == ("ColumnTransformer.fit", "StandardScaler.fit")
    assert scaler.fitted_on.pairs() == [(SOURCE, r) for r in sorted(truth)]


@pytest.mark.parametrize("engine", ["pandas", "polars"])
def test_issue10_unknown_row_semantics_fall_back_with_a_warning_naming_the_estimator(
    engine: str, data: dict[str, Any], ws: Workspace
) -> None:
    X_train, X_test, y_train, _ = _split(engine, data, ws)
    log = ColumnTransformer([("log", FunctionTransformer(np.log1p), ["AMT_CREDIT"])])
    model = rt.sklearn.trace(make_pipeline(log, LogisticRegression()))
    with pytest.warns(LineageFallbackWarning, match="FunctionTransformer"):
        model.fit(X_train, y_train)
    proba = model.predict_proba(X_test)
    view = rt.lineage(proba)
    test_rows = sorted(_rows(X_test, data))
    assert view.rows_of(0).pairs() == [(SOURCE, r) for r in test_rows]  # all input rows
    assert [op.name for op in view.fallbacks()] == ["Pipeline.predict_proba"]
    declared = rt.sklearn.trace(
        make_pipeline(log, LogisticRegression()), row_wise=(FunctionTransformer,)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", LineageFallbackWarning)
        declared.fit(X_train, y_train)
        _assert_exact(declared.predict_proba(X_test), _rows(X_test, data))


@pytest.mark.parametrize("engine", ["pandas", "polars"])
def test_issue10_training_run_records_the_final_fit(
    engine: str, data: dict[str, Any], ws: Workspace
) -> None:
    X_train, _, y_train, _ = _split(engine, data, ws)
    train_rows = _rows(X_train, data)
    model = rt.sklearn.trace(make_pipeline(_prep(), LogisticRegression(max_iter=1000)))
    with ws.training_run("sk-logistic") as run:
        model.fit(X_train, y_train)
    (fit,) = run.fits
    assert (fit["model"], fit["caller"], fit["n_samples"]) == (
        "logistic",
        "sklearn.LogisticRegression",
        225,
    )
    (split,) = run.splits.values()
    info = get_source(ws, SOURCE)
    assert split.role == "train"
    assert split.row_ids.tolist() == [info.row_id(r) for r in train_rows]
    used, unused = train_rows[0], next(r for r in range(300) if r not in set(train_rows))
    kinds = {(u.kind, u.via) for u in sample_usage(ws, source=SOURCE, rows=[used])}
    assert {("split", "row"), ("fit", "row")} <= kinds
    # Every training row also reached each sample through the fitted statistics.
    assert ("split", "statistic") in kinds
    assert sample_usage(ws, source=SOURCE, rows=[unused]) == []


def test_issue10_traced_fit_hands_back_the_recorded_convex_fit(
    data: dict[str, Any], ws: Workspace
) -> None:
    """``model.training_fit_`` is the fit the run recorded: the sklearn model's own
    parameters, the ledger entry of its training.fit, usable for exact influence."""
    from rowtrail.attribution import ExactInfluenceScorer, convex_fit_query
    from rowtrail.training import ConvexFit

    X_train, _, y_train, _ = _split("pandas", data, ws)
    model = rt.sklearn.trace(make_pipeline(_prep(), LogisticRegression(C=0.5, max_iter=1000)))
    model.fit(X_train, y_train)
    assert model.training_fit_ is None  # outside a run nothing is recorded
    with ws.training_run("sk-logistic"):
        model.fit(X_train, y_train)
    fit = model.training_fit_
    assert isinstance(fit, ConvexFit)
    clf = model.estimator[-1]
    np.testing.assert_allclose(fit.theta[:-1], clf.coef_.ravel())
    np.testing.assert_allclose(fit.theta[-1], clf.intercept_[0])
    assert fit.ledger_index is not None
    assert ws.ledger.entry(fit.ledger_index).event.kind == "training.fit"
    design = np.asarray(model[:-1].transform(X_train))
    scorer = ExactInfluenceScorer.from_convex_fit(fit, design, y_train.to_numpy())
    scores = scorer.scores([convex_fit_query(fit, design[:1])])
    assert scores.shape == (1, len(design))
    assert np.isfinite(scores).all()


def test_issue10_training_run_records_the_split_of_any_final_estimator(
    data: dict[str, Any], ws: Workspace
) -> None:
    X_train, _, y_train, _ = _split("pandas", data, ws)
    model = rt.sklearn.trace(
        make_pipeline(_prep(), RandomForestClassifier(n_estimators=5, random_state=0))
    )
    with ws.training_run("sk-forest") as run:
        model.fit(X_train, y_train)
    assert run.fits == []  # no convex fit to record; the split is the record
    # The run's seal names the fitted forest itself: the digest of its pickled bytes.
    (sealed,) = ws.ledger.entries_of_kind("training.completed")
    digest = sealed.event.payload["model"]["digest"]
    assert sealed.event.payload["model"]["kind"] == "sklearn"
    assert sealed.event.payload["model"]["class"] == "RandomForestClassifier"
    assert digest in sealed.event.blobs
    forest = pickle.loads(ws.ledger.blobs.get(digest))  # the blob this test stored
    np.testing.assert_array_equal(
        forest.predict_proba(model[:-1].transform(X_train)),
        model.estimator[-1].predict_proba(model[:-1].transform(X_train)),
    )
    (split,) = run.splits.values()
    info = get_source(ws, SOURCE)
    assert split.row_ids.tolist() == [info.row_id(r) for r in _rows(X_train, data)]
    # Outside a run nothing is recorded.
    size = ws.ledger.size
    model.fit(X_train, y_train)
    assert ws.ledger.size == size


@pytest.mark.parametrize("engine", ["pandas", "polars"])
def test_issue10_traced_estimator_works_inside_model_selection(
    engine: str, data: dict[str, Any], ws: Workspace
) -> None:
    frame = _read(engine, data, ws)
    X, y = _without(frame, "TARGET"), frame["TARGET"]
    pipe = make_pipeline(_prep(), LogisticRegression(max_iter=1000))
    model = rt.sklearn.trace(pipe)
    assert is_classifier(model)
    assert clone(model).get_params(deep=False)["estimator"] is not pipe
    model.set_params(estimator__logisticregression__C=0.5)
    assert pipe.get_params()["logisticregression__C"] == 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("error", LineageFallbackWarning)
        traced = cross_val_score(model, X, y, cv=3)
    plain = pd.read_csv(data["path"]) if engine == "pandas" else pl.read_csv(data["path"])
    expected = cross_val_score(clone(pipe), _without(plain, "TARGET"), plain["TARGET"], cv=3)
    assert np.array_equal(traced, expected)
    X_train, X_test, y_train, y_test = _split(engine, data, ws)
    rows = np.asarray(_rows(X_test, data))
    plain_X = _without(plain, "TARGET")
    plain_X_test = plain_X.iloc[rows] if engine == "pandas" else plain_X[rows]
    score = model.fit(X_train, y_train).score(X_test, y_test)  # model wraps pipe
    assert score == pipe.score(plain_X_test, plain["TARGET"].to_numpy()[rows])


def test_issue10_untraced_fit_inside_a_run_is_not_recorded_and_says_so(
    data: dict[str, Any], ws: Workspace
) -> None:
    plain = pd.read_csv(data["path"])
    model = rt.sklearn.trace(make_pipeline(_prep(), LogisticRegression(max_iter=1000)))
    with (
        ws.training_run("untraced") as run,
        pytest.warns(rt.errors.RowtrailWarning, match="was not recorded"),
    ):
        model.fit(plain.drop(columns=["TARGET"]), plain["TARGET"])
    assert (run.fits, run.splits) == ([], {})


class MajorityClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """An estimator from outside scikit-learn (rowtrail cannot know its row semantics)."""

    def fit(self, X: Any, y: Any) -> MajorityClassifier:
        labels, counts = np.unique(np.asarray(y), return_counts=True)
        self.classes_ = labels
        self.majority_ = labels[np.argmax(counts)]
        return self

    def predict(self, X: Any) -> np.ndarray:
        return np.full(len(X), self.majority_)


def test_issue10_estimator_from_elsewhere_inside_a_meta_estimator_falls_back(
    data: dict[str, Any], ws: Workspace
) -> None:
    X_train, X_test, y_train, _ = _split("pandas", data, ws)
    vote = VotingClassifier(
        [("lr", LogisticRegression(max_iter=1000)), ("mine", MajorityClassifier())]
    )
    model = rt.sklearn.trace(make_pipeline(_prep(), vote))
    with pytest.warns(LineageFallbackWarning, match=r"VotingClassifier\[mine\]/MajorityClassifier"):
        model.fit(X_train, y_train)
    view = rt.lineage(model.predict(X_test))
    assert view.rows_of(3).pairs() == [(SOURCE, r) for r in sorted(_rows(X_test, data))]
    assert view.fallbacks()[-1].name == "Pipeline.predict"


def test_issue10_unpickled_estimator_keeps_rows_and_says_its_statistics_are_unknown(
    data: dict[str, Any], ws: Workspace
) -> None:
    X_train, X_test, y_train, _ = _split("polars", data, ws)
    model = rt.sklearn.trace(make_pipeline(_prep(), LogisticRegression(max_iter=1000)))
    again = pickle.loads(pickle.dumps(model.fit(X_train, y_train)))
    with pytest.warns(rt.errors.RowtrailWarning, match="unpickled"):
        proba = again.predict_proba(X_test)
    assert np.array_equal(np.asarray(proba), np.asarray(model.predict_proba(X_test)))
    _assert_exact(proba, _rows(X_test, data))
    assert rt.lineage(proba).statistics() == []
    again.fit(X_train, y_train)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(rt.lineage(again.predict_proba(X_test)).statistics()) > 1


@pytest.mark.parametrize("engine", ["pandas", "polars"])
def test_issue10_pipeline_slice_transforms_with_its_own_statistics(
    engine: str, data: dict[str, Any], ws: Workspace
) -> None:
    X_train, X_test, y_train, _ = _split(engine, data, ws)
    model = rt.sklearn.trace(make_pipeline(_prep(), LogisticRegression(max_iter=1000)))
    features = model.fit(X_train, y_train)[:-1].transform(X_test)
    _assert_exact(features, _rows(X_test, data))
    ops = [s.op for s in rt.lineage(features).statistics()]
    assert set(LEAVES) <= set(ops)
    assert "LogisticRegression.fit" not in ops  # the slice does not use the model
    last = model[-1]  # one step, traced with its own statistics
    assert last.estimator is model.estimator[-1]
    proba = last.predict_proba(features)
    _assert_exact(proba, _rows(X_test, data))
    assert rt.lineage(proba).statistics()[-1].op == "LogisticRegression.fit"
    assert np.array_equal(np.asarray(proba), np.asarray(model.predict_proba(X_test)))


def test_issue10_unwrapped_sklearn_on_a_traced_frame_warns_lineage_lost(
    tmp_path: Path,
) -> None:
    """An estimator not wrapped by rt.sklearn.trace gets a plain array: never silently."""
    import pandas as pd
    import polars as pl
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import StandardScaler

    from rowtrail.errors import LineageLostWarning

    csv = tmp_path / "t.csv"
    pd.DataFrame({"a": [1.0, 2.0, 4.0, 8.0], "b": [3.0, 1.0, 2.0, 5.0]}).to_csv(csv, index=False)
    with rt.init(tmp_path / "ws") as ws:
        frame = rt.pandas.read_csv(csv, workspace=ws)
        with pytest.warns(LineageLostWarning, match=r"rt\.sklearn\.trace"):
            ColumnTransformer([("s", StandardScaler(), ["a", "b"])]).fit_transform(frame)
        lazy = rt.polars.read_csv(csv, workspace=ws)
        with pytest.warns(LineageLostWarning, match="polars frame"):
            out = StandardScaler().fit_transform(lazy)
        # The user's columns only: the hidden lineage columns never reach the estimator.
        assert out.shape == (4, 2)
        plain = StandardScaler().fit_transform(pl.read_csv(csv))
        np.testing.assert_array_equal(out, plain)
        # Wrapped, nothing is lost and nothing warns; np.asarray in user code never warns.
        traced = rt.sklearn.trace(StandardScaler()).fit_transform(frame)
        assert dict(rt.lineage(traced).rows_of(2)) == {"t.csv": [2]}
        assert np.asarray(frame).shape == (4, 2)
