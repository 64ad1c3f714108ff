"""Attribution scorers: exact influence, TRAK, TracInCP and gradient similarity.

Every scorer plays the one :class:`Scorer` role and is *linear* in the query: after ``fit``,
``scores(q) = query_matrix(q) @ train_matrix().T``, so one memory-mapped train-side matrix
serves batched top-k queries (:class:`~rowtrail.attribution.ScoreIndex`).

**Sign convention** (one for all scorers, tested by removal and retraining): a positive score
means the training sample *supports* the prediction. Removing the samples with the largest
positive scores and retraining lowers the margin of the predicted class (for regression: a
positive score means the sample pulled the predicted value up).

Notation: ``phi_i`` is the output-margin gradient of sample ``i`` (see
:mod:`rowtrail.attribution._features`), ``r_i`` its residual (``1 - p_i``; the loss gradient
is ``-r_i phi_i``) and ``c_i`` its curvature (``p_i (1 - p_i)``).

- Influence functions (Koh & Liang 2017, §2.1-2.2, eq. 2): with the sum-form objective
  ``sum_i loss_i + (l2/2)|theta|^2`` the Hessian is ``H = Phi^T diag(c) Phi + l2 I`` and
  deleting sample ``i`` moves the parameters by ``H^{-1} g_i`` to first order, so
  ``score(t, i) = phi_t^T H^{-1} phi_i r_i``. With ``leverage=True`` the Hessian of the
  retained data is used (Sherman-Morrison: divide by ``1 - c_i phi_i^T H^{-1} phi_i``), which is
  one exact Newton step of the leave-one-out problem.
- TRAK (Park et al. 2023, §3, eq. 16-17): the same formula on randomly projected features of
  a neural net's after-kernel, ``(Phi^T W Phi + lambda I)^{-1}`` with ``W = diag(p(1-p))`` in
  the weighted variant (``W = I`` otherwise), averaged over an ensemble of models
  (checkpoints or models trained on random subsets, §3.3).
- TracInCP (Pruthi et al. 2020, §3, eq. 4): ``sum_c lr_c phi_t^c . phi_i^c r_i^c``, the
  first-order change of the test margin from the SGD steps taken on sample ``i``.
- Gradient similarity: cosine of ``phi_t`` and ``r_i phi_i`` averaged over checkpoints (the cheap
  baseline TRAK §5 compares with).

**What to expect on neural networks** (issue 12 audit; ``benchmarks/bench_attribution.py``
measures it). TracInCP and gradient similarity are first-order, kernel-free scores: they leave
out the inverse kernel (how much other samples already explain) and the feedback of a removal
through later steps. On the Adult MLP (30 epochs of Adam) their classic LDS is ~0.2-0.3
against ~0.55 for TRAK on the same single model and ~0.8 for TRAK over an ensemble; none of
sign, learning-rate weighting, checkpoint count (5 or 30), projection dimension (128 or more
than the parameter count) or the margin target changes that. Two things do move it: the
cosine normalisation of gradient similarity costs ~0.1 on Adult and ~0.3 on a credit MLP
with 8% positives (the LDS sums scores, so the residual magnitudes it drops matter; the dot
product is TracInCP on one checkpoint), and Adam's preconditioner
``1/(sqrt(v)+eps)`` between the two gradients adds ~0.06-0.09 when features are scaled by it.
Their single-model LDS (this run minus 1% of its rows, same seed and order) is lower still,
because 30 epochs of Adam make that counterfactual non-additive over the dropped rows, which
bounds every linear score (the exact metagradient reaches only ~0.5 there). Where it is
additive (the same MLP trained 3 epochs) the metagradient reaches ~0.94 against ~0.37 for
TracInCP and gradient similarity and ~0.5 for TRAK; on a short CNN run TracInCP reaches ~0.4-0.5
on the single model and ~0 on the classic LDS: it describes the run, not the algorithm.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from rowtrail.attribution._checks import is_real
from rowtrail.attribution._features import GradientFeatures
from rowtrail.errors import InvalidInputError, StateError

__all__ = [
    "ExactInfluenceScorer",
    "GradientSimilarityScorer",
    "Scorer",
    "TRAKScorer",
    "TracInScorer",
]

_CHUNK = 1 << 16


@runtime_checkable
class Scorer(Protocol):
    """The scorer role: fitted on training features, linear in query features."""

    name: str

    def fit(self, train: Sequence[GradientFeatures]) -> Scorer:
        """Fit on one :class:`GradientFeatures` per model or checkpoint; return ``self``."""
        ...

    @property
    def n_samples(self) -> int:
        """Number of training samples scored."""
        ...

    def train_matrix(self) -> NDArray[np.float32]:
        """Return the ``(n, d)`` train-side matrix."""
        ...

    def query_matrix(self, queries: Sequence[GradientFeatures]) -> NDArray[np.float32]:
        """Return the ``(m, d)`` query-side matrix (one feature set per model/checkpoint)."""
        ...

    def scores(self, queries: Sequence[GradientFeatures]) -> NDArray[np.float32]:
        """Return the ``(m, n)`` scores; positive supports the prediction."""
        ...


@dataclass(frozen=True, eq=False)
class _Block:
    """One model's or checkpoint's share: train side, query transform, weight."""

    train: NDArray[np.float32]
    transform: NDArray[np.float64] | None
    weight: float
    normalize: bool = False


def _as_list(
    features: Sequence[GradientFeatures] | GradientFeatures, what: str, caller: str
) -> list[GradientFeatures]:
    items = [features] if isinstance(features, GradientFeatures) else list(features)
    if not items or not all(isinstance(f, GradientFeatures) for f in items):
        raise InvalidInputError(
            f"{what} of {caller} must be a non-empty sequence of GradientFeatures; got "
            f"{type(features).__name__}. Wrap arrays with rt.attribution.GradientFeatures."
        )
    return items


def _inverse(kernel: NDArray[np.float64], caller: str) -> NDArray[np.float64]:
    """Inverse of a symmetric positive definite matrix through its Cholesky factor."""
    try:
        lower = np.linalg.cholesky(kernel)
    except np.linalg.LinAlgError as exc:
        raise InvalidInputError(
            f"the kernel of {caller} must be positive definite; increase the ridge/l2 "
            "(damping) or reduce the projection dimension below the number of samples."
        ) from exc
    inv_lower = np.linalg.solve(lower, np.eye(kernel.shape[0]))
    return np.asarray(inv_lower.T @ inv_lower)


def _kernel(features: GradientFeatures, weights: NDArray[np.float64]) -> NDArray[np.float64]:
    """``Phi^T diag(weights) Phi`` accumulated in float64 over float32 chunks."""
    k = features.dim
    out = np.zeros((k, k))
    for start in range(0, features.n_samples, _CHUNK):
        phi = np.asarray(features.grads[start : start + _CHUNK], dtype=np.float64)
        out += phi.T @ (phi * weights[start : start + _CHUNK, None])
    return out


def _scaled(features: GradientFeatures, scale: NDArray[np.float64]) -> NDArray[np.float32]:
    out = np.empty((features.n_samples, features.dim), np.float32)
    for start in range(0, features.n_samples, _CHUNK):
        phi = np.asarray(features.grads[start : start + _CHUNK], dtype=np.float32)
        out[start : start + _CHUNK] = phi * scale[start : start + _CHUNK, None].astype(np.float32)
    return out


def _leverage(features: GradientFeatures, inverse: NDArray[np.float64]) -> NDArray[np.float64]:
    """``c_i phi_i^T H^{-1} phi_i`` per sample (the retained-Hessian correction)."""
    out = np.empty(features.n_samples)
    for start in range(0, features.n_samples, _CHUNK):
        phi = np.asarray(features.grads[start : start + _CHUNK], dtype=np.float64)
        out[start : start + _CHUNK] = np.einsum("ij,ij->i", phi @ inverse, phi)
    return out * features.curvature()


class _LinearScorer(abc.ABC):
    """Shared machinery: blocks of (train side, query transform, weight)."""

    name = "linear"

    def __init__(self) -> None:
        self._blocks: list[_Block] = []
        self._train: list[GradientFeatures] = []

    # -- fitting -----------------------------------------------------------------------------
    def _check_train(self, train: Sequence[GradientFeatures]) -> list[GradientFeatures]:
        items = _as_list(train, "train", f"{type(self).__name__}.fit")
        n = items[0].n_samples
        for position, f in enumerate(items):
            if f.n_samples != n:
                raise InvalidInputError(
                    f"train[{position}] of {type(self).__name__}.fit must have {n} samples like "
                    f"train[0]; got {f.n_samples}. Compute every checkpoint on the same samples."
                )
        return items

    @abc.abstractmethod
    def _build(self, item: GradientFeatures, n_items: int) -> _Block:
        """Return the train-side block of one feature set (each strategy defines it)."""

    def fit(self, train: Sequence[GradientFeatures]) -> _LinearScorer:
        """Fit on one :class:`GradientFeatures` per model or checkpoint; return ``self``."""
        items = self._check_train(train)
        self._blocks = [self._build(item, len(items)) for item in items]
        self._train = items
        return self

    # -- introspection -----------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not self._blocks:
            raise StateError(
                f"{type(self).__name__} is not fitted; call .fit(train_features) first."
            )

    @property
    def n_samples(self) -> int:
        """Number of training samples scored."""
        self._check_fitted()
        return int(self._blocks[0].train.shape[0])

    @property
    def row_ids(self) -> NDArray[np.int64] | None:
        """Packed source row id of each training sample, if the features carried them."""
        self._check_fitted()
        return self._train[0].row_ids

    @property
    def model_ids(self) -> list[str]:
        """Model/checkpoint label of each block, in fit order."""
        self._check_fitted()
        return [f.model_id for f in self._train]

    # -- scoring -----------------------------------------------------------------------------
    def train_matrix(self) -> NDArray[np.float32]:
        """Return the ``(n, d)`` train-side matrix (blocks side by side)."""
        self._check_fitted()
        if len(self._blocks) == 1:
            return self._blocks[0].train
        return np.hstack([b.train for b in self._blocks])

    def _query_block(self, block: _Block, item: GradientFeatures) -> NDArray[np.float32]:
        phi = np.asarray(item.grads, dtype=np.float64)
        if item.loss_gradients:  # -grad of the loss at the predicted label ∝ margin gradient
            phi = -phi
        if block.normalize:
            phi = phi / np.maximum(np.linalg.norm(phi, axis=1, keepdims=True), 1e-30)
        if block.transform is not None:
            phi = phi @ block.transform
        return (phi * block.weight).astype(np.float32)

    def _check_queries(self, queries: Sequence[GradientFeatures]) -> list[GradientFeatures]:
        self._check_fitted()
        caller = f"{type(self).__name__}.query_matrix"
        items = _as_list(queries, "queries", caller)
        if len(items) != len(self._blocks):
            raise InvalidInputError(
                f"queries of {caller} must hold one feature set per fitted model/checkpoint "
                f"({len(self._blocks)}); got {len(items)}. Featurize the queries with each model."
            )
        m = items[0].n_samples
        for position, (block, item) in enumerate(zip(self._blocks, items, strict=True)):
            if item.dim != block.train.shape[1] or item.n_samples != m:
                raise InvalidInputError(
                    f"queries[{position}] of {caller} must have shape ({m}, "
                    f"{block.train.shape[1]}); got {item.grads.shape!r}. Use the same projection."
                )
        return items

    def query_matrix(self, queries: Sequence[GradientFeatures]) -> NDArray[np.float32]:
        """Return the ``(m, d)`` query-side matrix matching :meth:`train_matrix`."""
        items = self._check_queries(queries)
        return np.hstack(
            [self._query_block(b, q) for b, q in zip(self._blocks, items, strict=True)]
        )

    def scores(self, queries: Sequence[GradientFeatures]) -> NDArray[np.float32]:
        """Return the ``(m, n)`` scores, block by block (no concatenated matrix is built)."""
        items = self._check_queries(queries)
        out = np.zeros((items[0].n_samples, self.n_samples), np.float32)
        for block, item in zip(self._blocks, items, strict=True):
            out += self._query_block(block, item) @ block.train.T
        return out


class ExactInfluenceScorer(_LinearScorer):
    """Exact influence for L2-regularised convex models (logistic or linear regression).

    Features are the *unprojected* output gradients (for a linear model, ``s_i x_i`` with
    ``s_i = +1`` for label 1 and ``-1`` for label 0; ``x_i`` for squared loss) at the fitted
    optimum; the Hessian is formed and inverted once (Cholesky) and cached. See Koh & Liang
    (2017), §2.2, and the module docstring for the formula and sign.

    Parameters
    ----------
    l2 : float or array of shape (p,)
        The model's regularisation strength in the sum-form objective
        ``sum_i loss_i + (l2/2)|theta|^2`` (scikit-learn: ``l2 = 1/C``); an array gives one
        strength per coefficient (0 for an unpenalised intercept).
    hessian : array of shape (p, p), optional
        The Hessian of the regularised objective at the optimum, when the fit recorded it
        (``rowtrail.training.ConvexFit.hessian``); ``l2`` is then ignored.
    leverage : bool, default True
        Use the retained-data Hessian (exact Newton step of leave-one-out) instead of the full
        one (the classic influence function).
    damping : float, default 0.0
        Extra ridge added to the Hessian.

    Examples
    --------
    >>> import numpy as np
    >>> from rowtrail.attribution import GradientFeatures
    >>> train = GradientFeatures(np.eye(3), p_correct=np.full(3, 0.5))
    >>> s = ExactInfluenceScorer(l2=1.0).fit([train])
    >>> s.scores([GradientFeatures(np.array([[1.0, 0, 0]]))]).round(3).tolist()
    [[0.5, 0.0, 0.0]]
    """

    name = "exact_influence"

    def __init__(
        self,
        *,
        l2: float | NDArray[np.float64] = 0.0,
        hessian: NDArray[np.float64] | None = None,
        leverage: bool = True,
        damping: float = 0.0,
    ) -> None:
        super().__init__()
        penalty = np.atleast_1d(np.asarray(l2, dtype=np.float64))
        if penalty.ndim != 1 or not np.all(np.isfinite(penalty) & (penalty >= 0)):
            raise InvalidInputError(
                f"l2 of ExactInfluenceScorer must be a finite float >= 0 (or one per coefficient);"
                f" got {l2!r}. Pass the model's L2 strength (1/C in scikit-learn)."
            )
        if not is_real(damping):
            raise InvalidInputError(
                f"damping of ExactInfluenceScorer must be a finite float >= 0; got {damping!r}."
            )
        self.l2 = penalty
        self.hessian = None if hessian is None else np.asarray(hessian, dtype=np.float64)
        self.leverage = leverage
        self.damping = float(damping)
        self.inverse_hessian_: NDArray[np.float64] | None = None

    @classmethod
    def from_convex_fit(
        cls,
        fit: Any,
        X: NDArray[Any],  # noqa: N803 - the design matrix is X by convention
        y: NDArray[Any],
        *,
        leverage: bool = True,
    ) -> ExactInfluenceScorer:
        """Build and fit from a ``rowtrail.training.ConvexFit`` and its training data.

        Reuses the Hessian the fit recorded; row ids come from ``fit.row_ids``.
        """
        from rowtrail.attribution._convex import convex_fit_features

        scorer = cls(hessian=fit.hessian, leverage=leverage)
        scorer.fit([convex_fit_features(fit, X, y)])
        return scorer

    def _build(self, item: GradientFeatures, n_items: int) -> _Block:
        if n_items != 1:
            raise InvalidInputError(
                f"train of ExactInfluenceScorer.fit must hold the features of one model; got "
                f"{n_items}. Exact influence is defined at a single optimum."
            )
        if self.hessian is not None:
            if self.hessian.shape != (item.dim, item.dim):
                raise InvalidInputError(
                    f"hessian of ExactInfluenceScorer must have shape ({item.dim}, {item.dim}) to "
                    f"match the features; got {self.hessian.shape!r}."
                )
            hessian = self.hessian.copy()
        else:
            hessian = _kernel(item, item.curvature())
            hessian[np.diag_indices_from(hessian)] += self.l2
        hessian[np.diag_indices_from(hessian)] += self.damping
        inverse = _inverse(hessian, "ExactInfluenceScorer")
        scale = item.residuals()
        if self.leverage:
            scale = scale / np.maximum(1.0 - _leverage(item, inverse), 1e-6)
        self.inverse_hessian_ = inverse
        return _Block(_scaled(item, scale), inverse, 1.0)


class TRAKScorer(_LinearScorer):
    """TRAK: after-kernel attribution with a ridge, ensembled over models (Park et al. 2023).

    Parameters
    ----------
    ridge : float, default 0.01
        Damping, relative to the kernel's mean diagonal: ``lambda = ridge * tr(K) / k``
        (decisive for quality: tune it with :func:`~rowtrail.attribution.evaluate_lds`).
    weighted : bool, default True
        Weight the kernel by ``p(1-p)`` (the Gauss-Newton form; better on near-separable data)
        instead of the paper's plain ``Phi^T Phi``.

    Examples
    --------
    >>> import numpy as np
    >>> from rowtrail.attribution import GradientFeatures
    >>> rng = np.random.default_rng(0)
    >>> models = [GradientFeatures(rng.normal(size=(50, 4)), p_correct=np.full(50, .8))
    ...           for _ in range(2)]
    >>> TRAKScorer().fit(models).train_matrix().shape
    (50, 8)
    """

    name = "trak"

    def __init__(self, *, ridge: float = 0.01, weighted: bool = True) -> None:
        super().__init__()
        if not is_real(ridge, 0.0, strict=True):
            raise InvalidInputError(
                f"ridge of TRAKScorer must be a finite float > 0; got {ridge!r}. TRAK needs a "
                "ridge; try 0.01 and tune it with evaluate_lds."
            )
        self.ridge = float(ridge)
        self.weighted = weighted

    def _build(self, item: GradientFeatures, n_items: int) -> _Block:
        if item.dim >= item.n_samples:
            raise InvalidInputError(
                f"the projection dimension of TRAKScorer.fit must be below the number of samples "
                f"({item.n_samples}); got {item.dim}. Project to fewer dimensions."
            )
        kernel = _kernel(item, item.curvature() if self.weighted else np.ones(item.n_samples))
        kernel[np.diag_indices_from(kernel)] += self.ridge * float(np.trace(kernel)) / item.dim
        inverse = _inverse(kernel, "TRAKScorer")
        return _Block(_scaled(item, item.residuals()), inverse, 1.0 / n_items)


class TracInScorer(_LinearScorer):
    """TracInCP: learning-rate-weighted gradient products summed over checkpoints.

    Follows Pruthi et al. (2020), §3.2 eq. 4, with output-margin gradients on the test side so
    that the score is the first-order change of the predicted margin from the steps on ``i``.

    Examples
    --------
    >>> import numpy as np
    >>> from rowtrail.attribution import GradientFeatures
    >>> ckpt = GradientFeatures(np.eye(2), p_correct=np.array([.5, .5]), lr=0.1)
    >>> TracInScorer().fit([ckpt]).scores([GradientFeatures(np.eye(2)[:1])]).tolist()
    [[0.05000000074505806, 0.0]]
    """

    name = "tracin"

    def _build(self, item: GradientFeatures, n_items: int) -> _Block:
        return _Block(_scaled(item, item.residuals()), None, item.lr)


class GradientSimilarityScorer(_LinearScorer):
    """Cosine similarity of query and (residual-signed) training gradients: the cheap baseline.

    Examples
    --------
    >>> import numpy as np
    >>> from rowtrail.attribution import GradientFeatures
    >>> s = GradientSimilarityScorer().fit([GradientFeatures(np.array([[2.0, 0], [0, -3]]))])
    >>> s.scores([GradientFeatures(np.array([[1.0, 0]]))]).tolist()
    [[1.0, 0.0]]
    """

    name = "grad_sim"

    def _build(self, item: GradientFeatures, n_items: int) -> _Block:
        r = item.residuals()
        norms = np.empty(item.n_samples)
        for start in range(0, item.n_samples, _CHUNK):
            phi = np.asarray(item.grads[start : start + _CHUNK], dtype=np.float64)
            norms[start : start + _CHUNK] = np.linalg.norm(phi, axis=1)
        scale = np.sign(r) / np.maximum(norms, 1e-30)
        return _Block(_scaled(item, scale), None, 1.0 / n_items, normalize=True)


SCORERS: dict[str, type[Any]] = {
    "exact_influence": ExactInfluenceScorer,
    "trak": TRAKScorer,
    "tracin": TracInScorer,
    "grad_sim": GradientSimilarityScorer,
}

Method = Literal["exact_influence", "trak", "tracin", "grad_sim"]
