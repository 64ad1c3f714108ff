from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from rowtrail.errors import InvalidInputError, VerificationError
from rowtrail.training import ConvexFit, fit_logistic
from rowtrail.unlearning._convex import ConvexUnlearning, unlearn_convex
from rowtrail.unlearning._verify import (
    ModelView,
    compare_with_retraining,
    compute_auc,
    verify_unlearning,
)


def data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    xs = rng.normal(size=(n, 4))
    p = 1 / (1 + np.exp(-(xs @ np.array([1.5, -1.0, 0.5, 0.0]) + 0.2)))
    return xs, (rng.random(n) < p).astype(float)


@dataclass
class Setting:
    xs: np.ndarray
    y: np.ndarray
    test: tuple[np.ndarray, np.ndarray]
    forget: tuple[np.ndarray, np.ndarray]
    fit: ConvexFit
    ref: ConvexFit
    out: ConvexUnlearning

    def views(self, unlearned: np.ndarray) -> tuple[ModelView, ModelView, ModelView]:
        return (ModelView.from_linear(self.fit.theta), ModelView.from_linear(unlearned),
                ModelView.from_linear(self.ref.theta))


@pytest.fixture(scope="module")
def setting() -> Setting:
    xs, y = data(600)
    fit = fit_logistic(xs, y, l2=1.0)
    # forget set: the 30 samples with the largest loss (the most influential kind)
    z = xs @ fit.theta[:-1] + fit.theta[-1]
    forget = np.argsort(-(np.logaddexp(0, z) - y * z))[:30]
    keep = np.setdiff1d(np.arange(600), forget)
    ref = fit_logistic(xs[keep], y[keep], l2=1.0, tol=1e-14)
    out = unlearn_convex(fit, xs, y, remove=forget)
    return Setting(xs, y, data(400, seed=1), (xs[forget], y[forget]), fit, ref, out)


def test_newton_unlearning_passes_against_retraining(setting: Setting) -> None:
    v = compare_with_retraining(*setting.views(setting.out.theta), forget=setting.forget,
                                test=setting.test)
    assert v.passed, v.failures
    verify_unlearning(v)  # raises on failure
    assert v.gap_closed == pytest.approx(100.0, abs=0.1)
    assert v.parameter_residual is not None
    assert v.parameter_residual < 1e-3
    assert v.prediction_agreement == 1.0
    assert v.forget_loss_retrained > v.forget_loss_original  # removal raises their loss
    assert abs(v.mia_auc_difference) <= 0.02
    assert v.n_forget == v.n_nonmembers == 30
    assert v.as_dict()["failures"] == []


def test_overshoot_fails_verification(setting: Setting) -> None:
    over = setting.ref.theta + 0.6 * (setting.ref.theta - setting.fit.theta)
    v = compare_with_retraining(*setting.views(over), forget=setting.forget, test=setting.test)
    assert not v.passed
    assert v.gap_closed is not None
    assert v.gap_closed > 103.0
    assert any("overshoot" in f for f in v.failures)
    assert any("parameter residual" in f for f in v.failures)
    with pytest.raises(VerificationError, match="overshoot"):
        verify_unlearning(v)


def test_doing_nothing_fails_as_under_unlearning(setting: Setting) -> None:
    v = compare_with_retraining(*setting.views(setting.fit.theta), forget=setting.forget,
                                test=setting.test)
    assert v.gap_closed == 0.0
    assert v.parameter_residual == 1.0
    assert any("under-unlearning" in f for f in v.failures)


def test_undefined_gap_is_judged_by_parameters() -> None:
    xt, yt = data(200, seed=3)
    same = ModelView.from_linear([1.0, 0.0, 0.0, 0.0, 0.0])
    near = ModelView.from_linear([1.0, 1e-12, 0.0, 0.0, 0.0])
    v = compare_with_retraining(same, near, same, forget=(xt[:10], yt[:10]), test=(xt, yt))
    assert v.gap_closed is None  # retraining did not change the forget loss
    assert v.parameter_residual is None  # θ_o == θ_r: no ratio either
    assert v.parameter_distance == pytest.approx(1e-12)
    assert v.passed
    blind = ModelView(proba=same.proba)
    v = compare_with_retraining(blind, blind, blind, forget=(xt[:10], yt[:10]), test=(xt, yt))
    assert not v.passed
    assert "undefined" in v.failures[0]


def test_mia_auc_sees_memorisation() -> None:
    xs, y = data(300, seed=4)
    xt, yt = data(300, seed=5)
    lookup = {row.tobytes(): label for row, label in zip(xs[:50], y[:50], strict=True)}

    def memorised(x: np.ndarray) -> np.ndarray:  # certain about the members it saw
        return np.array([lookup.get(r.tobytes(), 0.5) for r in np.asarray(x)])

    clueless = ModelView(proba=lambda x: np.full(len(x), 0.5))
    mem = ModelView(proba=memorised)
    v = compare_with_retraining(mem, mem, clueless, forget=(xs[:50], y[:50]), test=(xt, yt))
    assert v.mia_auc_unlearned == 1.0  # zero loss on every member, log 2 on non-members
    assert v.mia_auc_retrained == 0.5  # every score tied
    assert any("membership-inference" in f for f in v.failures)


def test_compute_auc_matches_pairwise_counting() -> None:
    rng = np.random.default_rng(6)
    pos, neg = rng.integers(0, 5, 40).astype(float), rng.integers(0, 5, 30).astype(float)
    pairs = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    assert compute_auc(pos, neg) == pytest.approx(pairs.mean())
    with pytest.raises(InvalidInputError, match="non-empty"):
        compute_auc([], [1.0])


def test_one_forget_sample_against_one_nonmember(setting: Setting) -> None:
    out = unlearn_convex(setting.fit, setting.xs, setting.y, remove=[0])
    v = compare_with_retraining(
        ModelView.from_linear(setting.fit.theta), ModelView.from_linear(out.theta),
        ModelView.from_linear(out.theta), forget=(setting.xs[:1], setting.y[:1]),
        test=setting.test,
    )
    assert v.n_forget == v.n_nonmembers == 1
    assert v.mia_auc_unlearned in (0.0, 0.5, 1.0)
    assert v.mia_auc_difference == 0.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"forget": ([[1.0]], [1.0, 0.0])}, "forget of compare_with_retraining"),
        ({"test": "nope"}, "test of compare_with_retraining must be a pair"),
    ],
)
def test_bad_inputs_are_typed_errors(kwargs: dict[str, object], message: str) -> None:
    view = ModelView.from_linear([1.0, 0.0])
    args: dict[str, object] = {"forget": ([[1.0]], [1.0]), "test": ([[0.0]], [0.0])}
    args.update(kwargs)
    with pytest.raises(InvalidInputError, match=message):
        compare_with_retraining(view, view, view, **args)  # type: ignore[arg-type]


def test_models_must_be_views_and_verification_a_result() -> None:
    view = ModelView.from_linear([1.0, 0.0])
    with pytest.raises(InvalidInputError, match="unlearned of compare_with_retraining"):
        compare_with_retraining(view, object(), view, forget=([[1.0]], [1.0]),  # type: ignore[arg-type]
                                test=([[0.0]], [0.0]))
    with pytest.raises(InvalidInputError, match="verification of verify_unlearning"):
        verify_unlearning(object())  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="one shape"):
        compare_with_retraining(view, ModelView.from_linear([1.0, 0.0, 0.0]), view,
                                forget=([[1.0]], [1.0]), test=([[0.0]], [0.0]))
