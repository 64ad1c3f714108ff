"""Verification of unlearning against a model retrained without the forget set (DESIGN §6).

:func:`compare_with_retraining` puts three models side by side: the original, the unlearned
and the one retrained from scratch without the forget set. It is model-agnostic: each model is
a :class:`ModelView` (a callable for ``p(y=1|x)``, optionally exact per-sample losses and the
parameter vector), so convex fits, MLPs and SISA ensembles are judged the same way.

Figures (``L_F`` is the mean per-sample loss over the forget set ``F``):

* **parameter distance** ``‖θ_u - θ_r‖`` and **parameter residual**
  ``‖θ_u - θ_r‖ / ‖θ_o - θ_r‖`` (when all three models give parameters);
* **prediction agreement**: the fraction of test points whose predicted label
  (``p >= 0.5``) is the same for the unlearned and the retrained model;
* **forget-set loss gap closed** ``100 · (L_F(θ_u) - L_F(θ_o)) / (L_F(θ_r) - L_F(θ_o))`` %:
  100% matches retraining, less is under-unlearning, more is *overshoot* (the forget set
  looks less like training data than if it had never been seen, which makes the erased
  people identifiable). When the denominator is negligible
  (``|L_F(θ_r) - L_F(θ_o)| <= 1e-9 · max(1, |L_F(θ_o)|)``: removing ``F`` did not change its
  loss) the ratio is meaningless: it is reported as undefined (``gap_closed is None``) and
  the parameter residual (or, without parameters, nothing) judges instead;
* **test accuracy** of the original, unlearned and retrained models;
* **membership-inference AUC** of a loss-threshold attack (Yeom et al. 2018): the score
  ``-loss`` separates the forget set (labelled members) from a same-size sample of the
  held-out non-members (the test set unless ``nonmembers`` is given; drawn with ``seed``,
  the larger side subsampled when the other is smaller), AUC by the Mann-Whitney statistic
  with ties counted half. It is computed for the unlearned and the retrained model on the same
  samples; the figure judged is their difference (for the retrained model ``F`` are
  non-members, so its AUC is what "never seen" looks like; with one forget sample the AUC is
  0, 0.5 or 1, and only the difference is informative).

Pass criteria (keyword arguments): gap closed within ``100 ± gap_tolerance`` % (3), parameter
residual ``<= max_parameter_residual`` (0.01), agreement ``>= min_agreement`` (0.999) and
``|AUC_u - AUC_r| <= mia_tolerance`` (0.02). :func:`verify_unlearning` raises
:class:`~rowtrail.errors.VerificationError` listing every failure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rowtrail.errors import InvalidInputError, VerificationError

__all__ = [
    "FigureCheck",
    "ModelView",
    "UnlearningVerification",
    "compare_with_retraining",
    "compute_auc",
    "figure_checks",
    "verify_unlearning",
]

F64 = NDArray[np.float64]
Proba = Callable[[F64], ArrayLike]
Loss = Callable[[F64, F64], ArrayLike]
_CALLER = "compare_with_retraining"
_GAP_ATOL = 1e-9


def _log_loss(p: F64, y: F64) -> F64:
    tiny = np.finfo(np.float64).tiny
    return np.asarray(
        -(y * np.log(np.maximum(p, tiny)) + (1.0 - y) * np.log(np.maximum(1.0 - p, tiny))),
        dtype=np.float64,
    )


@dataclass(frozen=True)
class ModelView:
    """What verification needs of one binary classifier.

    Attributes
    ----------
    proba : callable
        ``proba(X) -> p(y=1|x)`` for each row of ``X``.
    loss : callable, optional
        ``loss(X, y) -> per-sample loss``; default the log loss of ``proba`` (pass an exact one
        when probabilities round to 0 or 1).
    params : array_like, optional
        The model's parameter vector, for the parameter distance and residual.
    """

    proba: Proba
    loss: Loss | None = None
    params: ArrayLike | None = None

    @classmethod
    def from_linear(cls, theta: ArrayLike, *, fit_intercept: bool = True) -> ModelView:
        """View a logistic model ``θ = [w, b]`` (``[w]`` without intercept) with exact losses.

        Examples
        --------
        >>> import numpy as np
        >>> view = ModelView.from_linear([1.0, 0.0])
        >>> float(np.asarray(view.proba(np.zeros((1, 1))))[0])
        0.5
        """
        vec = np.asarray(theta, dtype=np.float64).reshape(-1)

        def margins(X: F64) -> F64:  # noqa: N803 - X as in sklearn
            data = np.asarray(X, dtype=np.float64)
            if fit_intercept:
                return np.asarray(data @ vec[:-1] + vec[-1], dtype=np.float64)
            return np.asarray(data @ vec, dtype=np.float64)

        def proba(X: F64) -> F64:  # noqa: N803
            return np.asarray(np.exp(-np.logaddexp(0.0, -margins(X))), dtype=np.float64)

        def loss(X: F64, y: F64) -> F64:  # noqa: N803
            z = margins(X)
            return np.asarray(np.logaddexp(0.0, z) - np.asarray(y) * z, dtype=np.float64)

        return cls(proba, loss, vec)

    def losses(self, X: F64, y: F64) -> F64:  # noqa: N803
        """Return the per-sample losses on ``(X, y)``."""
        if self.loss is not None:
            return np.asarray(self.loss(X, y), dtype=np.float64).reshape(-1)
        return _log_loss(self.probabilities(X), y)

    def probabilities(self, X: F64) -> F64:  # noqa: N803
        """Return ``p(y=1|x)`` for each row."""
        return np.asarray(self.proba(X), dtype=np.float64).reshape(-1)


@dataclass(frozen=True)
class UnlearningVerification:
    """The figures of :func:`compare_with_retraining`, whether they pass, and why not.

    Attributes
    ----------
    parameter_distance, original_distance : float or None
        ``‖θ_u - θ_r‖`` and ``‖θ_o - θ_r‖`` (None without parameters).
    parameter_residual : float or None
        Their ratio (None without parameters or when ``θ_o == θ_r``).
    prediction_agreement : float
        Fraction of test labels on which unlearned and retrained models agree.
    forget_loss_original, forget_loss_unlearned, forget_loss_retrained : float
        Mean forget-set loss of each model.
    gap_closed : float or None
        Percent of the retrained forget-loss change reproduced; None when undefined.
    test_accuracy_original, test_accuracy_unlearned, test_accuracy_retrained : float
        Test accuracy of each model.
    mia_auc_unlearned, mia_auc_retrained, mia_auc_difference : float
        Loss-threshold membership AUC (forget set vs non-members) and ``AUC_u - AUC_r``.
    n_forget, n_nonmembers : int
        Sample sizes behind the membership AUC.
    passed : bool
        True when ``failures`` is empty.
    failures : tuple of str
        One sentence per failed criterion.
    """

    parameter_distance: float | None
    original_distance: float | None
    parameter_residual: float | None
    prediction_agreement: float
    forget_loss_original: float
    forget_loss_unlearned: float
    forget_loss_retrained: float
    gap_closed: float | None
    test_accuracy_original: float
    test_accuracy_unlearned: float
    test_accuracy_retrained: float
    mia_auc_unlearned: float
    mia_auc_retrained: float
    mia_auc_difference: float
    n_forget: int
    n_nonmembers: int
    passed: bool
    failures: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        """Return the figures as a JSON-ready dict (``failures`` as a list)."""
        out = dict(vars(self))
        out["failures"] = list(self.failures)
        return out


def compute_auc(members: ArrayLike, nonmembers: ArrayLike) -> float:
    """Return ``P(score_member > score_nonmember)`` with ties counted half (Mann-Whitney U).

    Examples
    --------
    >>> compute_auc([3.0, 2.0], [1.0, 2.0])
    0.875
    """
    pos = np.asarray(members, dtype=np.float64).reshape(-1)
    neg = np.asarray(nonmembers, dtype=np.float64).reshape(-1)
    if pos.size == 0 or neg.size == 0:
        raise InvalidInputError(
            f"members and nonmembers of compute_auc must both be non-empty; got {pos.size} "
            f"and {neg.size} scores"
        )
    scores = np.concatenate([pos, neg])
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(scores.size)
    sorted_scores = scores[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_scores)) + 1]
    ends = np.r_[starts[1:], scores.size]
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):  # average rank of each tie
        ranks[order[a:b]] = (a + b + 1) / 2.0
    u = ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2.0
    return float(u / (pos.size * neg.size))


def _check_xy(pair: Any, name: str) -> tuple[F64, F64]:
    if not isinstance(pair, tuple | list) or len(pair) != 2:
        raise InvalidInputError(
            f"{name} of {_CALLER} must be a pair (X, y); got {type(pair).__name__}"
        )
    X, y = np.asarray(pair[0], dtype=np.float64), np.asarray(pair[1], dtype=np.float64)  # noqa: N806
    if X.ndim != 2 or X.shape[0] == 0 or y.shape != (X.shape[0],):
        raise InvalidInputError(
            f"{name} of {_CALLER} must be (X, y) with X of shape (n >= 1, d) and y of shape "
            f"(n,); got {X.shape} and {y.shape}"
        )
    return X, y


def _check_view(view: Any, name: str) -> ModelView:
    if not isinstance(view, ModelView):
        raise InvalidInputError(
            f"{name} of {_CALLER} must be a ModelView; got {type(view).__name__}. Wrap the "
            "model: ModelView(proba=..., loss=..., params=...) or ModelView.from_linear(theta)."
        )
    return view


def _membership_samples(
    n_forget: int, n_pool: int, seed: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Return indices into the forget set and the non-member pool, the same size on both sides."""
    rng = np.random.default_rng(seed)
    size = min(n_forget, n_pool)
    forget = np.arange(n_forget) if size == n_forget else np.sort(rng.choice(n_forget, size, False))
    pool = np.sort(rng.choice(n_pool, size, replace=False))
    return forget.astype(np.int64), pool.astype(np.int64)


@dataclass(frozen=True)
class _Thresholds:
    gap: float
    residual: float
    agreement: float
    mia: float


@dataclass(frozen=True)
class FigureCheck:
    """One verification figure, its criterion in words, and whether it passed."""

    name: str
    value: float
    passed: bool
    criterion: str
    failure: str = ""


def figure_checks(
    figures: Mapping[str, Any],
    *,
    gap_tolerance: float = 3.0,
    max_parameter_residual: float = 0.01,
    min_agreement: float = 0.999,
    mia_tolerance: float = 0.02,
) -> list[FigureCheck]:
    """Return the judged figures of a comparison (``UnlearningVerification.as_dict()``).

    The defaults are :func:`compare_with_retraining`'s; a figure that is undefined (the gap
    when retraining did not move the forget loss, the residual without parameters) is left
    out.
    """
    limits = _Thresholds(gap_tolerance, max_parameter_residual, min_agreement, mia_tolerance)
    checks = []
    gap, residual = figures.get("gap_closed"), figures.get("parameter_residual")
    if gap is not None:
        if gap > 100.0 + limits.gap:
            failure = (
                f"forget-set loss gap closed is {gap:.2f}%, more than 100 + {limits.gap:g}%: "
                "overshoot (the forget set is further from training data than after retraining)"
            )
        elif gap < 100.0 - limits.gap:
            failure = (
                f"forget-set loss gap closed is {gap:.2f}%, less than 100 - {limits.gap:g}%: "
                "under-unlearning"
            )
        else:
            failure = ""
        checks.append(
            FigureCheck("gap_closed_pct", float(gap), not failure, f"100 ± {limits.gap:g}", failure)
        )
    if residual is not None:
        failure = (
            f"parameter residual ‖θ_u - θ_r‖ / ‖θ_o - θ_r‖ is {residual:.4g}, more than "
            f"{limits.residual:g}"
            if residual > limits.residual
            else ""
        )
        checks.append(
            FigureCheck(
                "parameter_residual", float(residual), not failure, f"<= {limits.residual:g}",
                failure,
            )
        )
    agreement = float(figures["prediction_agreement"])
    failure = (
        f"prediction agreement with the retrained model is {agreement:.4%}, less than "
        f"{limits.agreement:.2%}"
        if agreement < limits.agreement
        else ""
    )
    checks.append(
        FigureCheck(
            "prediction_agreement", agreement, not failure, f">= {limits.agreement:g}", failure
        )
    )
    mia = float(figures["mia_auc_difference"])
    failure = (
        f"membership-inference AUC differs from the retrained model's by {mia:+.4f}, more "
        f"than ±{limits.mia:g}"
        if abs(mia) > limits.mia
        else ""
    )
    checks.append(
        FigureCheck("mia_auc_difference", mia, not failure, f"within ± {limits.mia:g}", failure)
    )
    return checks


def _failures(figures: dict[str, Any], limits: _Thresholds) -> list[str]:
    checks = figure_checks(
        figures,
        gap_tolerance=limits.gap,
        max_parameter_residual=limits.residual,
        min_agreement=limits.agreement,
        mia_tolerance=limits.mia,
    )
    failures = [c.failure for c in checks if not c.passed]
    if (
        figures["gap_closed"] is None
        and figures["parameter_residual"] is None
        and figures["parameter_distance"] is None
    ):
        failures.insert(
            0,
            "forget-set loss gap closed is undefined (retraining did not change the forget "
            "loss) and no parameters were given to judge by instead",
        )
    return failures


def _parameter_figures(views: tuple[ModelView, ...]) -> dict[str, float | None]:
    if any(v.params is None for v in views):
        return {"parameter_distance": None, "original_distance": None, "parameter_residual": None}
    original, unlearned, retrained = (
        np.asarray(v.params, dtype=np.float64).reshape(-1) for v in views
    )
    if not original.shape == unlearned.shape == retrained.shape:
        raise InvalidInputError(
            f"params of {_CALLER}'s models must have one shape; got {original.shape}, "
            f"{unlearned.shape} and {retrained.shape}"
        )
    distance = float(np.linalg.norm(unlearned - retrained))
    base = float(np.linalg.norm(original - retrained))
    return {
        "parameter_distance": distance,
        "original_distance": base,
        "parameter_residual": distance / base if base > 0 else None,
    }


def compare_with_retraining(
    original: ModelView,
    unlearned: ModelView,
    retrained: ModelView,
    *,
    forget: tuple[ArrayLike, ArrayLike],
    test: tuple[ArrayLike, ArrayLike],
    nonmembers: tuple[ArrayLike, ArrayLike] | None = None,
    seed: int = 0,
    gap_tolerance: float = 3.0,
    max_parameter_residual: float = 0.01,
    min_agreement: float = 0.999,
    mia_tolerance: float = 0.02,
) -> UnlearningVerification:
    """Compare an unlearned binary classifier with the original and the retrained one.

    Parameters
    ----------
    original, unlearned, retrained : ModelView
        The model before unlearning, after it, and retrained from scratch without ``forget``.
    forget : (X, y)
        The forget set (the samples removed; replaced samples are not in it).
    test : (X, y)
        Held-out data: prediction agreement, test accuracy, and the default non-member pool.
    nonmembers : (X, y), optional
        Non-member pool for the membership AUC (default ``test``).
    seed : int
        Seed of the non-member sample.
    gap_tolerance, max_parameter_residual, min_agreement, mia_tolerance
        Pass criteria; see the module docstring.

    Returns
    -------
    UnlearningVerification
        Figures, ``passed`` and ``failures``; :func:`verify_unlearning` raises on failure.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(40, 2)); y = (X[:, 0] > 0).astype(float)
    >>> o, r = ModelView.from_linear([1.0, 0.0, 0.0]), ModelView.from_linear([0.9, 0.0, 0.0])
    >>> v = compare_with_retraining(o, r, r, forget=(X[:5], y[:5]), test=(X[5:], y[5:]))
    >>> v.passed, v.gap_closed, v.parameter_residual
    (True, 100.0, 0.0)
    """
    named = (("original", original), ("unlearned", unlearned), ("retrained", retrained))
    views = tuple(_check_view(view, name) for name, view in named)
    Xf, yf = _check_xy(forget, "forget")  # noqa: N806
    Xt, yt = _check_xy(test, "test")  # noqa: N806
    Xn, yn = (Xt, yt) if nonmembers is None else _check_xy(nonmembers, "nonmembers")  # noqa: N806
    parameters = _parameter_figures(views)
    forget_losses = [v.losses(Xf, yf) for v in views]
    lo, lu, lr = (float(np.mean(loss)) for loss in forget_losses)
    denominator = lr - lo
    gap = None
    if abs(denominator) > _GAP_ATOL * max(1.0, abs(lo)):
        gap = 100.0 * (lu - lo) / denominator
    labels = [(v.probabilities(Xt) >= 0.5).astype(np.float64) for v in views]
    idx_f, idx_n = _membership_samples(yf.size, yn.size, seed)
    auc = [
        compute_auc(-forget_losses[k][idx_f], -views[k].losses(Xn[idx_n], yn[idx_n]))
        for k in (1, 2)
    ]
    figures: dict[str, Any] = {
        **parameters,
        "prediction_agreement": float(np.mean(labels[1] == labels[2])),
        "forget_loss_original": lo,
        "forget_loss_unlearned": lu,
        "forget_loss_retrained": lr,
        "gap_closed": gap,
        "test_accuracy_original": float(np.mean(labels[0] == yt)),
        "test_accuracy_unlearned": float(np.mean(labels[1] == yt)),
        "test_accuracy_retrained": float(np.mean(labels[2] == yt)),
        "mia_auc_unlearned": auc[0],
        "mia_auc_retrained": auc[1],
        "mia_auc_difference": auc[0] - auc[1],
        "n_forget": int(idx_f.size),
        "n_nonmembers": int(idx_n.size),
    }
    limits = _Thresholds(gap_tolerance, max_parameter_residual, min_agreement, mia_tolerance)
    failures = tuple(_failures(figures, limits))
    return UnlearningVerification(**figures, passed=not failures, failures=failures)


def verify_unlearning(verification: UnlearningVerification) -> None:
    """Raise :class:`~rowtrail.errors.VerificationError` unless ``verification.passed``.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(40, 2)); y = (X[:, 0] > 0).astype(float)
    >>> o, r = ModelView.from_linear([1.0, 0.0, 0.0]), ModelView.from_linear([0.5, 0.0, 0.0])
    >>> over = ModelView.from_linear([-0.5, 0.0, 0.0])
    >>> v = compare_with_retraining(o, over, r, forget=(X[:5], y[:5]), test=(X[5:], y[5:]))
    >>> verify_unlearning(v)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    rowtrail.errors.VerificationError: unlearning failed verification against retraining: ...
    """
    if not isinstance(verification, UnlearningVerification):
        raise InvalidInputError(
            f"verification of verify_unlearning must be an UnlearningVerification; got "
            f"{type(verification).__name__}. Pass the result of compare_with_retraining."
        )
    if verification.failures:
        raise VerificationError(
            "unlearning failed verification against retraining: "
            + "; ".join(verification.failures)
        )
