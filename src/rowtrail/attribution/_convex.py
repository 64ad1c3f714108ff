"""L2-regularised convex models for exact influence: a Newton fitter and their features.

Owns the sum-form objective ``sum_i w_i loss_i(theta) + (l2/2)|theta|^2`` (scikit-learn's
``C * sum loss + |theta|^2/2`` with ``l2 = 1/C``) for logistic and squared loss, fitted to
machine precision by Newton's method, and the conversion of a fitted model into the
:class:`~rowtrail.attribution.GradientFeatures` that :class:`ExactInfluenceScorer` reads.
It is the reference used by removal-and-retrain checks (:func:`evaluate_lds`); a training run's
own convex fit plugs in through :func:`linear_model_features`. Add a column of ones to ``X``
for an intercept (it is regularised like every coefficient).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rowtrail.attribution._checks import is_real
from rowtrail.attribution._features import GradientFeatures
from rowtrail.errors import InvalidInputError
from rowtrail.training import solve_logistic

__all__ = [
    "LinearRetrainer",
    "convex_fit_features",
    "convex_fit_query",
    "fit_l2_linear",
    "linear_model_features",
    "linear_query_features",
]

Loss = Literal["logistic", "squared"]


def _sigmoid(z: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * z)))


def _check_xy(
    x: ArrayLike, y: ArrayLike | None, caller: str
) -> tuple[NDArray[np.float64], NDArray[np.float64] | None]:
    xs = np.asarray(x, dtype=np.float64)
    if xs.ndim != 2 or xs.shape[0] == 0:
        raise InvalidInputError(
            f"X of {caller} must be a non-empty 2-D array (n_samples, n_features); got shape "
            f"{xs.shape!r}."
        )
    if y is None:
        return xs, None
    ys = np.asarray(y, dtype=np.float64)
    if ys.shape != (xs.shape[0],):
        raise InvalidInputError(
            f"y of {caller} must have shape ({xs.shape[0]},); got {ys.shape!r}. Pass one label "
            "per row of X."
        )
    return xs, ys


def _check_loss(loss: str, caller: str) -> None:
    if loss not in ("logistic", "squared"):
        raise InvalidInputError(
            f"loss of {caller} must be one of ('logistic', 'squared'); got {loss!r}."
        )


def fit_l2_linear(
    X: ArrayLike,  # noqa: N803 - the design matrix is X by convention
    y: ArrayLike,
    *,
    l2: float,
    loss: Loss = "logistic",
    sample_weight: ArrayLike | None = None,
    tol: float = 1e-10,
    max_iter: int = 50,
    init: ArrayLike | None = None,
) -> NDArray[np.float64]:
    """Fit an L2-regularised logistic or linear regression exactly (Newton's method).

    Parameters
    ----------
    X : array of shape (n, p)
        Design matrix.
    y : array of shape (n,)
        0/1 labels for ``loss="logistic"``, real targets for ``loss="squared"``.
    l2 : float
        Ridge strength of the sum-form objective (> 0).
    loss : {"logistic", "squared"}
        Logistic regression or ridge regression.
    sample_weight : array of shape (n,), optional
        Per-sample weights; 0 removes a sample (used by removal-and-retrain).
    tol, max_iter : float, int
        Stop when the largest Newton step is below ``tol`` or after ``max_iter`` steps.
    init : array of shape (p,), optional
        Warm start.

    Returns
    -------
    ndarray of shape (p,)
        The coefficients.

    Examples
    --------
    >>> import numpy as np
    >>> fit_l2_linear(np.eye(2), [1.0, 0.0], l2=1.0, loss="squared").tolist()
    [0.5, 0.0]
    """
    caller = "fit_l2_linear"
    xs, ys = _check_xy(X, y, caller)
    if ys is None:  # pragma: no cover - _check_xy returns y when given
        raise InvalidInputError(f"y of {caller} is required")
    _check_loss(loss, caller)
    if not is_real(l2, 0.0, strict=True):
        raise InvalidInputError(f"l2 of {caller} must be a float > 0; got {l2!r}.")
    w = np.ones(xs.shape[0]) if sample_weight is None else np.asarray(sample_weight, np.float64)
    p = xs.shape[1]
    if loss == "squared":
        hessian = xs.T @ (xs * w[:, None]) + l2 * np.eye(p)
        return np.asarray(np.linalg.solve(hessian, xs.T @ (w * ys)))
    # The training layer's solver (the same one fit_logistic uses), stopping on step size.
    theta, _ = solve_logistic(
        xs,
        ys,
        np.full(p, float(l2)),
        weights=w,
        init=init,
        tol=0.0,
        step_tol=tol,
        max_iter=max_iter,
    )
    return theta


def linear_model_features(
    X: ArrayLike,  # noqa: N803
    y: ArrayLike,
    coef: ArrayLike,
    *,
    loss: Loss = "logistic",
    row_ids: ArrayLike | None = None,
    model_id: str = "",
) -> GradientFeatures:
    """Training-side features of a fitted linear model (output gradients and residuals).

    For logistic loss ``grads[i] = s_i x_i`` (``s_i = 2 y_i - 1``) and ``p_correct`` is the
    probability of the label; for squared loss ``grads[i] = x_i`` and ``residual = y - X coef``.
    """
    caller = "linear_model_features"
    xs, ys = _check_xy(X, y, caller)
    _check_loss(loss, caller)
    theta = np.asarray(coef, dtype=np.float64)
    ids = None if row_ids is None else np.asarray(row_ids, dtype=np.int64)
    if ys is None:  # pragma: no cover
        raise InvalidInputError(f"y of {caller} is required")
    z = xs @ theta
    if loss == "squared":
        return GradientFeatures(xs, residual=ys - z, row_ids=ids, model_id=model_id)
    sign = 2.0 * ys - 1.0
    return GradientFeatures(
        xs * sign[:, None], p_correct=_sigmoid(sign * z), row_ids=ids, model_id=model_id
    )


def linear_query_features(
    X: ArrayLike,  # noqa: N803
    coef: ArrayLike,
    *,
    loss: Loss = "logistic",
    target: ArrayLike | None = None,
    model_id: str = "",
) -> GradientFeatures:
    """Query-side features: gradients of the margin of the class to explain (or of the output).

    ``target`` (0/1, one per row or one for all) names the class whose margin is explained,
    e.g. ``1`` for "why default?"; by default the class the model predicts.
    """
    xs, _ = _check_xy(X, None, "linear_query_features")
    _check_loss(loss, "linear_query_features")
    z = xs @ np.asarray(coef, dtype=np.float64)
    if loss == "squared":
        return GradientFeatures(xs, model_id=model_id)
    if target is None:
        sign = np.where(z >= 0, 1.0, -1.0)
    else:
        classes = np.broadcast_to(np.asarray(target, dtype=np.float64), z.shape)
        if not np.isin(classes, (0.0, 1.0)).all():
            raise InvalidInputError(
                f"target of linear_query_features must be 0 or 1 per row; got "
                f"{np.unique(classes)[:5].tolist()!r}. Pass the class whose margin to explain."
            )
        sign = 2.0 * classes - 1.0
    return GradientFeatures(xs * sign[:, None], p_correct=_sigmoid(sign * z), model_id=model_id)


@dataclass(frozen=True, eq=False)
class LinearRetrainer:
    """Retrain a linear model on a subset and return the test points' predicted margins.

    The callable :func:`~rowtrail.attribution.evaluate_lds` and
    :func:`~rowtrail.attribution.leave_one_out` expect: ``retrainer(mask)`` with a boolean
    mask over training samples gives, for every test point, the margin of the class the
    *full* model predicts (the raw output for squared loss).

    Parameters
    ----------
    X, y : training data
    X_test : test inputs
    l2 : float
    loss : {"logistic", "squared"}
    """

    X: NDArray[np.float64]
    y: NDArray[np.float64]
    X_test: NDArray[np.float64]
    l2: float
    loss: Loss = "logistic"
    coef_: NDArray[np.float64] = field(init=False, repr=False)
    test_sign_: NDArray[np.float64] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        xs, ys = _check_xy(self.X, self.y, "LinearRetrainer")
        xt, _ = _check_xy(self.X_test, None, "LinearRetrainer")
        object.__setattr__(self, "X", xs)
        object.__setattr__(self, "y", ys)
        object.__setattr__(self, "X_test", xt)
        if ys is None:  # pragma: no cover - _check_xy returns y when given
            raise InvalidInputError("y of LinearRetrainer is required")
        full = fit_l2_linear(xs, ys, l2=self.l2, loss=self.loss)
        object.__setattr__(self, "coef_", full)
        sign = np.ones(xt.shape[0]) if self.loss == "squared" else np.where(xt @ full >= 0, 1, -1)
        object.__setattr__(self, "test_sign_", sign.astype(np.float64))

    def __call__(self, mask: NDArray[np.bool_]) -> NDArray[np.float64]:
        """Return the test margins of the model retrained on ``X[mask]``."""
        coef = fit_l2_linear(
            self.X,
            self.y,
            l2=self.l2,
            loss=self.loss,
            sample_weight=np.asarray(mask, dtype=np.float64),
            init=self.coef_,
        )
        return np.asarray(self.test_sign_ * (self.X_test @ coef))


def _fit_loss(fit: Any) -> Loss:
    return "logistic" if getattr(fit, "model", "logistic") == "logistic" else "squared"


def convex_fit_features(fit: Any, X: ArrayLike, y: ArrayLike) -> GradientFeatures:  # noqa: N803
    """Training-side features of a ``rowtrail.training.ConvexFit`` (intercept included)."""
    return linear_model_features(
        fit.design(X),
        y,
        fit.theta,
        loss=_fit_loss(fit),
        row_ids=np.asarray(fit.row_ids, dtype=np.int64),
        model_id=str(fit.model),
    )


def convex_fit_query(
    fit: Any,
    X: ArrayLike,  # noqa: N803
    *,
    target: ArrayLike | None = None,
) -> GradientFeatures:
    """Query-side features of inputs ``X`` under a ``rowtrail.training.ConvexFit``.

    ``target`` is the class whose margin to explain (default: the predicted class).
    """
    return linear_query_features(
        fit.design(X), fit.theta, loss=_fit_loss(fit), target=target, model_id=str(fit.model)
    )
