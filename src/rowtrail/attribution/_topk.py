"""Top-k attribution queries over a memory-mapped score index.

Every scorer in this package is *linear*: ``scores = train_matrix @ query_vector`` (see
:mod:`rowtrail.attribution._scorers`). A :class:`ScoreIndex` holds the ``(n, d)`` train-side
matrix (a read-only memmap is fine) and answers top-k queries in one pass over row chunks:
each chunk is cast to float32, multiplied by the whole batch of queries, reduced with
``argpartition`` to its best ``k`` candidates, and folded into per-source totals with a
``bincount``. Memory stays at one chunk; batching queries amortises the read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rowtrail.attribution._checks import is_count
from rowtrail.errors import InvalidInputError
from rowtrail.ids import ROW_BITS

__all__ = ["ScoreIndex", "TopK", "brute_force_top_k"]

_DEFAULT_CHUNK = 1 << 18


@dataclass(frozen=True, eq=False)
class TopK:
    """Result of a batched top-k query.

    Attributes
    ----------
    indices, scores : arrays of shape (m, k)
        Training positions and scores of the ``k`` highest scores per query, highest first
        (the samples that most *support* each prediction).
    bottom_indices, bottom_scores : arrays of shape (m, k)
        The ``k`` lowest scores, lowest first (the samples that most *oppose* it).
    source_indices : array of int64, shape (s,)
        Source indices present in the index (``row_id >> 40``).
    support, oppose : arrays of shape (m, s)
        Per query and source: sum of the positive and of the negative scores of the samples
        that use the source (see :meth:`ScoreIndex.set_membership`).
    n_samples : int
        Number of training samples scanned.
    """

    indices: NDArray[np.int64]
    scores: NDArray[np.float32]
    bottom_indices: NDArray[np.int64]
    bottom_scores: NDArray[np.float32]
    source_indices: NDArray[np.int64]
    support: NDArray[np.float64]
    oppose: NDArray[np.float64]
    n_samples: int


class ScoreIndex:
    """A train-side score matrix with row ids, queried in batches without loading it whole.

    Parameters
    ----------
    matrix : array of shape (n, d)
        Train-side matrix of a linear scorer; a ``np.load(..., mmap_mode="r")`` memmap works.
    row_ids : array of int64, shape (n,), optional
        Packed source row ids (for per-source totals); without them totals use source 0.
    chunk_rows : int, default 262144
        Rows read per step.

    Examples
    --------
    >>> import numpy as np
    >>> index = ScoreIndex(np.eye(4, dtype=np.float32))
    >>> index.top_k(np.array([[0, 2, 0, 1]], np.float32), k=2).indices.tolist()
    [[1, 3]]
    """

    def __init__(
        self,
        matrix: NDArray[Any],
        row_ids: ArrayLike | None = None,
        *,
        chunk_rows: int = _DEFAULT_CHUNK,
    ) -> None:
        if matrix.ndim != 2 or matrix.shape[0] == 0:
            raise InvalidInputError(
                f"matrix of ScoreIndex must be a non-empty 2-D array; got shape {matrix.shape!r}."
                " Build it with a scorer's train_matrix()."
            )
        if not is_count(chunk_rows, 1):
            raise InvalidInputError(
                f"chunk_rows of ScoreIndex must be an int > 0; got {chunk_rows!r}."
            )
        n = int(matrix.shape[0])
        ids = np.zeros(n, np.int64) if row_ids is None else np.asarray(row_ids, dtype=np.int64)
        if ids.shape != (n,):
            raise InvalidInputError(
                f"row_ids of ScoreIndex must have shape ({n},); got {ids.shape!r}. "
                "Pass one packed row id per matrix row."
            )
        self.matrix = matrix
        self.row_ids = ids
        self.chunk_rows = chunk_rows
        self.set_membership(np.arange(n), ids >> ROW_BITS)

    def set_membership(self, sample: NDArray[np.int64], source: NDArray[np.int64]) -> None:
        """Declare that training sample ``sample[j]`` drew rows from source ``source[j]``.

        Per-source totals then credit a sample's score to every source it used (the default
        is the source of each sample's own row id).
        """
        self.source_indices, codes = np.unique(np.asarray(source, np.int64), return_inverse=True)
        member = np.zeros((self.n_samples, self.source_indices.size), np.float32)
        member[np.asarray(sample, np.int64), codes] = 1.0
        self._membership = member
        self._counts = np.asarray(member.sum(axis=0), dtype=np.int64)

    def samples_per_source(self) -> NDArray[np.int64]:
        """Return the number of training samples that use each of ``source_indices``."""
        return self._counts

    @property
    def n_samples(self) -> int:
        """Number of training samples."""
        return int(self.matrix.shape[0])

    @property
    def dim(self) -> int:
        """Width of the train-side matrix."""
        return int(self.matrix.shape[1])

    def _check_queries(self, queries: ArrayLike, k: int) -> NDArray[np.float32]:
        q = np.asarray(queries, dtype=np.float32)
        if q.ndim == 1:
            q = q[None, :]
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise InvalidInputError(
                f"queries of ScoreIndex.top_k must have shape (m, {self.dim}); got "
                f"{np.shape(queries)!r}. Build them with the same scorer's query_matrix()."
            )
        if not is_count(k, 1):
            raise InvalidInputError(f"k of ScoreIndex.top_k must be an int > 0; got {k!r}.")
        return q

    def scores(self, queries: ArrayLike) -> NDArray[np.float32]:
        """Return the full ``(m, n)`` score matrix (chunked; for evaluation, not for serving)."""
        q = self._check_queries(queries, 1)
        out = np.empty((q.shape[0], self.n_samples), np.float32)
        for start in range(0, self.n_samples, self.chunk_rows):
            chunk = np.asarray(self.matrix[start : start + self.chunk_rows], dtype=np.float32)
            out[:, start : start + chunk.shape[0]] = q @ chunk.T
        return out

    def top_k(self, queries: ArrayLike, k: int = 20, *, totals: bool = True) -> TopK:
        """Return the top-``k`` supporting and opposing samples of each query.

        Parameters
        ----------
        queries : array of shape (m, d) or (d,)
            Query-side vectors from the scorer's ``query_matrix``.
        k : int, default 20
            Samples per side; capped at ``n``.
        totals : bool, default True
            Also sum positive and negative scores per source (source-stratified attribution).
        """
        q = self._check_queries(queries, k)
        k = min(int(k), self.n_samples)
        m, n_src = q.shape[0], self.source_indices.size
        best = [_Running(k, +1) for _ in range(m)]
        worst = [_Running(k, -1) for _ in range(m)]
        support = np.zeros((m, n_src))
        oppose = np.zeros((m, n_src))
        for start in range(0, self.n_samples, self.chunk_rows):
            chunk = np.asarray(self.matrix[start : start + self.chunk_rows], dtype=np.float32)
            s = q @ chunk.T
            for j in range(m):
                best[j].offer(s[j], start)
                worst[j].offer(s[j], start)
            if totals:
                member = self._membership[start : start + s.shape[1]]
                support += np.maximum(s, 0) @ member
                oppose += np.minimum(s, 0) @ member
        top = [b.result() for b in best]
        low = [w.result() for w in worst]
        return TopK(
            np.stack([i for i, _ in top]),
            np.stack([v for _, v in top]),
            np.stack([i for i, _ in low]),
            np.stack([v for _, v in low]),
            self.source_indices,
            support,
            oppose,
            self.n_samples,
        )


class _Running:
    """The ``k`` best values of one query seen so far, and the bar a new one must clear.

    ``sign=+1`` keeps the largest values, ``-1`` the smallest. A small probe establishes the
    bar, after which a chunk costs one comparison pass plus a partition of the few values
    that clear it (partitioning every chunk would cost ~10 ms per 10^6 samples).
    """

    def __init__(self, k: int, sign: int) -> None:
        self.k = k
        self.sign = sign
        self.probe = max(64 * k, 1024)
        self.idx = np.empty(0, np.int64)
        self.val = np.empty(0, np.float32)  # sign * score, so that larger is better
        self.bar = -np.inf

    def offer(self, values: NDArray[np.float32], start: int) -> None:
        full = self.idx.size >= self.k
        if not full and values.size > self.probe:
            self.offer(values[: self.probe], start)
            self.offer(values[self.probe :], start + self.probe)
            return
        if not full:
            cand = np.arange(values.size)
        elif self.sign > 0:
            cand = np.flatnonzero(values > self.bar)
        else:
            cand = np.flatnonzero(values < -self.bar)
        if cand.size == 0:
            return
        idx = np.concatenate([self.idx, cand + start])
        val = np.concatenate([self.val, self.sign * values[cand]])
        if idx.size > self.k:
            keep = np.argpartition(val, idx.size - self.k)[idx.size - self.k :]
            idx, val = idx[keep], val[keep]
        self.idx, self.val = idx, val
        if idx.size >= self.k:
            self.bar = float(val.min())

    def result(self) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        order = np.lexsort((self.idx, -self.val))  # best first; ties by position
        return self.idx[order], (self.sign * self.val[order]).astype(np.float32)


def brute_force_top_k(scores: ArrayLike, k: int) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Return the top-k by a full sort (a reference for tests and benchmarks), highest first."""
    s = np.atleast_2d(np.asarray(scores, dtype=np.float32))
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return order.astype(np.int64), np.take_along_axis(s, order, axis=1)
