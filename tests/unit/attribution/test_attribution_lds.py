from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rowtrail.attribution import (
    ExactInfluenceScorer,
    LinearRetrainer,
    evaluate_lds,
    leave_one_out,
    linear_model_features,
    linear_query_features,
)
from rowtrail.errors import InvalidInputError


class CountingRetrainer:
    """A real retrainer that also counts how often it was asked to retrain."""

    def __init__(self, inner: LinearRetrainer) -> None:
        self.inner = inner
        self.calls = 0

    def __call__(self, mask: np.ndarray) -> np.ndarray:
        self.calls += 1
        return self.inner(mask)


def _setup(n: int = 150) -> tuple[LinearRetrainer, np.ndarray, np.random.Generator]:
    rng = np.random.default_rng(11)
    x = np.c_[rng.normal(size=(n, 3)), np.ones(n)]
    y = (rng.random(n) < 1 / (1 + np.exp(-x @ [1.5, -1.0, 0.5, 0.2]))).astype(float)
    xt = np.c_[rng.normal(size=(5, 3)), np.ones(5)]
    r = LinearRetrainer(x, y, xt, l2=2.0)
    scores = (
        ExactInfluenceScorer(l2=2.0)
        .fit([linear_model_features(x, y, r.coef_)])
        .scores([linear_query_features(xt, r.coef_)])
    )
    return r, scores, rng


def test_exact_influence_has_high_lds_and_random_scores_do_not(tmp_path: Path) -> None:
    r, scores, rng = _setup()
    good = evaluate_lds(scores, r, n_subsets=30, cache=tmp_path / "gt.npz")
    noise = evaluate_lds(rng.normal(size=scores.shape), r, n_subsets=30, cache=tmp_path / "gt.npz")
    assert good.lds > 0.8
    assert good.lds > noise.lds + 0.5
    assert good.per_query.shape == (5,)


def test_ground_truth_is_cached_and_extended(tmp_path: Path) -> None:
    r, scores, _ = _setup()
    counting = CountingRetrainer(r)
    first = evaluate_lds(scores, counting, n_subsets=10, cache=tmp_path / "gt.npz")
    assert counting.calls == 10
    assert first.n_cached == 0
    again = evaluate_lds(scores, counting, n_subsets=10, cache=tmp_path / "gt.npz")
    assert counting.calls == 10
    assert again.n_cached == 10
    assert again.lds == first.lds
    more = evaluate_lds(scores, counting, n_subsets=14, cache=tmp_path / "gt.npz")
    assert counting.calls == 14
    assert more.n_cached == 10


def test_leave_one_out_reports_agreement() -> None:
    r, scores, _ = _setup(n=60)
    loo = leave_one_out(r, 60, [0, 5, 9], scores=scores)
    assert loo.actual.shape == (5, 3)
    assert loo.spearman is not None
    assert loo.spearman > 0.9


def test_bad_parameters() -> None:
    r, scores, _ = _setup(n=40)
    with pytest.raises(InvalidInputError, match="fraction of datamodel_ground_truth"):
        evaluate_lds(scores, r, fraction=1.5)
    with pytest.raises(InvalidInputError, match="n_subsets of datamodel_ground_truth"):
        evaluate_lds(scores, r, n_subsets=1)
    with pytest.raises(InvalidInputError, match="one row per test output"):
        evaluate_lds(scores[:2], r, n_subsets=3)
    with pytest.raises(InvalidInputError, match="indices of leave_one_out"):
        leave_one_out(r, 40, [40])
