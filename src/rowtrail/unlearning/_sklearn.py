"""Unlearning for a fitted scikit-learn ``LogisticRegression`` or ``Ridge`` (or a Pipeline).

The estimator is converted as :func:`rowtrail.training.record_sklearn_fit` converts it
(``l2 = 1/C`` for ``LogisticRegression``, whose objective is ``C Σ l + ½‖w‖²``; ``l2 = alpha``
for ``Ridge``) and :func:`~rowtrail.unlearning._convex.unlearn_convex` does the work; the
unlearned parameters go into a deep copy of the estimator.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rowtrail.errors import InvalidInputError
from rowtrail.training import record_sklearn_fit
from rowtrail.unlearning._convex import ConvexUnlearning, unlearn_convex

__all__ = ["unlearn_sklearn"]

F64 = NDArray[np.float64]


def _final_estimator(estimator: Any) -> tuple[Any, Any]:
    """Return ``(final step, pipeline or None)`` for an estimator or a Pipeline ending in one."""
    steps = getattr(estimator, "steps", None)
    if isinstance(steps, list) and steps:
        return steps[-1][1], estimator
    return estimator, None


def unlearn_sklearn(
    estimator: Any,
    X: ArrayLike,  # noqa: N803 - X as in sklearn
    y: ArrayLike,
    *,
    remove: Sequence[int] | NDArray[np.integer[Any]],
    replace: tuple[Any, ...] | None = None,
    tol: float | None = None,
    max_steps: int = 10,
) -> tuple[ConvexUnlearning, Any]:
    """Unlearn from a fitted scikit-learn ``LogisticRegression`` (binary, L2) or ``Ridge``.

    The fit is converted as :func:`~rowtrail.training.record_sklearn_fit` does (``l2 = 1/C``
    or ``alpha``; the Hessian is computed at the estimator's own parameters, an O(n d²) pass
    counted in ``seconds``) and :func:`unlearn_convex` moves it to the optimum of the retained
    objective, so the result is the exact optimum of the equivalent problem, which
    scikit-learn's own solvers reach only to their ``tol``.

    Parameters
    ----------
    estimator : LogisticRegression, Ridge or Pipeline
        A fitted estimator, or a fitted ``Pipeline`` ending in one.
    X : array_like
        The final estimator's training input (for a Pipeline: ``pipeline[:-1].transform`` of
        the raw data, fitted statistics kept as they are).
    y : array_like
        Its training target (for LogisticRegression, labels among ``estimator.classes_``).
    remove, replace, tol, max_steps
        As in :func:`unlearn_convex` (``X_new`` in the final estimator's input space, and
        ``y_new`` as class labels).

    Returns
    -------
    tuple of (ConvexUnlearning, estimator)
        The outcome, and a deep copy of ``estimator`` whose final step carries the unlearned
        ``coef_`` and ``intercept_``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 3)); y = (X[:, 0] + rng.normal(size=300) > 0).astype(int)
    >>> model = LogisticRegression(C=1.0).fit(X, y)
    >>> out, unlearned = unlearn_sklearn(model, X, y, remove=[0, 1, 2])
    >>> out.method, unlearned.coef_.shape, unlearned is model
    ('newton', (1, 3), False)
    """
    final, _ = _final_estimator(estimator)
    target = _sklearn_target(final, y, "y")
    if replace is not None and len(replace) == 3 and replace[2] is not None:
        replace = (replace[0], replace[1], _sklearn_target(final, replace[2], "y_new"))
    start = time.perf_counter()
    fit = record_sklearn_fit(final, X, target)
    result = unlearn_convex(fit, X, target, remove=remove, replace=replace, tol=tol,
                            max_steps=max_steps)  # fmt: skip
    result.seconds = time.perf_counter() - start
    model = copy.deepcopy(estimator)
    step, _ = _final_estimator(model)
    coef = result.theta[:-1] if fit.fit_intercept else result.theta
    intercept = float(result.theta[-1]) if fit.fit_intercept else 0.0
    if type(final).__name__ == "LogisticRegression":
        step.coef_ = coef.reshape(1, -1).copy()
        step.intercept_ = np.array([intercept])
    else:
        step.coef_ = coef.copy()
        step.intercept_ = intercept
    return result, model


def _sklearn_target(final: Any, y: Any, name: str) -> F64:
    """Map LogisticRegression labels to 0/1 through ``classes_``; pass Ridge targets through."""
    if type(final).__name__ != "LogisticRegression":
        return np.asarray(y, dtype=np.float64)
    classes = np.asarray(getattr(final, "classes_", []))
    labels = np.asarray(y)
    if classes.size != 2 or getattr(final, "class_weight", None) is not None:
        raise InvalidInputError(
            f"estimator of unlearn_sklearn must be a fitted binary LogisticRegression without "
            f"class_weight; got classes {classes.tolist()} and class_weight "
            f"{getattr(final, 'class_weight', None)!r}"
        )
    if not np.isin(labels, classes).all():
        raise InvalidInputError(
            f"{name} of unlearn_sklearn must hold only the estimator's classes "
            f"{classes.tolist()}; got {np.unique(labels)[:5].tolist()}"
        )
    return np.asarray(labels == classes[1], dtype=np.float64)
