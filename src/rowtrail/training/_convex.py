"""Convex models fitted to convergence, recorded with what exact influence and unlearning need.

Objectives (``X̃ = [X, 1]`` when ``fit_intercept``; the intercept is not penalised):

- logistic: ``J(θ) = Σ_i [log(1 + exp(x̃_iᵀθ)) - y_i x̃_iᵀθ] + (l2/2)‖w‖²``
- ridge:    ``J(θ) = ½ Σ_i (y_i - x̃_iᵀθ)² + (l2/2)‖w‖²``

A fit records (``training.fit``) the data digest, the fitted θ, the Hessian
``H = X̃ᵀ diag(s) X̃ + l2·D`` of the regularised objective at θ (``s = p(1-p)`` for logistic,
``1`` for ridge) and the gradient norm reached, which is what exact influence
(``-H⁻¹ ∇l_i``, Koh & Liang 2017 §2) and Newton removal (``θ + H₋ᵣ⁻¹ Σ_{i∈r} ∇l_i``) need.
scikit-learn's ``C`` is ``1/l2`` (its objective is ``C Σl + ½‖w‖²``) and Ridge's ``alpha`` is
``l2``; :func:`record_sklearn_fit` converts and records a fitted estimator.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rowtrail.errors import InvalidInputError
from rowtrail.hashing import DIGEST_PREFIX, canonical_json
from rowtrail.lineage import register_source
from rowtrail.training._rows import SampleRows, check_row_ids

__all__ = ["ConvexFit", "fit_logistic", "fit_ridge", "record_sklearn_fit", "solve_logistic"]

F64 = NDArray[np.float64]


@dataclass
class ConvexFit:
    """A fitted convex model with the Hessian of its regularised objective."""

    model: str
    theta: F64
    hessian: F64
    l2: float
    fit_intercept: bool
    n_iter: int
    grad_norm: float
    objective: float
    data_digest: str
    row_ids: NDArray[np.int64]
    ledger_index: int | None = None
    blobs: dict[str, str] = field(default_factory=dict)
    # ``max_i ‖x̃_i‖`` over the training rows, kept when the fit saw them (unlearning's bound).
    max_row_norm: float | None = None
    _min_eigenvalue: float | None = field(default=None, repr=False, compare=False)

    def min_eigenvalue(self) -> float:
        """Return ``λ_min`` of the stored Hessian (computed once, O(d³))."""
        if self._min_eigenvalue is None:
            self._min_eigenvalue = float(np.linalg.eigvalsh(self.hessian)[0])
        return self._min_eigenvalue

    @property
    def converged(self) -> bool:
        """Whether the gradient norm reached ``1e-6 * n_samples``."""
        return self.grad_norm <= 1e-6 * max(1, self.row_ids.size)

    @property
    def coef_(self) -> F64:
        """Feature weights ``w``."""
        return self.theta[:-1] if self.fit_intercept else self.theta

    @property
    def intercept_(self) -> float:
        """The intercept (0.0 without one)."""
        return float(self.theta[-1]) if self.fit_intercept else 0.0

    def design(self, X: ArrayLike) -> F64:  # noqa: N803 - X as in sklearn
        """Return ``X̃`` (``X`` with a column of ones when there is an intercept)."""
        return _design(_check_X(X, "ConvexFit.design"), self.fit_intercept)

    def decision_function(self, X: ArrayLike) -> F64:  # noqa: N803
        """Return ``x̃ᵀθ`` for each row."""
        return self.design(X) @ self.theta

    def predict_proba(self, X: ArrayLike) -> F64:  # noqa: N803
        """Return P(y=1) for logistic models."""
        return _sigmoid(self.decision_function(X))

    def sample_gradients(self, X: ArrayLike, y: ArrayLike) -> F64:  # noqa: N803
        """Return the per-sample loss gradients ``∇_θ l_i`` (no penalty), shape (n, d)."""
        design = self.design(X)
        z = design @ self.theta
        target = np.asarray(y, dtype=np.float64).reshape(-1)
        residual = _sigmoid(z) - target if self.model == "logistic" else z - target
        return np.asarray(design * residual[:, None], dtype=np.float64)


def _check_X(X: ArrayLike, caller: str) -> F64:  # noqa: N802, N803 - X as in sklearn
    array = np.asarray(X, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] == 0 or not np.isfinite(array).all():
        n_bad = int(array.size - np.isfinite(array).sum())
        raise InvalidInputError(
            f"X of {caller} must be a finite 2-d array with at least one row; "
            f"got shape {array.shape} with {n_bad} NaN or infinite values"
        )
    return array


def _check_y(y: ArrayLike, n: int, caller: str, *, binary: bool) -> F64:
    target = np.asarray(y, dtype=np.float64).reshape(-1)
    if target.shape[0] != n or not np.isfinite(target).all():
        raise InvalidInputError(
            f"y of {caller} must be {n} finite values; got shape {target.shape}"
        )
    if binary and not np.isin(target, (0.0, 1.0)).all():
        raise InvalidInputError(
            f"y of {caller} must hold only 0 and 1; got values {np.unique(target)[:5]}"
        )
    return target


def _check_l2(l2: object, caller: str) -> float:
    if not isinstance(l2, int | float) or isinstance(l2, bool) or not l2 > 0:
        raise InvalidInputError(
            f"l2 of {caller} must be a number > 0 (the fit must be strongly convex); got {l2!r}"
        )
    return float(l2)


@contextmanager
def _numerics(
    caller: str,
    fix: str = "Standardize the features (e.g. to mean 0, variance 1) and fit again. "
    "Nothing was recorded.",
) -> Iterator[None]:
    """Turn an overflow or invalid value during a fit into a typed error, before any write.

    NumPy's ``over``/``invalid``/``divide`` warnings become errors here, so a fit (or an
    update of one) whose arithmetic leaves the finite doubles fails instead of recording NaN
    or infinity; ``fix`` says what to do.
    """
    try:
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            yield
    except (FloatingPointError, np.linalg.LinAlgError) as exc:
        raise InvalidInputError(
            f"X of {caller} must have values small enough for the fit's arithmetic to stay "
            f"finite; got a {type(exc).__name__}: {exc}. {fix}"
        ) from exc


def _check_fitted(fit: ConvexFit, caller: str) -> None:
    """Raise unless every number the fit would record is finite."""
    values = (fit.theta, fit.hessian, np.array([fit.grad_norm, fit.objective]))
    if not all(np.isfinite(v).all() for v in values):
        raise InvalidInputError(
            f"X of {caller} must give a finite fit; got non-finite parameters, Hessian or "
            "objective. Standardize the features (e.g. to mean 0, variance 1) and fit again. "
            "Nothing was recorded."
        )


def _design(X: F64, fit_intercept: bool) -> F64:  # noqa: N803
    return np.hstack([X, np.ones((X.shape[0], 1))]) if fit_intercept else X


def _sigmoid(z: F64) -> F64:
    return np.asarray(np.exp(-np.logaddexp(0.0, -z)), dtype=np.float64)


def _penalty(d: int, l2: float, fit_intercept: bool) -> F64:
    diag = np.full(d, l2)
    if fit_intercept:
        diag[-1] = 0.0
    return diag


def _logistic_terms(
    design: F64, y: F64, theta: F64, pen: F64, weights: F64 | None = None
) -> tuple[float, F64, F64]:
    z = design @ theta
    p = _sigmoid(z)
    w = np.ones_like(z) if weights is None else weights
    objective = float(np.sum(w * (np.logaddexp(0.0, z) - y * z)) + 0.5 * np.sum(pen * theta**2))
    gradient = design.T @ (w * (p - y)) + pen * theta
    hessian = (design * (w * p * (1.0 - p))[:, None]).T @ design + np.diag(pen)
    return objective, gradient, hessian


def solve_logistic(
    design: ArrayLike,
    y: ArrayLike,
    penalty: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    init: ArrayLike | None = None,
    tol: float = 1e-10,
    step_tol: float = 0.0,
    max_iter: int = 100,
) -> tuple[F64, int]:
    """Minimise weighted L2-regularised logistic loss by damped Newton; return ``(θ, steps)``.

    The objective is ``Σ wᵢ·(log(1 + e^{zᵢ}) - yᵢ zᵢ) + ½ Σ penaltyⱼ θⱼ²`` with ``z = design θ``
    (a 0 penalty leaves a coefficient, such as an intercept column, unpenalised). Backtracking
    keeps every step monotone. It stops when ``‖∇‖ ≤ tol · n`` or, with ``step_tol > 0``, when
    the largest step component is below ``step_tol``; ``init`` warm-starts it. This is the one
    solver behind :func:`fit_logistic` and the attribution layer's retraining.
    """
    x = np.asarray(design, dtype=np.float64)
    target = np.asarray(y, dtype=np.float64)
    pen = np.asarray(penalty, dtype=np.float64)
    w = None if weights is None else np.asarray(weights, dtype=np.float64)
    theta = np.zeros(x.shape[1]) if init is None else np.array(init, dtype=np.float64)
    objective, gradient, hessian = _logistic_terms(x, target, theta, pen, w)
    for iteration in range(1, max_iter + 1):
        step = np.linalg.solve(hessian + 1e-12 * np.eye(len(theta)), gradient)
        scale = 1.0
        while scale > 1e-10:  # backtracking keeps Newton monotone far from the optimum
            candidate = theta - scale * step
            new = _logistic_terms(x, target, candidate, pen, w)
            if new[0] <= objective + 1e-4 * scale * float(gradient @ -step):
                break
            scale *= 0.5
        theta, (objective, gradient, hessian) = candidate, new
        if float(np.linalg.norm(gradient)) <= tol * x.shape[0]:
            return theta, iteration
        if step_tol > 0 and float(np.max(np.abs(scale * step))) < step_tol:
            return theta, iteration
    return theta, max_iter


def _data_digest(X: F64, y: F64) -> str:  # noqa: N803
    hasher = hashlib.sha256()
    hasher.update(canonical_json([list(X.shape), "float64", list(y.shape), "float64"]))
    hasher.update(np.ascontiguousarray(X).tobytes())
    hasher.update(np.ascontiguousarray(y).tobytes())
    return DIGEST_PREFIX + hasher.hexdigest()


def _resolve_ids(run: Any, X_in: Any,  # noqa: N803 - X as in sklearn
                row_ids: Any, n: int, digest: str) -> NDArray[np.int64]:
    return _resolve_rows(run, X_in, row_ids, n, digest)[0]


def _resolve_rows(
    run: Any, X_in: Any, row_ids: Any, n: int, digest: str  # noqa: N803 - X as in sklearn
) -> tuple[NDArray[np.int64], SampleRows | None]:
    """Return each sample's row id and, for a traced ``X``, every source row of each sample.

    A traced array built by joins and aggregations (``rt.to_numpy`` of a merged frame) names
    each sample's own row and the rows aggregated into it; the fit records both, so usage and
    erasure find a secondary-table row inside the samples it was summed into.
    """
    explicit = row_ids if row_ids is not None else getattr(X_in, "row_ids", None)
    if explicit is not None:
        return check_row_ids(explicit, n, caller="fit_logistic"), None
    from rowtrail.lineage._sklearn import fit_rows_of

    rows = fit_rows_of(X_in)
    if rows is not None and rows.row_ids.size == n:
        lineage = SampleRows(rows.offsets, rows.ids, rows.aggregated, rows.statistic)
        return rows.row_ids, (lineage if lineage.adds_to(rows.row_ids) else None)
    if run is None:
        return np.arange(n, dtype=np.int64), None
    info = register_source(
        run.ws, name=f"{run.name}/train", digest=digest, format="numpy",
        schema={"basis": "design matrix and target"}, n_rows=n,
    )
    return info.row_ids(), None


def _finish_fit(
    fit: ConvexFit, run: Any, caller: str, lineage: SampleRows | None = None
) -> ConvexFit:
    if run is None:
        return fit
    ledger = run.ws.ledger
    split = run.log_split("train", fit.row_ids, lineage=lineage)
    fit.blobs = {
        "theta": ledger.put_blob(np.ascontiguousarray(fit.theta, dtype="<f8").tobytes()),
        "hessian": ledger.put_blob(np.ascontiguousarray(fit.hessian, dtype="<f8").tobytes()),
    }
    payload = {
        "run": run.run_id,
        "model": fit.model,
        "caller": caller,
        "l2": fit.l2,
        "fit_intercept": fit.fit_intercept,
        "n_samples": int(fit.row_ids.size),
        "dim": int(fit.theta.size),
        "n_iter": fit.n_iter,
        "grad_norm": fit.grad_norm,
        "objective": fit.objective,
        "converged": fit.converged,
        "data_digest": fit.data_digest,
        "dataset": split,
        "blobs": fit.blobs,
    }
    fit.ledger_index = ledger.append("training.fit", payload, blobs=list(fit.blobs.values()))
    run.fits.append(payload)
    return fit


def _max_row_norm(data: F64, fit_intercept: bool) -> float:
    """Return ``max_i ‖x̃_i‖`` (``x̃ = [x, 1]`` with an intercept)."""
    squares = np.einsum("ij,ij->i", data, data) if data.size else np.zeros(1)
    return float(np.sqrt(float(squares.max(initial=0.0)) + (1.0 if fit_intercept else 0.0)))


def fit_logistic(
    X: ArrayLike,  # noqa: N803 - X as in sklearn
    y: ArrayLike,
    *,
    l2: float,
    run: Any = None,
    row_ids: ArrayLike | None = None,
    fit_intercept: bool = True,
    tol: float = 1e-10,
    max_iter: int = 100,
) -> ConvexFit:
    """Fit L2-regularised logistic regression by Newton's method and record it in ``run``.

    Parameters
    ----------
    X, y : array_like
        Design matrix (n, d) and 0/1 labels (n,).
    l2 : float
        Penalty strength on the weights (``1/C`` in scikit-learn terms); must be > 0.
    run : TrainingRun, optional
        Where to record the fit (``training.split`` + ``training.fit``).
    row_ids : array_like of int64, optional
        Row id of each sample; default ``X.row_ids``, else the rows are registered as a source.
    fit_intercept : bool
        Add an unpenalised intercept.
    tol, max_iter
        Stop when ``‖∇J‖ ≤ tol · n`` or after ``max_iter`` Newton steps.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(200, 3))
    >>> y = (X @ [1.0, -2.0, 0.5] > 0).astype(float)
    >>> fit = fit_logistic(X, y, l2=1.0)
    >>> fit.converged, fit.hessian.shape
    (True, (4, 4))
    """
    data = _check_X(X, "fit_logistic")
    target = _check_y(y, data.shape[0], "fit_logistic", binary=True)
    lam = _check_l2(l2, "fit_logistic")
    design = _design(data, fit_intercept)
    pen = _penalty(design.shape[1], lam, fit_intercept)
    with _numerics("fit_logistic"):
        theta, n_iter = solve_logistic(design, target, pen, tol=tol, max_iter=max_iter)
        objective, gradient, hessian = _logistic_terms(design, target, theta, pen)
        grad_norm = float(np.linalg.norm(gradient))
    digest = _data_digest(data, target)
    fit = ConvexFit(
        "logistic", theta, hessian, lam, fit_intercept, n_iter, grad_norm,
        objective, digest, np.empty(0, dtype=np.int64),
    )
    fit.max_row_norm = _max_row_norm(data, fit.fit_intercept)
    _check_fitted(fit, "fit_logistic")  # before _resolve_ids, which may register a source
    fit.row_ids, lineage = _resolve_rows(run, X, row_ids, data.shape[0], digest)
    return _finish_fit(fit, run, "fit_logistic", lineage)


def fit_ridge(
    X: ArrayLike,  # noqa: N803 - X as in sklearn
    y: ArrayLike,
    *,
    l2: float,
    run: Any = None,
    row_ids: ArrayLike | None = None,
    fit_intercept: bool = True,
) -> ConvexFit:
    """Fit ridge regression in closed form (``θ = H⁻¹ X̃ᵀy``) and record it in ``run``.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(100, 2)); y = X @ [2.0, -1.0] + 3.0
    >>> np.round(fit_ridge(X, y, l2=1e-6).theta, 3).tolist()
    [2.0, -1.0, 3.0]
    """
    data = _check_X(X, "fit_ridge")
    target = _check_y(y, data.shape[0], "fit_ridge", binary=False)
    lam = _check_l2(l2, "fit_ridge")
    design = _design(data, fit_intercept)
    pen = _penalty(design.shape[1], lam, fit_intercept)
    with _numerics("fit_ridge"):
        hessian = design.T @ design + np.diag(pen)
        theta = np.asarray(np.linalg.solve(hessian, design.T @ target), dtype=np.float64)
        residual = design @ theta - target
        gradient = design.T @ residual + pen * theta
        objective = float(0.5 * residual @ residual + 0.5 * np.sum(pen * theta**2))
        grad_norm = float(np.linalg.norm(gradient))
    digest = _data_digest(data, target)
    fit = ConvexFit(
        "ridge", theta, hessian, lam, fit_intercept, 1, grad_norm,
        objective, digest, np.empty(0, dtype=np.int64),
    )
    fit.max_row_norm = _max_row_norm(data, fit.fit_intercept)
    _check_fitted(fit, "fit_ridge")  # before _resolve_ids, which may register a source
    fit.row_ids, lineage = _resolve_rows(run, X, row_ids, data.shape[0], digest)
    return _finish_fit(fit, run, "fit_ridge", lineage)


def record_sklearn_fit(
    estimator: Any,
    X: ArrayLike,  # noqa: N803 - X as in sklearn
    y: ArrayLike,
    *,
    run: Any = None,
    row_ids: ArrayLike | None = None,
    lineage: SampleRows | None = None,
) -> ConvexFit:
    """Record a fitted scikit-learn ``LogisticRegression`` (binary, L2) or ``Ridge``.

    The Hessian is computed for the equivalent rowtrail objective (``l2 = 1/C`` or ``alpha``)
    at the estimator's own parameters; ``grad_norm`` tells how far from the optimum it stopped.
    ``lineage`` (every source row of each sample, fitted statistics included) is recorded with
    the run's split, as :meth:`TrainingRun.log_split` does.
    """
    name = type(estimator).__name__
    data = _check_X(X, "record_sklearn_fit")
    coef = np.asarray(getattr(estimator, "coef_", None), dtype=np.float64).reshape(-1)
    if name == "LogisticRegression":
        penalty = getattr(estimator, "penalty", "l2")
        if coef.size != data.shape[1] or penalty not in ("l2", None, "deprecated"):
            raise InvalidInputError(
                f"estimator of record_sklearn_fit must be a fitted binary L2 LogisticRegression; "
                f"got coef_ of size {coef.size} for {data.shape[1]} features"
            )
        model, lam = "logistic", 1.0 / float(estimator.C)
    elif name == "Ridge":
        model, lam = "ridge", float(estimator.alpha)
    else:
        raise InvalidInputError(
            f"estimator of record_sklearn_fit must be LogisticRegression or Ridge; got {name}"
        )
    intercept = bool(estimator.fit_intercept)
    target = _check_y(y, data.shape[0], "record_sklearn_fit", binary=model == "logistic")
    theta = np.append(coef, float(np.ravel(estimator.intercept_)[0])) if intercept else coef
    design = _design(data, intercept)
    pen = _penalty(design.shape[1], lam, intercept)
    with _numerics("record_sklearn_fit"):
        if model == "logistic":
            objective, gradient, hessian = _logistic_terms(design, target, theta, pen)
        else:
            residual = design @ theta - target
            gradient = design.T @ residual + pen * theta
            hessian = design.T @ design + np.diag(pen)
            objective = float(0.5 * residual @ residual + 0.5 * np.sum(pen * theta**2))
        grad_norm = float(np.linalg.norm(gradient))
    digest = _data_digest(data, target)
    raw_iter = getattr(estimator, "n_iter_", None)  # None for Ridge's direct solvers
    n_iter = 0 if raw_iter is None else int(np.max(raw_iter))
    fit = ConvexFit(
        model, theta, hessian, lam, intercept, n_iter, grad_norm,
        objective, digest, np.empty(0, dtype=np.int64),
    )
    fit.max_row_norm = _max_row_norm(data, fit.fit_intercept)
    _check_fitted(fit, "record_sklearn_fit")  # before _resolve_ids, which may write
    fit.row_ids = _resolve_ids(run, X, row_ids, data.shape[0], digest)
    return _finish_fit(fit, run, f"sklearn.{name}", lineage)
