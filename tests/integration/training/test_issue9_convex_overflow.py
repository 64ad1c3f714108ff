"""Issue 9, finding 9: a convex fit whose arithmetic overflows writes nothing.

Before the fix, ``fit_logistic`` on values such as ``1e308`` registered the rows as a source
and logged the training split (two ledger events) before failing to encode the NaN fit. Now
inputs are checked finite, the fit runs with overflow / invalid values as errors, and the
result is checked finite, all before the first write.
"""

# ruff: noqa: N806 - X as in scikit-learn

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import rowtrail as rt
from rowtrail.errors import InvalidInputError
from rowtrail.lineage import list_sources
from rowtrail.training import ConvexFit, fit_logistic, fit_ridge

FITS: dict[str, Callable[..., ConvexFit]] = {"logistic": fit_logistic, "ridge": fit_ridge}


def _design(value: float) -> tuple[np.ndarray, np.ndarray]:
    X = np.random.default_rng(0).normal(size=(20, 3))
    X[3, 1] = value
    return X, np.array([0.0, 1.0] * 10)


@pytest.mark.parametrize("model", list(FITS))
@pytest.mark.parametrize("value", [1e308, -1e308, 1e200, np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("with_row_ids", [False, True])
def test_issue9_fit_with_overflowing_x_fails_typed_and_ledger_size_is_unchanged(
    tmp_path: Path, model: str, value: float, with_row_ids: bool
) -> None:
    X, y = _design(value)
    ws = rt.init(tmp_path / "ws")
    with ws.training_run("overflow") as run:
        size, sources = ws.ledger.size, list_sources(ws)
        kwargs: dict[str, Any] = {"row_ids": np.arange(20)} if with_row_ids else {}
        with pytest.raises(InvalidInputError, match=f"X of fit_{model} must"):
            FITS[model](X, y, l2=1.0, run=run, **kwargs)
        assert ws.ledger.size == size
        assert list_sources(ws) == sources
        assert run.fits == []


@pytest.mark.parametrize("model", list(FITS))
def test_issue9_fit_without_run_with_overflowing_x_is_typed(model: str) -> None:
    X, y = _design(1e308)
    with pytest.raises(InvalidInputError, match="Standardize the features"):
        FITS[model](X, y, l2=1.0)


@pytest.mark.parametrize("model", list(FITS))
def test_issue9_fit_with_large_but_safe_x_still_records(tmp_path: Path, model: str) -> None:
    X, y = _design(1e3)
    ws = rt.init(tmp_path / "ws")
    with ws.training_run("fine") as run:
        fit = FITS[model](X, y, l2=1.0, run=run)
    assert np.isfinite(fit.theta).all()
    assert fit.ledger_index is not None
