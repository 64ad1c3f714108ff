from __future__ import annotations

import numpy as np
import pytest

from rowtrail.errors import InvalidInputError
from rowtrail.training import fit_logistic, fit_ridge, record_sklearn_fit


def data(n: int = 300, d: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    xs = rng.normal(size=(n, d))
    p = 1 / (1 + np.exp(-(xs @ rng.normal(size=d) + 0.3)))
    return xs, (rng.random(n) < p).astype(float)


def objective(theta: np.ndarray, xs: np.ndarray, y: np.ndarray, l2: float) -> float:
    z = xs @ theta[:-1] + theta[-1]
    return float(np.sum(np.logaddexp(0, z) - y * z) + 0.5 * l2 * theta[:-1] @ theta[:-1])


def test_newton_reaches_the_optimum_and_hessian_is_exact() -> None:
    xs, y = data()
    fit = fit_logistic(xs, y, l2=2.0)
    assert fit.converged
    eps = 1e-5
    grad = np.array([(objective(fit.theta + eps * e, xs, y, 2.0)
                      - objective(fit.theta - eps * e, xs, y, 2.0)) / (2 * eps)
                     for e in np.eye(fit.theta.size)])
    assert np.abs(grad).max() < 1e-5
    def gradient(theta: np.ndarray) -> np.ndarray:
        residual = 1 / (1 + np.exp(-(xs @ theta[:-1] + theta[-1]))) - y
        return np.append(xs.T @ residual + 2.0 * theta[:-1], residual.sum())

    hess = np.column_stack([(gradient(fit.theta + eps * e) - gradient(fit.theta - eps * e))
                            / (2 * eps) for e in np.eye(fit.theta.size)])
    assert np.allclose(hess, fit.hessian, rtol=1e-4, atol=1e-4)


def test_matches_scikit_learn_and_records_its_fit() -> None:
    sklearn = pytest.importorskip("sklearn.linear_model")
    xs, y = data()
    ours = fit_logistic(xs, y, l2=0.5)
    theirs = sklearn.LogisticRegression(C=1 / 0.5, tol=1e-12, max_iter=10_000).fit(xs, y)
    assert np.allclose(ours.coef_, theirs.coef_.ravel(), atol=1e-5)
    assert np.isclose(ours.intercept_, theirs.intercept_[0], atol=1e-5)
    recorded = record_sklearn_fit(theirs, xs, y)
    assert recorded.l2 == pytest.approx(0.5)
    assert np.allclose(recorded.hessian, ours.hessian, rtol=1e-4)
    assert recorded.grad_norm < 1e-4


def test_sample_gradients_sum_to_the_penalty_at_the_optimum() -> None:
    xs, y = data()
    fit = fit_logistic(xs, y, l2=1.0)
    total = fit.sample_gradients(xs, y).sum(axis=0)
    assert np.allclose(total[:-1], -1.0 * fit.coef_, atol=1e-7)
    assert abs(total[-1]) < 1e-7


def test_ridge_closed_form() -> None:
    xs, _ = data()
    y = xs @ np.array([1.0, -2.0, 0.0, 0.5]) + 1.0
    fit = fit_ridge(xs, y, l2=1e-8)
    assert np.allclose(fit.theta, [1.0, -2.0, 0.0, 0.5, 1.0], atol=1e-6)
    assert np.allclose(fit.hessian[:-1, :-1], xs.T @ xs + 1e-8 * np.eye(4))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"l2": 0.0}, "l2 of fit_logistic"), ({"l2": 1.0, "y": [2.0] * 300}, "y of fit_logistic")],
)
def test_bad_input(kwargs: dict[str, object], match: str) -> None:
    xs, y = data()
    args = {"y": y, **kwargs}
    with pytest.raises(InvalidInputError, match=match):
        fit_logistic(xs, args.pop("y"), **args)  # type: ignore[arg-type]
