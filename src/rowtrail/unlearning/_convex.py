"""Newton removal and replacement for convex fits, exact to a stated tolerance (DESIGN §6).

Removing samples ``r`` from an L2-regularised logistic or ridge fit and replacing samples ``q``
with new rows (a sample built from an erased row, e.g. an applicant whose aggregated bureau
features included it, stays with recomputed features) moves the optimum to ``θ*`` of the
retained objective ``J'``. Starting from the fitted ``θ``, :func:`unlearn_convex` takes Newton
steps ``θ ← θ - H_ref⁻¹ ∇J'(θ)`` (Koh & Liang 2017 §2.1 give the first one as the influence
function; Guo et al. 2020 "Certified data removal" §3 the one-step Newton update), where

* ``H_ref`` starts as the fit's stored Hessian minus the removed and replaced samples'
  Hessian terms plus the replacement rows' terms, all at the fitted ``θ`` (O(|r|+|q|)·d²,
  no pass over the data): this is the exact Hessian of ``J'`` at the fitted ``θ``;
* later steps reuse it (a chord step costs one gradient, O(n d)) while the residual shrinks
  at least 4x per step, and otherwise recompute the exact Hessian at the current ``θ``
  (O(n d²), counted in ``hessian_refreshes``);

until the retained-data gradient residual ``‖∇J'(θ)‖`` is at most ``tol`` and the parameter
bound below is certified (the first step needs no pass over the data when the fit's own
gradient is negligible; every residual after a step is computed exactly). If ``max_steps``
steps do not reach it, the damped Newton solver the fit itself uses
(:func:`rowtrail.training.solve_logistic`; the closed form for ridge) retrains from ``θ``, and
the result says ``method="retrain-warm"``.

**Parameter bound.** With ``g = ∇J'(θ)``, ``‖θ - θ*‖ ≤ ‖g‖ / μ`` for any ``μ`` that bounds the
smallest Hessian eigenvalue of ``J'`` from below on a ball around ``θ`` that contains ``θ*``.

* Ridge: the Hessian is constant, ``μ = λ_min(H)`` computed exactly.
* Logistic without intercept: ``J'`` is ``l2``-strongly convex everywhere, ``μ ≥ l2``.
* Logistic with an unpenalised intercept: ``l2`` is *not* a strong-convexity constant (the
  intercept direction is curved only by the data term, whose curvature ``p(1-p)`` vanishes
  far away), so ``μ`` comes from the Hessian: ``λ_ref = λ_min(H_ref)`` is computed
  (``numpy.linalg.eigvalsh``, O(d³)) and carried from the reference point ``θ_ref`` to every
  ``ξ`` with ``‖ξ - θ‖ ≤ r`` by the bound on the logistic curvature ``s = p(1-p)``,
  ``s(z+δ)/s(z) ≥ e^{-|δ|}``:
  ``∇²J'(ξ) ⪰ e^{-(M + Rr)} H_ref`` with ``M = max_i |x̃_iᵀ(θ - θ_ref)|`` and
  ``R = max_i ‖x̃_i‖`` over the retained samples (both O(n d)). Taking ``r = 4‖g‖e^M/λ_ref``,
  when ``Rr < ln 2`` the minimiser lies in that ball and
  ``‖θ - θ*‖ ≤ bound = ‖g‖ e^{M + Rr} / λ_ref``; ``mu`` records ``λ_ref e^{-(M + Rr)}``.
  Otherwise no bound is certified (``inf``). Without intercept the smaller of the two bounds
  is reported.

The bound assumes the stored Hessian is the fit's exact Hessian at its ``θ`` (as
:func:`~rowtrail.training.fit_logistic`, :func:`~rowtrail.training.fit_ridge` and
:func:`~rowtrail.training.record_sklearn_fit` record it; the data is checked against the fit's
digest). :func:`rowtrail.unlearning.compare_with_retraining` checks the outcome independently.
"""

from __future__ import annotations

import hmac
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rowtrail.errors import InvalidInputError
from rowtrail.training import ConvexFit, solve_logistic
from rowtrail.training._convex import (
    _check_X,
    _check_y,
    _data_digest,
    _numerics,
    _penalty,
    _sigmoid,
)
from rowtrail.unlearning._objective import RetainedObjective

__all__ = ["ConvexUnlearning", "unlearn_convex"]

F64 = NDArray[np.float64]
EXACT_LABEL = "exact to tolerance"
_CALLER = "unlearn_convex"
_SLOW = 0.25  # a chord step must cut the residual 4x, else the Hessian is recomputed


@dataclass
class ConvexUnlearning:
    """The outcome of :func:`unlearn_convex`: the unlearned parameters and how exact they are.

    Attributes
    ----------
    theta : ndarray of float64
        Parameters of the unlearned model (``[w, b]`` with an intercept, as in ``ConvexFit``).
    method : {"newton", "retrain-warm"}
        ``"newton"``: Newton/chord steps from the fitted ``θ`` reached ``tol``;
        ``"retrain-warm"``: they did not within ``max_steps``, and the fit's solver retrained
        from the last ``θ``.
    exact_label : str
        ``"exact to tolerance"``: ``residual <= tolerance`` holds (otherwise no result is
        returned: :func:`unlearn_convex` raises).
    steps : int
        Newton/chord steps taken, plus the retraining solver's iterations after a fallback.
    residual : float
        ``‖∇J'(θ)‖``, the gradient norm of the retained objective at ``theta``.
    tolerance : float
        The ``tol`` the residual was driven below.
    bound : float
        Certified ``‖theta - θ*‖`` bound (``inf`` when none could be certified); see the
        module docstring.
    mu : float
        The curvature lower bound ``μ`` behind ``bound``.
    seconds : float
        Wall time of the call (checks included, :attr:`fit` excluded).
    hessian_refreshes : int
        Exact O(n d²) Hessians computed (0 when the stored Hessian sufficed).
    n_removed, n_replaced : int
        Samples removed, and samples kept with new features.
    model : {"logistic", "ridge"}
        The fit's model.

    The result keeps a reference to ``X`` (not a copy) until :attr:`fit` has been built.
    """

    theta: F64
    method: Literal["newton", "retrain-warm"]
    exact_label: str
    steps: int
    residual: float
    tolerance: float
    bound: float
    mu: float
    seconds: float
    hessian_refreshes: int
    n_removed: int
    n_replaced: int
    model: str
    _objective: RetainedObjective = field(repr=False, compare=False)
    _row_ids: NDArray[np.int64] = field(repr=False, compare=False)
    _l2: float = field(repr=False, compare=False)
    _fit: ConvexFit | None = field(default=None, repr=False, compare=False)

    @property
    def fit(self) -> ConvexFit:
        """The unlearned model as an (unrecorded) :class:`~rowtrail.training.ConvexFit`.

        Built on first access: its Hessian is the exact Hessian of the retained objective at
        ``theta`` (one O(n d²) pass, not counted in ``seconds``), so that a later request can
        unlearn from it. Its samples are the retained ones in training order, a replaced
        sample keeping its row id and position; ``data_digest`` covers the new design.
        """
        if self._fit is None:
            obj = self._objective
            design, target = obj.design()
            raw = design[:, :-1] if obj.fit_intercept else design
            self._fit = ConvexFit(
                self.model, self.theta.copy(), obj.hessian(self.theta), self._l2,
                obj.fit_intercept, self.steps, self.residual, obj.objective(self.theta),
                _data_digest(np.ascontiguousarray(raw), target), self._row_ids.copy(),
            )  # fmt: skip
        return self._fit


def _check_positions(value: Any, n: int, name: str) -> NDArray[np.int64]:
    positions = np.asarray([] if value is None else value)
    ok = positions.ndim == 1 and (positions.size == 0 or positions.dtype.kind in "iu")
    out = positions.astype(np.int64) if ok else np.zeros(0, dtype=np.int64)
    if not ok or (out.size and (out.min() < 0 or out.max() >= n)):
        raise InvalidInputError(
            f"{name} of {_CALLER} must be a 1-d sequence of integer positions in [0, {n}); "
            f"got {value!r}. Pass positions into X in the fit's training order."
        )
    if np.unique(out).size != out.size:
        raise InvalidInputError(
            f"{name} of {_CALLER} must not repeat a position; got {value!r}. "
            "Pass each sample once."
        )
    return out


def _check_replace(
    replace: Any, n: int, n_features: int, model: str, y: F64
) -> tuple[NDArray[np.int64], F64, F64]:
    if replace is None:
        return np.zeros(0, dtype=np.int64), np.zeros((0, n_features)), np.zeros(0)
    if not isinstance(replace, tuple | list) or len(replace) not in (2, 3):
        raise InvalidInputError(
            f"replace of {_CALLER} must be (positions, X_new) or (positions, X_new, y_new); "
            f"got {type(replace).__name__}. Pass the samples kept with new features."
        )
    positions = _check_positions(replace[0], n, "replace positions")
    X_new = (  # noqa: N806 - X as in sklearn
        _check_X(replace[1], _CALLER) if positions.size else np.zeros((0, n_features))
    )
    if X_new.shape != (positions.size, n_features):
        raise InvalidInputError(
            f"X_new of {_CALLER} must have shape ({positions.size}, {n_features}), one row per "
            f"replaced position; got {X_new.shape}"
        )
    if len(replace) == 3 and replace[2] is not None:
        y_new = _check_y(replace[2], positions.size, _CALLER, binary=model == "logistic")
    else:
        y_new = y[positions].copy()
    return positions, X_new, y_new


def _check_data(
    fit: ConvexFit, X: ArrayLike, y: ArrayLike, check_data: bool  # noqa: N803
) -> tuple[F64, F64]:
    if not isinstance(fit, ConvexFit):
        raise InvalidInputError(
            f"fit of {_CALLER} must be a rowtrail.training.ConvexFit; got "
            f"{type(fit).__name__}. Fit with fit_logistic/fit_ridge or record_sklearn_fit."
        )
    # Shapes only: with check_data the digest proves X, y are the fit's (finite) data;
    # without it, a non-finite X shows up as a non-finite residual, which raises below.
    data = np.asarray(X, dtype=np.float64)
    n, dim = fit.row_ids.size, fit.theta.size - int(fit.fit_intercept)
    if data.shape != (n, dim):
        raise InvalidInputError(
            f"X of {_CALLER} must have shape ({n}, {dim}) like the fit's training data; got "
            f"{data.shape}. Pass the design matrix the model was fitted on."
        )
    target = _check_y(y, n, _CALLER, binary=fit.model == "logistic")
    if not check_data:
        return data, target
    digest = _data_digest(np.ascontiguousarray(data), target)
    if not hmac.compare_digest(digest, fit.data_digest):
        raise InvalidInputError(
            f"X, y of {_CALLER} must be the fit's training data (digest {fit.data_digest}); "
            f"got data with digest {digest}. Pass the exact design matrix and target the "
            "model was fitted on, in training order."
        )
    return data, target


def _check_options(tol: object, max_steps: object) -> None:
    if tol is not None and (
        not isinstance(tol, int | float) or isinstance(tol, bool) or not tol > 0
    ):
        raise InvalidInputError(
            f"tol of {_CALLER} must be a number > 0 or None; got {tol!r}. "
            "None uses 1e-6 times the number of retained samples."
        )
    if not isinstance(max_steps, int) or isinstance(max_steps, bool) or max_steps < 0:
        raise InvalidInputError(
            f"max_steps of {_CALLER} must be an integer >= 0; got {max_steps!r}. "
            "0 retrains warm-started at once."
        )


def _objective(
    fit: ConvexFit, X: F64, y: F64, remove: Any, replace: Any  # noqa: N803
) -> RetainedObjective:
    n = X.shape[0]
    removed_pos = _check_positions(remove, n, "remove")
    rep_pos, X_new, y_new = _check_replace(replace, n, X.shape[1], fit.model, y)  # noqa: N806
    if np.intersect1d(removed_pos, rep_pos).size:
        raise InvalidInputError(
            f"remove and replace of {_CALLER} must name different samples; both name "
            f"{np.intersect1d(removed_pos, rep_pos)[:5].tolist()}. A sample is either removed "
            "or kept with new features."
        )
    if removed_pos.size == 0 and rep_pos.size == 0:
        raise InvalidInputError(
            f"remove of {_CALLER} must name at least one sample (or replace must); got "
            f"{remove!r} and {replace!r}. Nothing would be unlearned."
        )
    if removed_pos.size == n:
        raise InvalidInputError(
            f"remove of {_CALLER} must leave at least one sample; got all {n}."
        )
    removed = np.zeros(n, dtype=bool)
    removed[removed_pos] = True
    pen = _penalty(fit.theta.size, fit.l2, fit.fit_intercept)
    return RetainedObjective(
        fit.model, X, y, removed, rep_pos, X_new, y_new, pen, fit.fit_intercept
    )


def _start_hessian(fit: ConvexFit, obj: RetainedObjective) -> tuple[F64, float]:
    """Exact Hessian of ``J'`` at the fitted θ, from the stored one (no pass over the data).

    Also returns a lower bound on its smallest eigenvalue without an eigendecomposition
    (Weyl: ``λ_min(H - A + B) ≥ λ_min(H) - tr(A)`` for positive semi-definite ``A``, ``B``),
    with ``λ_min(H)`` of the stored Hessian computed once per fit.
    """
    out = obj.X[obj.weights == 0]  # removed and replaced samples, with their old rows
    removed = obj.rows_hessian(out, obj.y[obj.weights == 0], fit.theta)
    hess = fit.hessian - removed
    if obj.X_new.shape[0]:
        hess = hess + obj.rows_hessian(obj.X_new, obj.y_new, fit.theta)
    lower = fit.min_eigenvalue() - float(np.trace(removed))
    return np.asarray((hess + hess.T) / 2, dtype=np.float64), lower


@dataclass
class _State:
    theta: F64
    grad: F64  # exact ∇J'(theta) when ``exact``, else the fitted θ's estimate
    hessian: F64
    reference: F64  # where ``hessian`` is exact
    exact: bool
    steps: int = 0
    refreshes: int = 0
    row_norm: float = -1.0  # max_i ‖x̃_i‖ over retained samples, computed on first use
    lam: float = math.nan  # λ_min(hessian), computed on first use
    lam_lower: float = math.nan  # a cheaper lower bound on it (Weyl), when known
    certificate: tuple[float, float] | None = None  # (bound, mu) at ``certified``
    certified: F64 | None = None

    @property
    def residual(self) -> float:
        return float(np.linalg.norm(self.grad))

    def refresh(self, obj: RetainedObjective, theta: F64) -> None:
        """Make the exact Hessian at ``theta`` the reference (O(n d²))."""
        self.hessian, self.reference, self.lam = obj.hessian(theta), theta, math.nan
        self.lam_lower = math.nan
        self.refreshes += 1

    def min_eigenvalue(self) -> float:
        if math.isnan(self.lam):
            self.lam = float(np.linalg.eigvalsh(self.hessian)[0])
        return self.lam


def _start_state(fit: ConvexFit, obj: RetainedObjective, tol: float) -> _State:
    """Start at the fitted θ with the exact Hessian of ``J'`` there.

    ``∇J'(θ) = ∇J(θ) - Σ_{out} ∇l_i + Σ_{new} ∇l_j``; when the fit's own gradient is
    negligible (``grad_norm <= tol / 10``) the first step uses the two sums alone and saves a
    pass over the data (the residual is always measured exactly after a step).
    """
    theta = fit.theta.copy()
    hess, lower = _start_hessian(fit, obj)
    if fit.grad_norm > tol / 10:
        state = _State(theta, obj.gradient(theta), hess, theta.copy(), exact=True)
    else:
        out = obj.weights == 0
        estimate = obj.rows_gradient(obj.X_new, obj.y_new, theta) - obj.rows_gradient(
            obj.X[out], obj.y[out], theta
        )
        state = _State(theta, estimate, hess, theta.copy(), exact=False)
    state.lam_lower = lower
    return state


def _newton(
    fit: ConvexFit, obj: RetainedObjective, state: _State, tol: float, max_steps: int
) -> None:
    """Chord/Newton steps until ``‖∇J'‖ <= tol`` and the bound is certified (≤ max_steps)."""
    while state.steps < max_steps:
        if state.exact and state.residual <= tol:
            state.certificate, state.certified = _bound(fit, obj, state), state.theta
            if math.isfinite(state.certificate[0]):
                return
        candidate = state.theta - np.linalg.solve(state.hessian, state.grad)
        grad = obj.gradient(candidate)
        state.steps += 1
        new_residual = float(np.linalg.norm(grad))
        if state.exact and not new_residual < state.residual:  # the chord went too far
            if np.array_equal(state.reference, state.theta):
                return  # even the exact Newton step did not help: leave it to the solver
            state.refresh(obj, state.theta)
            continue
        slow = obj.model == "logistic" and new_residual > _SLOW * state.residual
        state.theta, state.grad, state.exact = candidate, grad, True
        if slow and new_residual > tol:
            state.refresh(obj, candidate)
    if not state.exact:
        state.grad, state.exact = obj.gradient(state.theta), True


def retrain_design(
    model: str, design: F64, target: F64, penalty: F64, *, init: F64, tol: float | None = None
) -> tuple[F64, int]:
    """Retrain a convex model exactly on ``design`` (with its intercept column).

    Logistic: the fit's own damped Newton solver, warm-started at ``init`` (``tol`` on
    ``‖∇J‖ / n``, the solver's default when None); ridge: the closed form. Returns
    ``(θ, steps)``.
    """
    if model == "logistic":
        if tol is None:
            theta, n_iter = solve_logistic(design, target, penalty, init=init)
        else:
            theta, n_iter = solve_logistic(design, target, penalty, init=init, tol=tol)
        return np.asarray(theta, dtype=np.float64), int(n_iter)
    hess = design.T @ design + np.diag(penalty)
    return np.asarray(np.linalg.solve(hess, design.T @ target), dtype=np.float64), 1


def gradient_norm(model: str, design: F64, target: F64, penalty: F64, theta: F64) -> float:
    """Return ``‖∇J(θ)‖`` of the regularised objective on ``design`` (intercept column in)."""
    z = design @ theta
    residual = _sigmoid(z) - target if model == "logistic" else z - target
    return float(np.linalg.norm(design.T @ residual + penalty * theta))


def _retrain_warm(obj: RetainedObjective, state: _State, tol: float) -> None:
    """Retrain from ``state.theta`` with the fit's own solver (closed form for ridge)."""
    design, target = obj.design()
    theta, n_iter = retrain_design(
        obj.model, design, target, obj.penalty, init=state.theta, tol=tol / design.shape[0]
    )
    state.theta = theta
    state.steps += n_iter
    state.grad = obj.gradient(state.theta)
    state.refresh(obj, state.theta)


def _certify(residual: float, lam: float, shift: float, row_norm: float) -> tuple[float, float]:
    """Return ``(bound, mu)`` for ``‖g‖``, ``λ_ref``, ``M`` and ``R``, or ``(inf, 0)``."""
    if not lam > 0:
        return math.inf, 0.0
    radius = 4.0 * residual * math.exp(min(shift, 700.0)) / lam
    reach = row_norm * radius
    if not reach < math.log(2.0):
        return math.inf, 0.0
    mu = lam * math.exp(-(shift + reach))
    return residual / mu, mu


def _bound(fit: ConvexFit, obj: RetainedObjective, state: _State) -> tuple[float, float]:
    """Return ``(bound, mu)``: with the cheap eigenvalue bound first, else the exact one."""
    if math.isnan(state.lam) and state.lam_lower > 0:
        found = _bound_at(fit, obj, state, state.lam_lower)
        if math.isfinite(found[0]):
            return found
    return _bound_at(fit, obj, state, state.min_eigenvalue())


def _row_norm(fit: ConvexFit, obj: RetainedObjective) -> float:
    """``R``: the fit's own ``max ‖x̃_i‖`` (retained rows are a subset) and the new rows'."""
    if fit.max_row_norm is None:
        return obj.max_row_norm()
    extra = 1.0 if obj.fit_intercept else 0.0
    new = np.einsum("ij,ij->i", obj.X_new, obj.X_new) if obj.X_new.shape[0] else np.zeros(1)
    return max(fit.max_row_norm, float(np.sqrt(float(new.max()) + extra)))


def _bound_at(
    fit: ConvexFit, obj: RetainedObjective, state: _State, lam: float
) -> tuple[float, float]:
    """Return ``(bound, mu)`` as the module docstring derives them, for ``λ_ref ≥ lam``.

    ``M`` is first bounded by ``R ‖θ - θ_ref‖`` (no pass over the data) and computed exactly
    only when that is too loose to certify.
    """
    residual = state.residual
    if obj.model == "ridge":
        return (residual / lam, lam) if lam > 0 else (math.inf, 0.0)
    if state.row_norm < 0:
        state.row_norm = _row_norm(fit, obj)
    distance = float(np.linalg.norm(state.theta - state.reference))
    bound, mu = _certify(residual, lam, state.row_norm * distance, state.row_norm)
    if not math.isfinite(bound) and distance > 0:
        shift = obj.max_margin_change(state.theta, state.reference)
        bound, mu = _certify(residual, lam, shift, state.row_norm)
    if not fit.fit_intercept and residual / fit.l2 < bound:
        bound, mu = residual / fit.l2, fit.l2
    return bound, mu


def unlearn_convex(
    fit: ConvexFit,
    X: ArrayLike,  # noqa: N803 - X as in sklearn
    y: ArrayLike,
    *,
    remove: Sequence[int] | NDArray[np.integer[Any]],
    replace: tuple[Any, ...] | None = None,
    tol: float | None = None,
    max_steps: int = 10,
    check_data: bool = True,
) -> ConvexUnlearning:
    """Remove samples from a convex fit (and replace others) without retraining from scratch.

    Parameters
    ----------
    fit : ConvexFit
        A converged logistic or ridge fit with its Hessian (``fit_logistic``, ``fit_ridge``,
        ``record_sklearn_fit``).
    X, y : array_like
        The fit's training data, in its training order (checked against ``fit.data_digest``).
    remove : sequence of int
        Positions into ``X`` of the samples to remove.
    replace : tuple, optional
        ``(positions, X_new)`` or ``(positions, X_new, y_new)``: samples that stay, with the
        features (and label) recomputed without the erased rows.
    tol : float, optional
        Target for the retained-data gradient residual ``‖∇J'(θ)‖``; default
        ``1e-6 · n_retained``, the fit's own convergence criterion
        (:attr:`ConvexFit.converged`). Steps continue past it (within ``max_steps``) until
        the parameter bound can be certified, which for a logistic fit with an intercept
        needs ``‖∇J'‖`` of order ``λ_min / max_i ‖x̃_i‖``.
    max_steps : int, default 10
        Newton/chord steps before falling back to warm-started retraining (0: at once).
    check_data : bool, default True
        Hash ``X, y`` and compare with ``fit.data_digest`` (one SHA-256 pass over the data,
        often the largest single cost of a one-step removal). ``False`` checks shapes only,
        for a caller that has already verified the data against the ledger.

    Returns
    -------
    ConvexUnlearning
        ``theta``, ``method``, ``residual``, ``bound`` and the rest; ``.fit`` is the new model.

    Raises
    ------
    InvalidInputError
        If ``X, y`` are not the fit's data, positions are out of range, repeated or overlap,
        ``replace`` is malformed, or ``tol`` cannot be reached even by retraining.

    Examples
    --------
    >>> import numpy as np
    >>> from rowtrail.training import fit_logistic
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 3)); y = (X @ [1.0, -1.0, 0.5] + rng.normal(size=300) > 0)
    >>> fit = fit_logistic(X, y.astype(float), l2=1.0)
    >>> out = unlearn_convex(fit, X, y.astype(float), remove=[0, 5, 7])
    >>> out.method, out.residual <= out.tolerance, bool(np.isfinite(out.bound))
    ('newton', True, True)
    """
    start = time.perf_counter()
    _check_options(tol, max_steps)
    data, target = _check_data(fit, X, y, check_data)
    obj = _objective(fit, data, target, remove, replace)
    tolerance = float(tol) if tol is not None else 1e-6 * obj.n_samples
    with _numerics(
        _CALLER,
        "Pass the fit's own training data (check_data=True verifies it against the fit's "
        "digest). The model was not changed.",
    ):
        state = _start_state(fit, obj, tolerance)
        _newton(fit, obj, state, tolerance, max_steps)
        method: Literal["newton", "retrain-warm"] = "newton"
        if state.residual > tolerance:
            method = "retrain-warm"
            _retrain_warm(obj, state, tolerance)
        if state.residual > tolerance:
            raise InvalidInputError(
                f"tol of {_CALLER} must be reachable; warm-started retraining stopped at a "
                f"residual of {state.residual:.3g} > {tolerance:.3g}. Pass a larger tol. "
                "The model was not changed."
            )
        if not (np.isfinite(state.theta).all() and math.isfinite(state.residual)):
            raise InvalidInputError(
                f"X of {_CALLER} must be finite; unlearning reached a non-finite "
                f"{'residual' if np.isfinite(state.theta).all() else 'θ'}. Pass the fit's "
                "own (finite) training data. The model was not changed."
            )
        if state.certificate is None or state.certified is not state.theta:
            state.certificate = _bound(fit, obj, state)
        bound, mu = state.certificate
    return ConvexUnlearning(
        state.theta, method, EXACT_LABEL, state.steps, state.residual, tolerance, bound, mu,
        time.perf_counter() - start, state.refreshes, int(obj.removed.sum()),
        int(obj.replaced.size), fit.model, obj, fit.row_ids[~obj.removed], fit.l2,
    )  # fmt: skip
