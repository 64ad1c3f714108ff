"""Resolve the row id of every sample of a dataset.

In order of preference: ids passed explicitly; a ``row_ids`` attribute on the dataset (what
``rt.torch.dataset`` and traced arrays carry); ``Subset`` / ``ConcatDataset`` built from such
datasets; otherwise the dataset's positions are registered as a source (``format="torch"``; named
``tensors:<digest prefix>`` for a ``TensorDataset``, whose bytes are hashed, else after the run)
so that every sample still has a stable row id.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rowtrail.errors import InvalidInputError
from rowtrail.hashing import DIGEST_PREFIX, canonical_json, sha256_digest
from rowtrail.lineage import register_source

__all__ = ["check_row_ids", "dataset_row_ids"]


def check_row_ids(row_ids: Any, n: int, *, caller: str) -> NDArray[np.int64]:
    """Return ``row_ids`` as a 1-d int64 array of length ``n`` or raise."""
    ids = np.asarray(row_ids)
    if ids.ndim != 1 or ids.shape[0] != n or (ids.size and ids.dtype.kind not in "iu"):
        raise InvalidInputError(
            f"row_ids of {caller} must be a 1-d integer array with one id per sample ({n}); "
            f"got shape {ids.shape} dtype {ids.dtype}"
        )
    if ids.size and int(ids.min()) < 0:
        raise InvalidInputError(
            f"row_ids of {caller} must be non-negative row ids; got min {int(ids.min())!r}"
        )
    return ids.astype(np.int64, copy=False)


def _attribute_ids(dataset: Any) -> NDArray[np.int64] | None:
    ids = getattr(dataset, "row_ids", None)
    if ids is not None and not callable(ids):
        return np.asarray(ids, dtype=np.int64)
    indices = getattr(dataset, "indices", None)
    parent = getattr(dataset, "dataset", None)
    if indices is not None and parent is not None:  # torch.utils.data.Subset
        parent_ids = _attribute_ids(parent)
        if parent_ids is not None:
            return parent_ids[np.asarray(indices, dtype=np.int64)]
    parts = getattr(dataset, "datasets", None)
    if parts is not None and hasattr(dataset, "cumulative_sizes"):  # ConcatDataset
        resolved = [_attribute_ids(part) for part in parts]
        if all(part is not None for part in resolved):
            return np.concatenate([p for p in resolved if p is not None]).astype(np.int64)
    return None


def _content_digest(dataset: Any, n: int, name: str) -> tuple[str, str]:
    tensors = getattr(dataset, "tensors", None)
    if tensors is not None:  # TensorDataset: digest the actual bytes
        hasher = hashlib.sha256()
        for tensor in tensors:
            array = tensor.detach().cpu().contiguous().numpy()
            hasher.update(canonical_json([str(array.dtype), list(array.shape)]))
            hasher.update(array.tobytes())
        return DIGEST_PREFIX + hasher.hexdigest(), "tensors"
    ident = {"class": type(dataset).__qualname__, "n": n, "name": name}
    return sha256_digest(canonical_json(ident)), "identity"


def dataset_row_ids(
    workspace: Any, dataset: Any, *, row_ids: Any = None, name: str, caller: str
) -> NDArray[np.int64]:
    """Return one row id per sample of ``dataset`` (see the module docstring for the order)."""
    try:
        n = len(dataset)
    except TypeError as exc:
        raise InvalidInputError(
            f"dataset of {caller} must have a length (map-style); got {type(dataset).__name__}"
        ) from exc
    if row_ids is not None:
        return check_row_ids(row_ids, n, caller=caller)
    found = _attribute_ids(dataset)
    if found is not None:
        return check_row_ids(found, n, caller=caller)
    digest, basis = _content_digest(dataset, n, name)
    # Content-identified datasets get a content-derived name, so a run and a later
    # featurization of the same tensors agree on the source (register_source is idempotent).
    source_name = f"tensors:{digest[7:23]}" if basis == "tensors" else name
    info = register_source(
        workspace,
        name=source_name,
        digest=digest,
        format="torch",
        schema={"basis": basis, "class": type(dataset).__qualname__},
        n_rows=n,
    )
    return info.row_ids()
