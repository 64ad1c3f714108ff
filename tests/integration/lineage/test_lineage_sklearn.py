"""scikit-learn: splits keep traced arrays traced; wrapped transformers keep row lineage."""

# ruff: noqa: N802, N803, N806 - X, A, Z: the NumPy / scikit-learn naming of the seed example

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import rowtrail as rt
from rowtrail.lineage import TracedArray

sklearn = pytest.importorskip("sklearn")

from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.impute import SimpleImputer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import OneHotEncoder, StandardScaler  # noqa: E402
from sklearn.utils import shuffle  # noqa: E402


@pytest.fixture
def X(tmp_path: Path) -> TracedArray:
    rng = np.random.default_rng(3)
    data = np.column_stack([np.arange(30.0), rng.integers(0, 3, 30), rng.normal(size=30)])
    data[4, 2] = np.nan
    return rt.track(data, source="apps", workspace=rt.init(tmp_path / "ws"))


def _exact(arr: TracedArray, truth: np.ndarray) -> None:
    view = rt.lineage(arr)
    assert [view.rows_of(i).pairs() for i in range(len(truth))] == [
        [("apps", int(t))] for t in truth
    ]


def test_plain_sklearn_splits_and_shuffle_keep_lineage(X: TracedArray) -> None:
    train, test = train_test_split(X, test_size=0.25, random_state=0)
    assert isinstance(train, TracedArray)
    assert isinstance(test, TracedArray)
    _exact(train, np.asarray(train)[:, 0])
    _exact(test, np.asarray(test)[:, 0])
    shuffled = shuffle(X, random_state=1)
    _exact(shuffled, np.asarray(shuffled)[:, 0])


def test_rt_sklearn_wrappers_name_the_ops(X: TracedArray) -> None:
    train, test = rt.sklearn.train_test_split(X, test_size=0.2, random_state=0)
    assert rt.lineage(train).ops()[-1].name == "train_test_split[train]"
    assert rt.lineage(rt.sklearn.shuffle(test, random_state=0)).ops()[-1].name == "shuffle"


def test_column_transformer_keeps_rows_and_records_its_fit(X: TracedArray) -> None:
    train, test = train_test_split(X, test_size=0.3, random_state=0)
    prep = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), [0, 2]),
            ("cat", OneHotEncoder(), [1]),
        ]
    )
    model = rt.sklearn.wrap(prep).fit(train)
    Z = model.transform(test)
    assert isinstance(Z, TracedArray)
    assert Z.shape[0] == len(test)
    _exact(Z, np.asarray(test)[:, 0])
    # One statistics dependency per fitted part, the whole ColumnTransformer first; every part
    # was fitted on exactly the training rows.
    stats = rt.lineage(Z).statistics()
    assert [s.op for s in stats] == [
        "ColumnTransformer.fit",
        "Pipeline.fit",
        "SimpleImputer.fit",
        "StandardScaler.fit",
        "OneHotEncoder.fit",
    ]
    for stat in stats:
        assert stat.fitted_on["apps"] == sorted(int(v) for v in np.asarray(train)[:, 0])
    assert rt.lineage(Z).sources(include_statistics=True)["apps"] == list(range(30))


def test_fit_transform_and_predict_are_row_wise(X: TracedArray) -> None:
    scaled = rt.sklearn.wrap(StandardScaler()).fit_transform(X[:, [0, 2]][5:])
    _exact(scaled, np.arange(5, 30))
    y = (X[:, 1] > 0).astype(int)
    clf = rt.sklearn.wrap(LogisticRegression()).fit(scaled, y[5:])
    proba = clf.predict_proba(scaled[:4])
    _exact(proba, np.arange(5, 9))
    assert rt.lineage(proba).statistics()[-1].op == "LogisticRegression.fit"
