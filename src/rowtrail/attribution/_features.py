"""Gradient features as the attribution layer reads them, and their memory-mapped form.

Owns :class:`GradientFeatures` (one model's or checkpoint's per-sample *output-gradient*
features with the row ids they belong to), the :class:`FeatureSource` protocol that a training
feature store satisfies (a thin adapter away from :class:`GradientFeatures`), and the on-disk
layout: raw features are ``float16`` ``.npy`` files opened with ``mmap_mode="r"``; every
computation casts to ``float32`` (NumPy's float16 arithmetic is 5-60x slower).

Conventions (shared by every scorer, see :mod:`rowtrail.attribution._scorers`):

- ``grads[i]`` is the gradient, projected or not, of the *output margin* of sample ``i``: the
  logit of the sample's own label for training samples (``f = log p/(1-p)``, TRAK §3.2 of Park
  et al. 2023), the logit of the *predicted* class for queries, the raw output for regression.
- ``p_correct[i]`` is the probability the model gives the sample's label; ``1 - p`` is the
  residual that turns an output gradient into a loss gradient and ``p(1-p)`` the curvature.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rowtrail.attribution._checks import is_real
from rowtrail.errors import FileIntegrityError, InvalidInputError
from rowtrail.training._bound import load_json_file, load_npy_file

__all__ = ["FeatureSource", "GradientFeatures", "load_feature_matrix", "save_feature_matrix"]


@runtime_checkable
class FeatureSource(Protocol):
    """What a training feature store exposes: a feature matrix and its row ids.

    ``features`` has shape ``(n, k)`` (usually a float16 memmap) and ``row_ids`` shape
    ``(n,)`` (packed source row ids, see :mod:`rowtrail.ids`).
    """

    @property
    def features(self) -> NDArray[Any]:
        """Per-sample gradient features, shape ``(n, k)``."""
        ...

    @property
    def row_ids(self) -> NDArray[np.int64]:
        """Packed row id of each sample, shape ``(n,)``."""
        ...


def _as_2d(grads: ArrayLike, caller: str) -> NDArray[Any]:
    array = grads if isinstance(grads, np.ndarray) else np.asarray(grads)
    if array.ndim != 2 or array.shape[1] == 0:
        raise InvalidInputError(
            f"grads of {caller} must be a 2-D array (n_samples, dim) with dim >= 1; got shape "
            f"{array.shape!r}. Pass one row per sample."
        )
    if not np.issubdtype(array.dtype, np.floating):
        raise InvalidInputError(
            f"grads of {caller} must hold floats; got dtype {array.dtype!s}. Cast with "
            ".astype(np.float32)."
        )
    return array


@dataclass(frozen=True, eq=False)
class GradientFeatures:
    """Per-sample output-gradient features of one model or checkpoint.

    Parameters
    ----------
    grads : array of shape (n, k)
        Gradients of each sample's output margin (see the module docstring); may be a float16
        memmap, read in float32 chunks.
    p_correct : array of shape (n,), optional
        Probability of each sample's label under the model (training side). ``None`` means
        "unknown": residual weights become 1 and the kernel is unweighted.
    row_ids : array of int64, shape (n,), optional
        Packed source row id of each sample.
    residual : array of shape (n,), optional
        Loss-gradient multiplier, overriding ``1 - p_correct``: the loss gradient of sample
        ``i`` is ``-residual[i] * grads[i]``. Squared loss uses ``y - prediction`` here.
    loss_gradients : bool, default False
        ``grads`` hold per-sample *loss* gradients ``-r_i phi_i`` (what a training feature
        store computes) instead of output gradients: scorers then use ``-grads`` as the
        residual-scaled output gradients and ``p/(1-p)`` as curvature weights (which restores
        the ``p(1-p)`` Gauss-Newton kernel exactly when ``p_correct`` is known). For queries,
        compute the loss with the *predicted* label.
    lr : float, default 1.0
        Learning-rate weight of this checkpoint (TracInCP, Pruthi et al. 2020, eq. 4).
    model_id : str, default ""
        Label of the model or checkpoint the features come from (reported by ``explain``).

    Examples
    --------
    >>> import numpy as np
    >>> f = GradientFeatures(np.ones((3, 2), np.float32), p_correct=np.full(3, 0.9))
    >>> f.n_samples, f.dim
    (3, 2)
    """

    grads: NDArray[Any]
    p_correct: NDArray[np.float64] | None = None
    row_ids: NDArray[np.int64] | None = None
    residual: NDArray[np.float64] | None = None
    loss_gradients: bool = False
    lr: float = 1.0
    model_id: str = ""

    def __post_init__(self) -> None:
        grads = _as_2d(self.grads, "GradientFeatures")
        object.__setattr__(self, "grads", grads)
        n = grads.shape[0]
        if self.p_correct is not None:
            p = np.asarray(self.p_correct, dtype=np.float64)
            if p.shape != (n,) or not np.all((p >= 0) & (p <= 1)):
                raise InvalidInputError(
                    f"p_correct of GradientFeatures must be {n} probabilities in [0, 1]; got "
                    f"shape {p.shape!r}. Pass the probability of each sample's own label."
                )
            object.__setattr__(self, "p_correct", p)
        if self.row_ids is not None:
            ids = np.asarray(self.row_ids, dtype=np.int64)
            if ids.shape != (n,):
                raise InvalidInputError(
                    f"row_ids of GradientFeatures must have shape ({n},); got {ids.shape!r}. "
                    "Pass one packed row id per sample."
                )
            object.__setattr__(self, "row_ids", ids)
        if self.residual is not None:
            r = np.asarray(self.residual, dtype=np.float64)
            if r.shape != (n,) or not np.all(np.isfinite(r)):
                raise InvalidInputError(
                    f"residual of GradientFeatures must be {n} finite floats; got shape "
                    f"{r.shape!r}. Pass y - prediction for squared loss."
                )
            object.__setattr__(self, "residual", r)
        if not is_real(self.lr, 0.0, strict=True):
            raise InvalidInputError(
                f"lr of GradientFeatures must be a finite float > 0; got {self.lr!r}. Pass the "
                "checkpoint's learning rate."
            )

    @property
    def n_samples(self) -> int:
        """Number of samples (rows of ``grads``)."""
        return int(self.grads.shape[0])

    @property
    def dim(self) -> int:
        """Feature dimension (columns of ``grads``)."""
        return int(self.grads.shape[1])

    def residuals(self) -> NDArray[np.float64]:
        """Return ``residual``, else ``1 - p_correct``, else ones (``-1`` for loss gradients)."""
        if self.loss_gradients:
            return -np.ones(self.n_samples)
        if self.residual is not None:
            return self.residual
        if self.p_correct is None:
            return np.ones(self.n_samples)
        return 1.0 - self.p_correct

    def curvature(self) -> NDArray[np.float64]:
        """Return ``p(1-p)`` (ones when ``p_correct`` is unknown), per unit of ``grads``."""
        if self.p_correct is None:
            return np.ones(self.n_samples)
        if self.loss_gradients:
            return self.p_correct / np.maximum(1.0 - self.p_correct, 1e-12)
        return self.p_correct * (1.0 - self.p_correct)

    @classmethod
    def from_source(
        cls,
        source: FeatureSource,
        *,
        p_correct: ArrayLike | None = None,
        loss_gradients: bool = True,
        lr: float = 1.0,
        model_id: str = "",
    ) -> GradientFeatures:
        """Wrap a training feature store (anything with ``features`` and ``row_ids``).

        ``rowtrail.training.featurize`` stores projected *loss* gradients, hence the default
        ``loss_gradients=True``. When ``p_correct`` is not given, the store's own
        ``p_correct`` attribute is used if it has one (``featurize`` records it with the default
        loss), so TRAK's ``p(1-p)`` kernel and the residuals need no extra input.
        """
        if p_correct is None:
            p_correct = getattr(source, "p_correct", None)
        return cls(
            source.features,
            p_correct=None if p_correct is None else np.asarray(p_correct, dtype=np.float64),
            row_ids=np.asarray(source.row_ids, dtype=np.int64),
            loss_gradients=loss_gradients,
            lr=lr,
            model_id=model_id,
        )


def save_feature_matrix(
    directory: str | Path,
    matrix: ArrayLike,
    row_ids: ArrayLike,
    *,
    dtype: str = "float32",
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write a ``(n, d)`` matrix and its row ids as memory-mappable ``.npy`` files.

    Parameters
    ----------
    directory : str or Path
        Created if missing; receives ``matrix.npy``, ``row_ids.npy`` and ``meta.json``.
    matrix : array of shape (n, d)
        Written in chunks so that a memmap input is never loaded whole.
    row_ids : array of int64, shape (n,)
        Packed source row id of each row.
    dtype : {"float32", "float16"}
        On-disk type. Query indexes default to float32: casting float16 chunks costs more than
        reading twice the bytes (see ``benchmarks/bench_attribution.py``).
    meta : dict, optional
        JSON-ready metadata stored alongside.
    """
    if dtype not in ("float32", "float16"):
        raise InvalidInputError(
            f"dtype of save_feature_matrix must be 'float32' or 'float16'; got {dtype!r}."
        )
    source = _as_2d(matrix, "save_feature_matrix")
    ids = np.asarray(row_ids, dtype=np.int64)
    if ids.shape != (source.shape[0],):
        raise InvalidInputError(
            f"row_ids of save_feature_matrix must have shape ({source.shape[0]},); got "
            f"{ids.shape!r}. Pass one row id per matrix row."
        )
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    out = np.lib.format.open_memmap(path / "matrix.npy", mode="w+", dtype=dtype, shape=source.shape)
    step = max(1, (1 << 24) // max(1, source.shape[1]))
    for start in range(0, source.shape[0], step):
        out[start : start + step] = source[start : start + step]
    out.flush()
    del out
    np.save(path / "row_ids.npy", ids)
    (path / "meta.json").write_text(json.dumps(meta or {}, sort_keys=True), encoding="utf-8")
    return path


def load_feature_matrix(
    directory: str | Path,
) -> tuple[NDArray[Any], NDArray[np.int64], dict[str, Any]]:
    """Open a matrix written by :func:`save_feature_matrix` (memory-mapped, read-only).

    This reads the files as they are; it checks their form, not their digests. A saved
    attributor is read through :func:`~rowtrail.attribution.load_attributor`, which first
    checks every file against its ledger event.

    Raises
    ------
    FileIntegrityError
        A file is missing, truncated or malformed (``path`` names it).
    StorageError
        A file cannot be read.
    """
    path = Path(directory)
    matrix = load_npy_file(path / "matrix.npy", mmap=True)
    row_ids = load_npy_file(path / "row_ids.npy")
    meta = load_json_file(path / "meta.json")
    if matrix.ndim != 2 or matrix.dtype not in (np.dtype("<f4"), np.dtype("<f2")):
        raise FileIntegrityError(
            f"{path / 'matrix.npy'} must hold a 2-D float32 or float16 matrix; got "
            f"{matrix.dtype} of shape {matrix.shape}",
            path=str(path / "matrix.npy"),
        )
    if row_ids.shape != (matrix.shape[0],) or row_ids.dtype != np.int64:
        raise FileIntegrityError(
            f"{path / 'row_ids.npy'} must hold {matrix.shape[0]} int64 row ids (one per matrix "
            f"row); got {row_ids.dtype} of shape {row_ids.shape}",
            path=str(path / "row_ids.npy"),
        )
    return matrix, row_ids, meta
