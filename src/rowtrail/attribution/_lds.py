"""Quality of attribution scores: linear datamodeling score (LDS) and leave-one-out.

LDS (Park et al. 2023, §2, Definition 2.3; Ilyas et al. 2022): draw random subsets ``S_j``
holding a fraction of the training samples, retrain on each, and correlate (Spearman, per
test point) the actual output ``f(x; theta_{S_j})`` with the attribution-predicted output
``sum_{i in S_j} score(x, i)``; average over test points. The ground truth (subset masks and
retrained outputs) is costly, so it is cached in an ``.npz`` file and extended, never
recomputed, when more subsets are asked for with the same seed.

Leave-one-out compares each score with the actual change of the output when that one sample
is removed and the model retrained (Koh & Liang 2017, §4.1 Fig. 2).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rowtrail.attribution._checks import is_count, is_real
from rowtrail.errors import InvalidInputError

__all__ = ["LDSResult", "LOOResult", "datamodel_ground_truth", "evaluate_lds", "leave_one_out"]

Retrainer = Callable[[NDArray[np.bool_]], ArrayLike]


@dataclass(frozen=True, eq=False)
class LDSResult:
    """Outcome of :func:`evaluate_lds`.

    Attributes
    ----------
    lds : float
        Mean over test points of the Spearman correlation.
    per_query : ndarray of shape (m,)
    n_subsets : int
    fraction : float
    retrain_seconds : float
        Time spent retraining in this call (0 when everything came from the cache).
    n_cached : int
        Subsets read from the cache.
    """

    lds: float
    per_query: NDArray[np.float64]
    n_subsets: int
    fraction: float
    retrain_seconds: float
    n_cached: int


@dataclass(frozen=True, eq=False)
class LOOResult:
    """Outcome of :func:`leave_one_out`: actual effects and their agreement with scores.

    ``actual[j, t]`` is the drop of test output ``j`` when sample ``indices[t]`` is removed
    (positive = the sample supported it, the same sign as a score).
    """

    indices: NDArray[np.int64]
    actual: NDArray[np.float64]
    pearson: float | None
    spearman: float | None


def _ranks(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """Ranks along the last axis with ties averaged."""
    out = np.empty_like(values, dtype=np.float64)
    for row, source in zip(
        out.reshape(-1, values.shape[-1]), values.reshape(-1, values.shape[-1]), strict=True
    ):
        order = np.argsort(source, kind="stable")
        ranks = np.empty(order.size)
        ranks[order] = np.arange(order.size, dtype=np.float64)
        _, inverse, counts = np.unique(source, return_inverse=True, return_counts=True)
        sums = np.bincount(inverse, ranks)
        row[:] = (sums / counts)[inverse]
    return out


def _pearson_rows(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    denom = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (a * b).sum(axis=1) / np.where(denom > 0, denom, 1), np.nan)


def _subset_mask(n: int, fraction: float, seed: int, j: int) -> NDArray[np.bool_]:
    rng = np.random.default_rng([seed, j])
    mask = np.zeros(n, dtype=bool)
    mask[rng.choice(n, size=max(1, round(fraction * n)), replace=False)] = True
    return mask


def _check_common(n: int, n_subsets: int, fraction: float, caller: str) -> None:
    if not is_count(n_subsets, 2):
        raise InvalidInputError(f"n_subsets of {caller} must be an int >= 2; got {n_subsets!r}.")
    if not is_real(fraction, 0.0, strict=True, high=1.0):
        raise InvalidInputError(
            f"fraction of {caller} must be a float in (0, 1); got {fraction!r}. LDS uses 0.5."
        )
    if n < 2:
        raise InvalidInputError(f"the number of training samples of {caller} must be >= 2.")


def datamodel_ground_truth(
    retrain: Retrainer,
    n_samples: int,
    *,
    n_subsets: int = 50,
    fraction: float = 0.5,
    seed: int = 0,
    cache: str | Path | None = None,
) -> tuple[NDArray[np.bool_], NDArray[np.float64], int, float]:
    """Return ``(masks (S, n), outputs (S, m), n_cached, seconds)`` of retrained subsets.

    Subset ``j`` is drawn from ``default_rng([seed, j])``, so a cache written with the same
    ``n_samples``, ``fraction`` and ``seed`` is reused and extended.
    """
    _check_common(n_samples, n_subsets, fraction, "datamodel_ground_truth")
    outputs: list[NDArray[np.float64]] = []
    path = None if cache is None else Path(cache)
    if path is not None and path.exists():
        with np.load(path) as stored:
            same = (
                int(stored["n_samples"]) == n_samples
                and int(stored["seed"]) == seed
                and float(stored["fraction"]) == float(fraction)
            )
            if same:
                outputs = list(np.asarray(stored["outputs"], dtype=np.float64)[:n_subsets])
    n_cached = len(outputs)
    started = time.perf_counter()
    for j in range(n_cached, n_subsets):
        outputs.append(
            np.asarray(
                retrain(_subset_mask(n_samples, fraction, seed, j)), dtype=np.float64
            ).reshape(-1)
        )
    seconds = time.perf_counter() - started
    out = np.stack(outputs)
    if path is not None and n_cached < n_subsets:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, outputs=out, n_samples=n_samples, seed=seed, fraction=float(fraction))
    masks = np.stack([_subset_mask(n_samples, fraction, seed, j) for j in range(n_subsets)])
    return masks, out, n_cached, seconds


def evaluate_lds(
    scores: ArrayLike,
    retrain: Retrainer,
    *,
    n_subsets: int = 50,
    fraction: float = 0.5,
    seed: int = 0,
    cache: str | Path | None = None,
) -> LDSResult:
    """Linear datamodeling score of attribution ``scores`` against retrained models.

    Parameters
    ----------
    scores : array of shape (m, n)
        Scores of ``m`` test points over ``n`` training samples (positive supports).
    retrain : callable
        ``retrain(mask)`` trains on the samples where the boolean ``mask`` is true and returns
        the ``m`` test outputs (the margin of each test point's predicted class), e.g.
        :class:`~rowtrail.attribution.LinearRetrainer`.
    n_subsets : int, default 50
        Retrained subsets (the reference protocol uses 200).
    fraction : float, default 0.5
        Share of the training samples in each subset.
    seed : int, default 0
        Subset ``j`` is drawn from ``default_rng([seed, j])``.
    cache : str or Path, optional
        ``.npz`` file holding the retrained outputs; reused and extended across calls.

    Examples
    --------
    >>> import numpy as np
    >>> from rowtrail.attribution import LinearRetrainer
    >>> rng = np.random.default_rng(0)
    >>> X, w = rng.normal(size=(40, 3)), np.array([1.0, -2.0, 0.5])
    >>> r = LinearRetrainer(X, X @ w, X[:2], l2=1.0, loss="squared")
    >>> evaluate_lds(rng.normal(size=(2, 40)), r, n_subsets=5).n_subsets
    5
    """
    s = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    masks, outputs, n_cached, seconds = datamodel_ground_truth(
        retrain, s.shape[1], n_subsets=n_subsets, fraction=fraction, seed=seed, cache=cache
    )
    if outputs.shape[1] != s.shape[0]:
        raise InvalidInputError(
            f"scores of evaluate_lds must have one row per test output ({outputs.shape[1]}); "
            f"got {s.shape[0]}. Score the same test points the retrainer evaluates."
        )
    predicted = s @ masks.T.astype(np.float64)  # (m, S)
    per_query = _pearson_rows(_ranks(predicted), _ranks(outputs.T))
    return LDSResult(
        float(np.nanmean(per_query)), per_query, n_subsets, float(fraction), seconds, n_cached
    )


def leave_one_out(
    retrain: Retrainer,
    n_samples: int,
    indices: Sequence[int] | NDArray[np.int64],
    *,
    scores: ArrayLike | None = None,
) -> LOOResult:
    """Retrain without each of ``indices`` and return the actual output drops.

    With ``scores`` of shape ``(m, n)``, also report the Pearson and Spearman correlation of
    ``scores[:, indices]`` with the actual drops (pooled over test points).
    """
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if idx.size == 0 or idx.min() < 0 or idx.max() >= n_samples:
        raise InvalidInputError(
            f"indices of leave_one_out must be non-empty positions in [0, {n_samples}); got "
            f"{np.asarray(indices).tolist()!r}."
        )
    full = np.asarray(retrain(np.ones(n_samples, dtype=bool)), dtype=np.float64).reshape(-1)
    drops = []
    for i in idx:
        mask = np.ones(n_samples, dtype=bool)
        mask[i] = False
        drops.append(full - np.asarray(retrain(mask), dtype=np.float64).reshape(-1))
    actual = np.stack(drops, axis=1)
    pearson = spearman = None
    if scores is not None:
        chosen = np.atleast_2d(np.asarray(scores, dtype=np.float64))[:, idx].reshape(1, -1)
        flat = actual.reshape(1, -1)
        pearson = float(_pearson_rows(chosen, flat)[0])
        spearman = float(_pearson_rows(_ranks(chosen), _ranks(flat))[0])
    return LOOResult(idx, actual, pearson, spearman)
