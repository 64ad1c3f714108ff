from __future__ import annotations

import numpy as np
import pytest

from rowtrail.attribution import (
    ExactInfluenceScorer,
    GradientFeatures,
    GradientSimilarityScorer,
    LinearRetrainer,
    Scorer,
    TracInScorer,
    TRAKScorer,
    leave_one_out,
    linear_model_features,
    linear_query_features,
)
from rowtrail.errors import InvalidInputError, StateError


def _problem(
    n: int = 120, p: int = 4, seed: int = 0, loss: str = "logistic"
) -> tuple[LinearRetrainer, GradientFeatures, GradientFeatures]:
    rng = np.random.default_rng(seed)
    x = np.c_[rng.normal(size=(n, p)), np.ones(n)]
    w = rng.normal(size=p + 1)
    if loss == "logistic":
        y = (rng.random(n) < 1 / (1 + np.exp(-x @ w))).astype(float)
    else:
        y = x @ w + 0.5 * rng.normal(size=n)
    x_test = np.c_[rng.normal(size=(6, p)), np.ones(6)]
    retrainer = LinearRetrainer(x, y, x_test, l2=1.0, loss=loss)  # type: ignore[arg-type]
    train = linear_model_features(x, y, retrainer.coef_, loss=loss)  # type: ignore[arg-type]
    query = linear_query_features(x_test, retrainer.coef_, loss=loss)  # type: ignore[arg-type]
    return retrainer, train, query


def test_exact_influence_matches_actual_leave_one_out_logistic() -> None:
    retrainer, train, query = _problem()
    scores = ExactInfluenceScorer(l2=1.0).fit([train]).scores([query])
    picked = np.arange(0, train.n_samples, 7)
    loo = leave_one_out(retrainer, train.n_samples, picked, scores=scores)
    error = np.abs(scores[:, picked] - loo.actual).max()
    assert error < 0.05 * np.abs(loo.actual).max()
    assert loo.pearson is not None
    assert loo.pearson > 0.999


def test_leverage_corrected_influence_is_exact_for_ridge() -> None:
    retrainer, train, query = _problem(loss="squared")
    scores = ExactInfluenceScorer(l2=1.0).fit([train]).scores([query])
    picked = np.arange(0, train.n_samples, 11)
    loo = leave_one_out(retrainer, train.n_samples, picked)
    np.testing.assert_allclose(scores[:, picked], loo.actual, rtol=1e-4, atol=1e-6)


def test_classic_influence_is_first_order_close() -> None:
    _retrainer, train, query = _problem(seed=3)
    full = ExactInfluenceScorer(l2=1.0, leverage=False).fit([train]).scores([query])
    corrected = ExactInfluenceScorer(l2=1.0).fit([train]).scores([query])
    assert np.corrcoef(full.ravel(), corrected.ravel())[0, 1] > 0.99


def _scorers() -> list[Scorer]:
    return [
        ExactInfluenceScorer(l2=1.0),
        TRAKScorer(ridge=0.01),
        TracInScorer(),
        GradientSimilarityScorer(),
    ]


@pytest.mark.parametrize("scorer", _scorers(), ids=lambda s: s.name)
def test_sign_convention_by_removal_and_retrain(scorer: Scorer) -> None:
    retrainer, train, query = _problem(n=200, seed=7)
    scores = scorer.fit([train]).scores([query])
    base = retrainer(np.ones(train.n_samples, dtype=bool))
    k = 20
    for j in range(query.n_samples):
        order = np.argsort(-scores[j])
        without_support = np.ones(train.n_samples, dtype=bool)
        without_support[order[:k]] = False
        without_oppose = np.ones(train.n_samples, dtype=bool)
        without_oppose[order[-k:]] = False
        assert retrainer(without_support)[j] < base[j]
        assert retrainer(without_oppose)[j] > base[j]


def test_scores_equal_query_matrix_times_train_matrix() -> None:
    rng = np.random.default_rng(1)
    models = [
        GradientFeatures(rng.normal(size=(60, 5)), p_correct=rng.uniform(0.5, 1, 60))
        for _ in range(3)
    ]
    queries = [GradientFeatures(rng.normal(size=(4, 5))) for _ in range(3)]
    for scorer in (TRAKScorer(), TracInScorer(), GradientSimilarityScorer()):
        scorer.fit(models)
        assert scorer.train_matrix().shape == (60, 15)
        assert scorer.query_matrix(queries).shape == (4, 15)
        np.testing.assert_allclose(
            scorer.scores(queries),
            scorer.query_matrix(queries) @ scorer.train_matrix().T,
            rtol=1e-4,
            atol=1e-5,
        )


def test_trak_and_tracin_are_deterministic_and_float16_safe() -> None:
    rng = np.random.default_rng(2)
    grads = rng.normal(size=(80, 8)).astype(np.float16)
    p = rng.uniform(0.2, 0.99, 80)
    q = [GradientFeatures(rng.normal(size=(3, 8)).astype(np.float16))]
    for make in (lambda: TRAKScorer(ridge=0.05), TracInScorer):
        first = make().fit([GradientFeatures(grads, p_correct=p)]).scores(q)
        second = make().fit([GradientFeatures(grads.copy(), p_correct=p.copy())]).scores(q)
        assert first.dtype == np.float32
        np.testing.assert_array_equal(first, second)


def test_tracin_weights_checkpoints_by_learning_rate() -> None:
    rng = np.random.default_rng(3)
    grads, q = rng.normal(size=(30, 4)), rng.normal(size=(2, 4))
    one = TracInScorer().fit([GradientFeatures(grads, lr=0.1)]).scores([GradientFeatures(q)])
    two = (
        TracInScorer()
        .fit([GradientFeatures(grads, lr=0.1), GradientFeatures(grads, lr=0.3)])
        .scores([GradientFeatures(q), GradientFeatures(q)])
    )
    np.testing.assert_allclose(two, 4 * one, rtol=1e-5)


def test_loss_gradient_features_reproduce_output_gradient_trak() -> None:
    rng = np.random.default_rng(4)
    phi, p = rng.normal(size=(100, 6)), rng.uniform(0.3, 0.95, 100)
    q = rng.normal(size=(3, 6))
    direct = TRAKScorer().fit([GradientFeatures(phi, p_correct=p)]).scores([GradientFeatures(q)])
    loss = GradientFeatures(-(1 - p)[:, None] * phi, p_correct=p, loss_gradients=True)
    via_loss = TRAKScorer().fit([loss]).scores([GradientFeatures(-q, loss_gradients=True)])
    np.testing.assert_allclose(via_loss, direct, rtol=1e-4, atol=1e-6)


def test_weighted_and_unweighted_trak_differ() -> None:
    _, train, query = _problem(seed=5)
    a = TRAKScorer(weighted=True).fit([train]).scores([query])
    b = TRAKScorer(weighted=False).fit([train]).scores([query])
    assert not np.allclose(a, b)


def test_bad_inputs_raise_typed_errors() -> None:
    rng = np.random.default_rng(6)
    train = GradientFeatures(rng.normal(size=(20, 3)))
    with pytest.raises(StateError, match="not fitted"):
        TRAKScorer().train_matrix()
    with pytest.raises(InvalidInputError, match="ridge of TRAKScorer"):
        TRAKScorer(ridge=0.0)
    with pytest.raises(InvalidInputError, match="projection dimension"):
        TRAKScorer().fit([GradientFeatures(rng.normal(size=(4, 8)))])
    with pytest.raises(InvalidInputError, match="one feature set per fitted"):
        TracInScorer().fit([train]).scores([GradientFeatures(np.ones((1, 3)))] * 2)
    with pytest.raises(InvalidInputError, match=r"queries\[0\]"):
        TracInScorer().fit([train]).scores([GradientFeatures(np.ones((1, 4)))])
    with pytest.raises(InvalidInputError, match="positive definite"):
        ExactInfluenceScorer(l2=0.0).fit([GradientFeatures(np.zeros((5, 2)))])
    with pytest.raises(InvalidInputError, match="p_correct of GradientFeatures"):
        GradientFeatures(np.ones((2, 2)), p_correct=np.array([0.5, 1.5]))
    with pytest.raises(InvalidInputError, match="grads of GradientFeatures"):
        GradientFeatures(np.ones(3))
    with pytest.raises(InvalidInputError, match=r"train of TracInScorer\.fit"):
        TracInScorer().fit([])
    with pytest.raises(InvalidInputError, match="single optimum"):
        ExactInfluenceScorer(l2=1.0).fit([train, train])
    with pytest.raises(InvalidInputError, match="l2 of ExactInfluenceScorer"):
        ExactInfluenceScorer(l2=-1.0)
