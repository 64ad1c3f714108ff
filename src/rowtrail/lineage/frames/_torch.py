"""``rt.torch.dataset``: a ``torch.utils.data.Dataset`` whose samples carry their row ids.

The features and target are converted once to ``float32`` / the target's dtype; each sample's
source row ids are kept as CSR (``row_offsets`` + ``lineage_ids``), so a batch's indices from
the ``DataLoader`` sampler name exactly the source rows (in every table) that built it, and
``row_ids`` gives the one id per sample that the training trail records.

For the training trail the same rows are also kept apart by how they entered: ``sample_offsets``
+ ``sample_ids`` (rows each sample was built from: its own, joined and aggregated rows),
``aggregated_ids`` (those that entered through a group-by) and ``statistic_ids`` (rows every
sample depends on: those a fitted statistic applied to the samples was computed from, e.g. a
scaler's mean and std, and the "all rows" of row-mixing operations). ``run.track(loader)``
records them with the run's split (see :mod:`rowtrail.training._rows`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rowtrail._optional import require
from rowtrail.errors import InvalidInputError
from rowtrail.lineage._array import TracedArray
from rowtrail.lineage._node import Node, ancestor_nodes, materialize
from rowtrail.lineage._query import ArrayLineage
from rowtrail.lineage._rowmap import STAT
from rowtrail.lineage._view import SourceRows
from rowtrail.lineage.frames._convert import aggregated_ids, to_numpy

__all__ = ["NodeSamples", "dataset", "node_samples", "primary_ids"]

_CALLER = "rt.torch.dataset()"


def primary_ids(offsets: NDArray[np.int64], ids: NDArray[np.int64]) -> NDArray[np.int64]:
    """One row id per sample: its smallest source row id (``-1`` for a sample with none).

    Ids pack the source index in the high bits, so the smallest id belongs to the source
    registered first; for the credit pipeline that is the applicant's ``application`` row.
    """
    counts = np.diff(offsets)
    first = np.full(len(counts), -1, dtype=np.int64)
    has = counts > 0
    first[has] = ids[offsets[:-1][has]]
    return first


@dataclass(frozen=True)
class NodeSamples:
    """The source rows of every row of a traced array, kept apart by how they entered.

    ``offsets`` / ``ids``: CSR of every source row id of each row, fitted statistics included;
    ``own_offsets`` / ``own_ids``: the same without the statistics (the row's own, joined and
    aggregated rows); ``aggregated``: the own ids that entered through a group-by;
    ``statistic``: the rows every row depends on; ``row_ids``: one id per row
    (:func:`primary_ids` of the own rows).
    """

    row_ids: NDArray[np.int64]
    offsets: NDArray[np.int64]
    ids: NDArray[np.int64]
    own_offsets: NDArray[np.int64]
    own_ids: NDArray[np.int64]
    aggregated: NDArray[np.int64]
    statistic: NDArray[np.int64]


def node_samples(node: Node) -> NodeSamples:
    """Return the per-row source rows of the traced array made by ``node``."""
    materialized = materialize(node)
    own_offsets = np.asarray(materialized.csr_offsets(), dtype=np.int64)
    own_ids = np.asarray(materialized.ids, dtype=np.int64)
    shared = np.unique(materialized.shared).astype(np.int64)
    offsets, ids = _merged(own_offsets, own_ids, shared)
    # A row's id is its smallest own row, never a statistic's row (which every row shares);
    # only a row built from nothing but statistics falls back to those.
    row_ids = primary_ids(own_offsets, own_ids)
    if len(shared) and np.any(row_ids < 0):
        row_ids = np.where(row_ids < 0, primary_ids(offsets, ids), row_ids)
    return NodeSamples(
        row_ids=row_ids,
        offsets=offsets,
        ids=ids,
        own_offsets=own_offsets,
        own_ids=own_ids,
        aggregated=np.intersect1d(aggregated_ids(node), own_ids).astype(np.int64),
        statistic=_statistic_ids(node, shared),
    )


def _statistic_ids(node: Node, shared: NDArray[np.int64]) -> NDArray[np.int64]:
    """Return the rows every sample depends on: fitted statistics' rows and ``shared`` ones."""
    parts = [shared]
    nodes, _ = ancestor_nodes(node)
    for member in [node, *nodes]:
        for k, parent in enumerate(member.parents):
            if member.map_of(k) is STAT:
                parts.append(materialize(parent).all_ids())
    return np.unique(np.concatenate(parts)).astype(np.int64)


def _merged(
    offsets: NDArray[np.int64], ids: NDArray[np.int64], shared: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Return the CSR of every row's ids united with the shared ones (a fitted statistic)."""
    if not len(shared):
        return offsets, ids
    rows = [np.union1d(ids[offsets[i] : offsets[i + 1]], shared) for i in range(len(offsets) - 1)]
    counts = np.array([len(r) for r in rows], dtype=np.int64)
    flat = np.concatenate(rows) if rows else np.empty(0, dtype=np.int64)
    return np.concatenate(([0], np.cumsum(counts))).astype(np.int64), flat


def _split(data: Any, target: Any, features: Sequence[str] | None) -> tuple[TracedArray, Any]:
    if isinstance(data, TracedArray):
        if isinstance(target, int | np.integer) and not isinstance(target, bool):
            matrix = np.asarray(data)
            keep = [j for j in range(matrix.shape[1]) if j != int(target)]
            return data[:, keep], matrix[:, int(target)]
        if target is None or len(np.asarray(target)) == len(data):
            return data, None if target is None else np.asarray(target)
        raise InvalidInputError(
            f"target of {_CALLER} must be a column index or one label per row ({len(data)}); "
            f"got {type(target).__name__} of length {len(np.asarray(target))}."
        )
    columns = list(data.columns)
    if target is not None and target not in columns:
        raise InvalidInputError(
            f"target of {_CALLER} must be one of the frame's columns {columns}; got {target!r}."
        )
    chosen = list(features) if features is not None else [c for c in columns if c != target]
    labels = None if target is None else np.asarray(to_numpy(data, [target]))[:, 0]
    return to_numpy(data, chosen, dtype=np.float64), labels


def dataset(
    data: Any,
    target: Any = None,
    *,
    features: Sequence[str] | None = None,
    with_index: bool = False,
) -> Any:
    """Return a map-style ``torch.utils.data.Dataset`` whose samples carry their row ids.

    Parameters
    ----------
    data : traced frame (pandas or polars) or TracedArray
        The model inputs, one sample per row.
    target : str, int or array-like, optional
        Frame: the label column. Array: a column index or one label per row.
    features : sequence of str, optional
        Frame: the feature columns (default: every column but ``target``).
    with_index : bool, default False
        If True, samples are ``(x, y, i)`` with ``i`` the sample index (so a training loop can
        look up ``ds.rows_of(i)``); otherwise ``(x, y)`` (or ``x`` without a target).

    Returns
    -------
    FrameDataset
        ``ds.row_ids``: one packed row id per sample (its smallest id: the row of the first
        registered table, e.g. the applicant's ``application`` row), which the training trail
        (``run.track(loader)``) records per batch; ``ds.row_offsets`` / ``ds.lineage_ids``:
        CSR of every source row id of each sample (all tables); ``ds.sample_row_ids(i)``,
        ``ds.rows_of(i)`` (``{table: [rows]}``) and ``ds.lineage`` (the array lineage view;
        its ``ops()`` list every frame op from each source file to the model input).
        ``ds.sample_offsets`` / ``ds.sample_ids`` (the same without statistics),
        ``ds.aggregated_ids`` and ``ds.statistic_ids``: what the training trail records.
    """
    torch = require("torch", extra="torch", feature=_CALLER)
    x, y = _split(data, target, features)
    rows = node_samples(x._n)
    view = ArrayLineage(x._n)
    inputs = torch.from_numpy(np.ascontiguousarray(np.asarray(x), dtype=np.float32))
    labels = None if y is None else torch.from_numpy(np.ascontiguousarray(_label_array(y)))

    class FrameDataset(torch.utils.data.Dataset):  # type: ignore[misc,name-defined]
        """Samples ``(x, y)`` with their source row ids (see :func:`dataset`)."""

        def __init__(self) -> None:
            self.inputs, self.labels = inputs, labels
            self.row_offsets, self.lineage_ids = rows.offsets, rows.ids
            self.sample_offsets, self.sample_ids = rows.own_offsets, rows.own_ids
            self.aggregated_ids, self.statistic_ids = rows.aggregated, rows.statistic
            self.row_ids = rows.row_ids
            self.lineage = view

        def __len__(self) -> int:
            return int(self.inputs.shape[0])

        def __getitem__(self, i: int) -> Any:
            sample = self.inputs[i] if self.labels is None else (self.inputs[i], self.labels[i])
            if not with_index:
                return sample
            return (*sample, i) if isinstance(sample, tuple) else (sample, i)

        def sample_row_ids(self, i: int) -> NDArray[np.int64]:
            """Every packed source row id of sample ``i`` (all tables), ascending."""
            return np.asarray(self.lineage_ids[self.row_offsets[i] : self.row_offsets[i + 1]])

        def rows_of(self, i: int) -> SourceRows:
            """``{table: [row numbers]}`` of sample ``i``."""
            return self.lineage.rows_of(int(i))

    return FrameDataset()


def _label_array(y: Any) -> NDArray[Any]:
    labels = np.asarray(y)
    if labels.dtype.kind in "iub":
        return labels.astype(np.int64)
    return labels.astype(np.float32)
