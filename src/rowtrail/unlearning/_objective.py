"""The retained-data objective of a convex fit after removing and replacing samples.

``J'(θ) = Σ_{i kept} l(x̃_i, y_i; θ) + Σ_{j replaced} l(x̃'_j, y'_j; θ) + ½ Σ_k P_k θ_k²``, with
the losses and penalty ``P`` of :mod:`rowtrail.training._convex` (logistic or squared loss,
unpenalised intercept). The training matrix is never copied: samples that are removed or
replaced get weight 0 in the sums over ``X``, and the replacement rows are summed separately,
so a gradient costs two passes over ``X`` (O(n d)) and the exact Hessian one (O(n d²)).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from rowtrail.training._convex import _sigmoid

__all__ = ["RetainedObjective"]

F64 = NDArray[np.float64]


def _margins(X: F64, theta: F64, fit_intercept: bool) -> F64:  # noqa: N803 - X as in sklearn
    if fit_intercept:
        return np.asarray(X @ theta[:-1] + theta[-1], dtype=np.float64)
    return np.asarray(X @ theta, dtype=np.float64)


def _transpose_times(X: F64, r: F64, fit_intercept: bool) -> F64:  # noqa: N803
    """Return ``X̃ᵀ r`` without forming ``X̃``."""
    head = X.T @ r
    return np.append(head, r.sum()) if fit_intercept else np.asarray(head, dtype=np.float64)


def _gram(X: F64, s: F64, fit_intercept: bool) -> F64:  # noqa: N803
    """Return ``X̃ᵀ diag(s) X̃`` without forming ``X̃``."""
    weighted = X * s[:, None]
    top = weighted.T @ X
    if not fit_intercept:
        return np.asarray(top, dtype=np.float64)
    col = weighted.sum(axis=0)
    d = X.shape[1]
    out = np.empty((d + 1, d + 1))
    out[:d, :d], out[:d, d], out[d, :d], out[d, d] = top, col, col, s.sum()
    return out


@dataclass
class RetainedObjective:
    """``J'`` over the kept rows of ``X`` and the replacement rows ``X_new``.

    ``removed`` marks the samples removed; row ``j`` of ``X_new`` / ``y_new`` replaces sample
    ``replaced[j]`` (a position into ``X``). ``weights`` is 1 on the samples that stay as they
    are and 0 on those removed or replaced.
    """

    model: str
    X: F64
    y: F64
    removed: NDArray[np.bool_]
    replaced: NDArray[np.int64]
    X_new: F64
    y_new: F64
    penalty: F64
    fit_intercept: bool
    weights: F64 = field(init=False, repr=False)

    def __post_init__(self) -> None:
        weights = (~self.removed).astype(np.float64)
        weights[self.replaced] = 0.0
        self.weights = weights

    @property
    def n_samples(self) -> int:
        """Samples in the retained objective (kept + replaced)."""
        return int(self.weights.sum()) + int(self.X_new.shape[0])

    def _residuals(self, X: F64, y: F64, theta: F64) -> tuple[F64, F64]:  # noqa: N803
        z = _margins(X, theta, self.fit_intercept)
        if self.model == "logistic":
            p = _sigmoid(z)
            return p - y, p * (1.0 - p)
        return z - y, np.ones_like(z)

    def gradient(self, theta: F64) -> F64:
        """Return ``∇J'(θ)``."""
        r, _ = self._residuals(self.X, self.y, theta)
        grad = _transpose_times(self.X, self.weights * r, self.fit_intercept)
        if self.X_new.shape[0]:
            r_new, _ = self._residuals(self.X_new, self.y_new, theta)
            grad = grad + _transpose_times(self.X_new, r_new, self.fit_intercept)
        return np.asarray(grad + self.penalty * theta, dtype=np.float64)

    def hessian(self, theta: F64) -> F64:
        """Return the exact Hessian ``∇²J'(θ)`` (O(n d²))."""
        _, s = self._residuals(self.X, self.y, theta)
        hess = _gram(self.X, self.weights * s, self.fit_intercept)
        if self.X_new.shape[0]:
            _, s_new = self._residuals(self.X_new, self.y_new, theta)
            hess = hess + _gram(self.X_new, s_new, self.fit_intercept)
        return np.asarray(hess + np.diag(self.penalty), dtype=np.float64)

    def rows_gradient(self, X: F64, y: F64, theta: F64) -> F64:  # noqa: N803
        """Return ``Σ_i ∇l_i(θ)`` over the rows ``X`` (no penalty)."""
        r, _ = self._residuals(X, y, theta)
        return _transpose_times(X, r, self.fit_intercept)

    def rows_hessian(self, X: F64, y: F64, theta: F64) -> F64:  # noqa: N803
        """Return ``Σ_i ∇²l_i(θ)`` over the rows ``X`` (no penalty)."""
        _, s = self._residuals(X, y, theta)
        return _gram(X, s, self.fit_intercept)

    def objective(self, theta: F64) -> float:
        """Return ``J'(θ)``."""
        total = 0.0
        for rows, y, w in ((self.X, self.y, self.weights), (self.X_new, self.y_new, None)):
            if rows.shape[0] == 0:
                continue
            z = _margins(rows, theta, self.fit_intercept)
            loss = np.logaddexp(0.0, z) - y * z if self.model == "logistic" else 0.5 * (z - y) ** 2
            total += float(np.sum(loss if w is None else w * loss))
        return total + 0.5 * float(np.sum(self.penalty * theta**2))

    def max_margin_change(self, theta: F64, reference: F64) -> float:
        """Return ``max_i |x̃_iᵀ(θ - reference)|`` over every retained sample."""
        delta = theta - reference
        change = np.abs(_margins(self.X, delta, self.fit_intercept)) * (self.weights > 0)
        best = float(change.max(initial=0.0))
        if self.X_new.shape[0]:
            best = max(best, float(np.abs(_margins(self.X_new, delta, self.fit_intercept)).max()))
        return best

    def max_row_norm(self) -> float:
        """Return ``max_i ‖x̃_i‖`` over every retained sample."""
        extra = 1.0 if self.fit_intercept else 0.0
        sq = np.einsum("ij,ij->i", self.X, self.X) * (self.weights > 0)
        best = float(sq.max(initial=0.0))
        if self.X_new.shape[0]:
            best = max(best, float(np.einsum("ij,ij->i", self.X_new, self.X_new).max()))
        return float(np.sqrt(best + extra))

    def design(self) -> tuple[F64, F64]:
        """Return the retained design ``X̃'`` and target ``y'`` in training order.

        Replacement rows sit where the samples they replace were; removed samples are dropped.
        This copies ``X`` and is used only by warm-started retraining and :attr:`fit`.
        """
        X, y = self.X.copy(), self.y.copy()  # noqa: N806
        X[self.replaced], y[self.replaced] = self.X_new, self.y_new
        keep = ~self.removed
        X, y = X[keep], y[keep]  # noqa: N806
        if self.fit_intercept:
            X = np.hstack([X, np.ones((X.shape[0], 1))])  # noqa: N806
        return np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
