from __future__ import annotations

import numpy as np
import pytest

from rowtrail.errors import InvalidInputError
from rowtrail.training import ConvexFit, fit_logistic, fit_ridge
from rowtrail.unlearning._convex import unlearn_convex
from rowtrail.unlearning._sklearn import unlearn_sklearn


def data(n: int = 400, d: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    xs = rng.normal(size=(n, d))
    p = 1 / (1 + np.exp(-(xs @ rng.normal(size=d) + 0.4)))
    return xs, (rng.random(n) < p).astype(float)


def retrained(model: str, xs: np.ndarray, y: np.ndarray, *, intercept: bool) -> ConvexFit:
    if model == "logistic":
        return fit_logistic(xs, y, l2=1.5, fit_intercept=intercept, tol=1e-14)
    return fit_ridge(xs, y, l2=1.5, fit_intercept=intercept)


def fitted(model: str, xs: np.ndarray, y: np.ndarray, *, intercept: bool) -> ConvexFit:
    if model == "logistic":
        return fit_logistic(xs, y, l2=1.5, fit_intercept=intercept)
    return fit_ridge(xs, y, l2=1.5, fit_intercept=intercept)


def targets(model: str, xs: np.ndarray, y: np.ndarray) -> np.ndarray:
    return y if model == "logistic" else xs @ np.arange(1.0, xs.shape[1] + 1) + 0.1 * y


CASES = [(m, i) for m in ("logistic", "ridge") for i in (True, False)]


@pytest.mark.parametrize(("model", "intercept"), CASES)
def test_removal_equals_retraining_within_the_bound(model: str, intercept: bool) -> None:
    xs, y = data()
    y = targets(model, xs, y)
    fit = fitted(model, xs, y, intercept=intercept)
    remove = np.arange(0, 400, 7)  # 58 samples, ~15%
    out = unlearn_convex(fit, xs, y, remove=remove, tol=1e-9)
    keep = np.setdiff1d(np.arange(400), remove)
    ref = retrained(model, xs[keep], y[keep], intercept=intercept)
    distance = np.linalg.norm(out.theta - ref.theta)
    moved = np.linalg.norm(fit.theta - ref.theta)
    assert out.method == "newton"
    assert out.exact_label == "exact to tolerance"
    assert out.residual <= out.tolerance == 1e-9
    assert distance <= out.bound  # the certified bound holds
    assert distance < 1e-6 * moved
    assert out.n_removed == 58
    assert out.n_replaced == 0


@pytest.mark.parametrize(("model", "intercept"), CASES)
def test_replacement_equals_retraining_on_the_new_rows(model: str, intercept: bool) -> None:
    xs, y = data(seed=1)
    y = targets(model, xs, y)
    fit = fitted(model, xs, y, intercept=intercept)
    rng = np.random.default_rng(2)
    replaced = np.array([3, 50, 51, 200])
    new_rows = xs[replaced] + rng.normal(size=(4, xs.shape[1]))
    new_y = 1.0 - y[replaced] if model == "logistic" else y[replaced] + 3.0
    out = unlearn_convex(fit, xs, y, remove=[10, 11], replace=(replaced, new_rows, new_y), tol=1e-9)
    xs2, y2 = xs.copy(), y.copy()
    xs2[replaced], y2[replaced] = new_rows, new_y
    keep = np.setdiff1d(np.arange(400), [10, 11])
    ref = retrained(model, xs2[keep], y2[keep], intercept=intercept)
    assert np.linalg.norm(out.theta - ref.theta) <= out.bound
    assert np.allclose(out.theta, ref.theta, atol=1e-9)
    # the new fit is the retrained one: same data (digest), same Hessian, replaced ids kept
    new = out.fit
    assert new.data_digest == ref.data_digest
    assert np.allclose(new.hessian, ref.hessian, rtol=1e-7)
    assert new.row_ids.tolist() == keep.tolist()
    assert out.n_replaced == 4


def test_replacement_keeps_the_label_when_none_is_given() -> None:
    xs, y = data(seed=3)
    fit = fit_logistic(xs, y, l2=1.0)
    rows = xs[[5]] * 0.5
    out = unlearn_convex(fit, xs, y, remove=[], replace=([5], rows))
    xs2 = xs.copy()
    xs2[5] = rows
    ref = fit_logistic(xs2, y, l2=1.0, tol=1e-14)
    assert np.linalg.norm(out.theta - ref.theta) <= out.bound


def test_bound_is_certified_for_an_unpenalised_intercept() -> None:
    xs, y = data(seed=4)
    fit = fit_logistic(xs, y, l2=0.5)
    out = unlearn_convex(fit, xs, y, remove=np.arange(40))
    ref = fit_logistic(xs[40:], y[40:], l2=0.5, tol=1e-14)
    hess_min = np.linalg.eigvalsh(ref.hessian)[0]
    assert np.isfinite(out.bound)
    assert 0 < out.mu <= 1.01 * hess_min  # μ is a lower bound on the curvature near θ*
    assert np.linalg.norm(out.theta - ref.theta) <= out.bound
    assert out.bound == pytest.approx(out.residual / out.mu)


def test_without_intercept_the_bound_is_at_most_residual_over_l2() -> None:
    xs, y = data(seed=5)
    fit = fit_logistic(xs, y, l2=2.0, fit_intercept=False)
    out = unlearn_convex(fit, xs, y, remove=[1, 2, 3])
    assert out.bound <= out.residual / 2.0 + 1e-18
    assert out.mu >= 2.0


@pytest.mark.parametrize("model", ["logistic", "ridge"])
def test_no_newton_steps_falls_back_to_warm_retraining(model: str) -> None:
    xs, y = data(seed=6)
    y = targets(model, xs, y)
    fit = fitted(model, xs, y, intercept=True)
    out = unlearn_convex(fit, xs, y, remove=np.arange(30), max_steps=0, tol=1e-8)
    ref = retrained(model, xs[30:], y[30:], intercept=True)
    assert out.method == "retrain-warm"
    assert out.residual <= 1e-8
    assert np.linalg.norm(out.theta - ref.theta) <= out.bound
    assert out.hessian_refreshes == 1


def test_tight_tolerance_after_one_step_falls_back_to_retraining() -> None:
    xs, y = data(seed=7)
    fit = fit_logistic(xs, y, l2=1.0)
    out = unlearn_convex(fit, xs, y, remove=np.arange(100), max_steps=1, tol=1e-11)
    assert out.method == "retrain-warm"
    assert out.steps > 1
    assert out.residual <= 1e-11


def test_unreachable_tolerance_raises_and_returns_nothing() -> None:
    xs, y = data(seed=8)
    fit = fit_logistic(xs, y, l2=1.0)
    with pytest.raises(InvalidInputError, match="tol of unlearn_convex must be reachable"):
        unlearn_convex(fit, xs, y, remove=[0], tol=1e-300)


def test_unconverged_fit_starts_from_its_exact_gradient() -> None:
    xs, y = data(seed=9)
    fit = fit_logistic(xs, y, l2=1.0, max_iter=2)  # stopped early: its gradient is not ~0
    assert fit.grad_norm > 1e-6
    out = unlearn_convex(fit, xs, y, remove=[4, 9], tol=1e-9)
    keep = np.setdiff1d(np.arange(400), [4, 9])
    ref = fit_logistic(xs[keep], y[keep], l2=1.0, tol=1e-14)
    assert np.linalg.norm(out.theta - ref.theta) <= out.bound


def test_data_must_be_the_fits_own() -> None:
    xs, y = data(seed=10)
    fit = fit_logistic(xs, y, l2=1.0)
    other = xs.copy()
    other[0, 0] += 1e-9
    with pytest.raises(InvalidInputError, match="must be the fit's training data"):
        unlearn_convex(fit, other, y, remove=[1])
    # without the digest check only the shape is checked
    out = unlearn_convex(fit, xs, y, remove=[1], check_data=False)
    assert out.method == "newton"
    with pytest.raises(InvalidInputError, match="like the fit's training data"):
        unlearn_convex(fit, xs[:, :2], y, remove=[1], check_data=False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"remove": [400]}, r"remove of unlearn_convex must be .* in \[0, 400\)"),
        ({"remove": [1.5]}, "integer positions"),
        ({"remove": [2, 2]}, "must not repeat"),
        ({"remove": []}, "at least one sample"),
        ({"remove": list(range(400))}, "must leave at least one sample"),
        ({"remove": [1], "replace": ([1], np.zeros((1, 5)))}, "must name different samples"),
        ({"remove": [], "replace": ([1], np.zeros((2, 5)))}, r"X_new of unlearn_convex"),
        ({"remove": [], "replace": [1]}, "replace of unlearn_convex must be"),
        ({"remove": [], "replace": ([1], np.zeros((1, 5)), [0.5])}, "only 0 and 1"),
        ({"remove": [1], "tol": -1.0}, "tol of unlearn_convex"),
        ({"remove": [1], "max_steps": -1}, "max_steps of unlearn_convex"),
    ],
)
def test_bad_requests_are_typed_errors(kwargs: dict[str, object], message: str) -> None:
    xs, y = data()
    fit = fit_logistic(xs, y, l2=1.0)
    theta = fit.theta.copy()
    with pytest.raises(InvalidInputError, match=message):
        unlearn_convex(fit, xs, y, **kwargs)  # type: ignore[arg-type]
    assert np.array_equal(fit.theta, theta)


def test_fit_argument_must_be_a_convex_fit() -> None:
    xs, y = data()
    with pytest.raises(InvalidInputError, match="fit of unlearn_convex must be"):
        unlearn_convex(object(), xs, y, remove=[1])  # type: ignore[arg-type]


def test_scikit_learn_logistic_regression_and_pipeline() -> None:
    pytest.importorskip("sklearn")
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    xs, y = data(seed=11)
    labels = np.where(y > 0, "yes", "no")
    pipe = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, tol=1e-10)).fit(xs, labels)
    z = pipe[:-1].transform(xs)
    out, new = unlearn_sklearn(pipe, z, labels, remove=[0, 1, 2])
    ref = fit_logistic(z[3:], y[3:], l2=2.0, tol=1e-14)
    assert np.linalg.norm(out.theta - ref.theta) <= out.bound
    assert new is not pipe
    assert new[-1].coef_.shape == (1, 5)
    assert np.allclose(new[-1].coef_.ravel(), ref.coef_, atol=1e-6)
    assert new[-1].intercept_.shape == (1,)
    assert np.array_equal(pipe[-1].coef_, LogisticRegression(C=0.5, tol=1e-10).fit(z, labels).coef_)
    assert set(new.predict(xs)) <= {"yes", "no"}


def test_scikit_learn_ridge_with_replacement() -> None:
    pytest.importorskip("sklearn")
    from sklearn.linear_model import Ridge

    xs, y = data(seed=12)
    t = targets("ridge", xs, y)
    model = Ridge(alpha=2.0).fit(xs, t)
    out, new = unlearn_sklearn(model, xs, t, remove=[7], replace=([8], xs[[8]] + 1.0, [0.0]))
    xs2, t2 = xs.copy(), t.copy()
    xs2[8], t2[8] = xs[8] + 1.0, 0.0
    keep = np.setdiff1d(np.arange(400), [7])
    ref = Ridge(alpha=2.0).fit(xs2[keep], t2[keep])
    assert np.allclose(new.coef_, ref.coef_, atol=1e-8)
    assert new.intercept_ == pytest.approx(ref.intercept_, abs=1e-8)
    assert out.method == "newton"
    assert out.steps == 1


def test_scikit_learn_rejects_class_weights() -> None:
    pytest.importorskip("sklearn")
    from sklearn.linear_model import LogisticRegression

    xs, y = data(seed=13)
    model = LogisticRegression(class_weight="balanced").fit(xs, y)
    with pytest.raises(InvalidInputError, match="without class_weight"):
        unlearn_sklearn(model, xs, y, remove=[0])


def test_default_tolerance_is_the_fits_convergence_criterion() -> None:
    xs, y = data(seed=14)
    fit = fit_logistic(xs, y, l2=1.0)
    out = unlearn_convex(fit, xs, y, remove=np.arange(10))
    assert out.tolerance == pytest.approx(1e-6 * 390)
    assert out.residual <= out.tolerance
    assert out.seconds > 0


def test_non_finite_data_is_rejected_without_the_digest_check() -> None:
    xs, y = data(seed=15)
    fit = fit_logistic(xs, y, l2=1.0)
    bad = xs.copy()
    bad[7, 1] = np.nan
    with pytest.raises(InvalidInputError, match="X of unlearn_convex must"):
        unlearn_convex(fit, bad, y, remove=[0], check_data=False)


def test_a_second_request_unlearns_from_the_first_ones_fit() -> None:
    xs, y = data(seed=16)
    fit = fit_logistic(xs, y, l2=1.0)
    first = unlearn_convex(fit, xs, y, remove=[0, 1, 2], tol=1e-10)
    keep = np.arange(3, 400)
    second = unlearn_convex(first.fit, xs[keep], y[keep], remove=[0, 10], tol=1e-10)
    ref = fit_logistic(np.delete(xs, [0, 1, 2, 3, 13], axis=0), np.delete(y, [0, 1, 2, 3, 13]),
                       l2=1.0, tol=1e-14)
    assert np.linalg.norm(second.theta - ref.theta) <= second.bound
    assert second.fit.row_ids.tolist() == np.delete(np.arange(400), [0, 1, 2, 3, 13]).tolist()
