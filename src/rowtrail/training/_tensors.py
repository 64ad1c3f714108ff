"""Row ids of a plain ``TensorDataset`` whose tensors are the memory of traced arrays.

``TensorDataset(torch.as_tensor(X), ...)`` and ``TensorDataset(torch.from_numpy(np.asarray(X)))``
with ``X`` a traced array (``rt.to_numpy``, ``rt.track``, ``rt.load_csv`` and any NumPy ops on
them) hold no row ids, but their tensors share ``X``'s memory: both conversions hand the plain
array out through ``X`` (``__dlpack__``, ``__array__``), which notes the export (see
:mod:`rowtrail.lineage._exports`). A tensor is recognised when it *is* rows of a noted array
(same rows, row for row; a column slice of them too), and sample ``i`` then has exactly the
source rows of row ``i`` of that array. The samples' rows are the union over the recognised
tensors (features and labels converted from two arrays of one frame name the same rows).

Not recognised, and so recorded as "unknown" by the training trail (a stand-in source, see
:mod:`._rows`): tensors that are copies (``torch.tensor(X)``, a dtype change such as
``.float()`` or ``as_tensor(X, dtype=torch.float32)`` of a float64 array, ``.to(device)``),
tensors made from plain arrays that never went through a traced array, reshaped or transposed
views, and tensors whose rows are not one traced row each.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

from rowtrail._types import IdArray

__all__ = ["tensor_rows"]

_EMPTY: IdArray = np.zeros(0, dtype=np.int64)
# dataset -> (its tensors when resolved, the answer); a dataset's tensors are fixed in practice,
# but a changed tuple is resolved again.
_CACHE: weakref.WeakKeyDictionary[Any, tuple[tuple[Any, ...], Any]] = (
    weakref.WeakKeyDictionary()
)


def _tensor_nodes(tensor: Any) -> list[Any]:
    """Return the DAG nodes of the traced arrays whose rows ``tensor`` is (CPU, strided only)."""
    from rowtrail.lineage._exports import exported_nodes

    if not hasattr(tensor, "data_ptr") or getattr(tensor, "is_sparse", False):
        return []
    if tensor.device.type != "cpu" or tensor.dim() == 0 or str(tensor.layout) != "torch.strided":
        return []
    size = tensor.element_size()
    strides = tuple(int(s) * size for s in tensor.stride())
    return exported_nodes(int(tensor.data_ptr()), tuple(int(n) for n in tensor.shape), strides)


def _union(parts: Sequence[Any]) -> tuple[IdArray, IdArray, IdArray]:
    """Return ``(row_ids, offsets, ids)``: each sample's own rows united over ``parts``."""
    if len(parts) == 1:
        return parts[0].row_ids, parts[0].own_offsets, parts[0].own_ids
    n = len(parts[0].row_ids)
    sample = np.concatenate(
        [np.repeat(np.arange(n, dtype=np.int64), np.diff(p.own_offsets)) for p in parts]
    )
    ids = np.concatenate([p.own_ids for p in parts]).astype(np.int64)
    order = np.lexsort((ids, sample))
    sample, ids = sample[order], ids[order]
    if ids.size:
        keep = np.concatenate(([True], (np.diff(sample) != 0) | (np.diff(ids) != 0)))
        sample, ids = sample[keep], ids[keep]
    offsets = np.concatenate(([0], np.cumsum(np.bincount(sample, minlength=n)))).astype(np.int64)
    # Each part's id is its smallest own row (or a statistic's): the smallest valid one wins.
    primary = np.stack([p.row_ids for p in parts])
    valid = np.where(primary >= 0, primary, np.iinfo(np.int64).max).min(axis=0)
    row_ids = np.where(valid == np.iinfo(np.int64).max, -1, valid).astype(np.int64)
    return row_ids, offsets, ids


def _resolve(tensors: tuple[Any, ...]) -> tuple[IdArray, Any] | None:
    from rowtrail.lineage.frames._torch import node_samples
    from rowtrail.training._rows import SampleRows

    nodes = {node.serial: node for tensor in tensors for node in _tensor_nodes(tensor)}
    if not nodes:
        return None
    parts = [node_samples(nodes[serial]) for serial in sorted(nodes)]
    row_ids, offsets, ids = _union(parts)
    if row_ids.size and int(row_ids.min()) < 0:
        return None  # a sample built from no source row: its rows are not known
    aggregated = np.unique(np.concatenate([_EMPTY, *(p.aggregated for p in parts)]))
    statistic = np.unique(np.concatenate([_EMPTY, *(p.statistic for p in parts)]))
    rows = SampleRows(offsets, ids, aggregated.astype(np.int64), statistic.astype(np.int64))
    return row_ids, rows


def tensor_rows(dataset: Any) -> tuple[IdArray, Any] | None:
    """Return ``(row_ids, SampleRows)`` of a ``TensorDataset`` of traced memory, else None.

    ``row_ids`` has one id per sample (its smallest own source row, as ``rt.torch.dataset``
    gives); the :class:`~rowtrail.training._rows.SampleRows` hold every source row of each
    sample. ``None`` when ``dataset`` is not a ``TensorDataset`` (a subclass overriding
    ``__getitem__`` is not one) or none of its tensors is recognised (see the module docstring).
    """
    torch = sys.modules.get("torch")  # no tensor exists unless torch was imported
    data = None if torch is None else torch.utils.data
    # Only TensorDataset's own __getitem__ is known to give sample i from row i of each tensor.
    if data is None or not isinstance(dataset, data.TensorDataset):
        return None
    if type(dataset).__getitem__ is not data.TensorDataset.__getitem__:
        return None
    tensors = dataset.tensors
    if not isinstance(tensors, tuple) or not tensors:
        return None
    return _cached(dataset, tensors)


def _cached(dataset: Any, tensors: tuple[Any, ...]) -> tuple[IdArray, Any] | None:
    """Return the answer for ``dataset`` resolved once per tuple of tensors."""
    try:
        cached = _CACHE.get(dataset)
    except TypeError:  # not weak-referenceable: resolve every time
        return _resolve(tensors)
    if cached is not None and len(cached[0]) == len(tensors) and all(
        a is b for a, b in zip(cached[0], tensors, strict=True)
    ):
        found: tuple[IdArray, Any] | None = cached[1]
        return found
    found = _resolve(tensors)
    _CACHE[dataset] = (tensors, found)
    return found
