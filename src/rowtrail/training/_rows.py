"""Resolve the row id of every sample of a dataset, and the source rows each sample was built from.

Row ids, in order of preference: ids passed explicitly; a ``row_ids`` attribute on the dataset
(what ``rt.torch.dataset`` and traced arrays carry); ``Subset`` / ``ConcatDataset`` built from
such datasets; otherwise the dataset's positions are registered as a **stand-in source**
(``format="torch"``; named ``tensors:<digest prefix>`` for a ``TensorDataset``, whose bytes are
hashed, else after the run) so that every sample still has a stable row id. A stand-in's rows
are positions, not rows of any file: a run trained on one has no row ids, and its split is
recorded with ``"row_ids": false`` so that "was row R used?" is answered "unknown" for it,
never "not used" (DESIGN, the rule at the top).

Per-sample lineage (:class:`SampleRows`): a dataset built from frames through joins and
group-bys (``rt.torch.dataset``) carries, besides one row id per sample, every source row of
each sample as CSR (``sample_offsets`` + ``sample_ids``), the rows among them that entered
through an aggregation (``aggregated_ids``) and the rows of fitted statistics applied to every
sample (``statistic_ids``: a scaler's mean and std). A run records them as blobs of its
``training.split`` event (:func:`encode_sample_rows`), so a bureau row summed into an
applicant's features is answered with the batches that applicant's sample was drawn in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from rowtrail._types import IdArray
from rowtrail.errors import InvalidInputError, StorageError, UnknownSourceError
from rowtrail.hashing import DIGEST_PREFIX, canonical_json, sha256_digest
from rowtrail.ids import ROW_BITS
from rowtrail.lineage import SourceInfo, get_source, register_source
from rowtrail.training._codec import encode_positions

if TYPE_CHECKING:
    from rowtrail.lineage import LineageWorkspace

__all__ = [
    "ResolvedRows",
    "SampleRows",
    "check_row_ids",
    "dataset_row_ids",
    "decode_sample_rows",
    "encode_sample_rows",
    "is_stand_in",
    "resolve_rows",
    "stand_in_sources",
]

_EMPTY: IdArray = np.zeros(0, dtype=np.int64)
# Stand-in sources are registered with a schema naming what their digest covers ("basis"):
# the bytes of a TensorDataset, the identity of another dataset, or a design matrix and target
# (training._convex). Rows of a source so registered are positions, not rows of a file.
_STAND_IN_FORMATS = ("torch", "numpy")


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


@dataclass(frozen=True)
class SampleRows:
    """Every source row of each sample (CSR), and which of them entered how.

    Attributes
    ----------
    offsets : ndarray of int64, shape (n + 1,)
        Sample ``i`` was built from ``ids[offsets[i]:offsets[i+1]]`` (its own row, joined
        rows, aggregated rows; not the statistics).
    ids : ndarray of int64
        Packed source row ids.
    aggregated : ndarray of int64
        Sorted distinct ids among ``ids`` that entered through an aggregation (group-by).
    statistic : ndarray of int64
        Sorted distinct ids of rows a fitted statistic applied to every sample was computed
        from (a scaler's mean and standard deviation, an imputer's fill values).
    """

    offsets: IdArray
    ids: IdArray
    aggregated: IdArray = field(default_factory=lambda: _EMPTY)
    statistic: IdArray = field(default_factory=lambda: _EMPTY)

    @property
    def n_samples(self) -> int:
        """Number of samples."""
        return int(self.offsets.size) - 1

    def take(self, positions: NDArray[np.int64]) -> SampleRows:
        """Return the rows of the samples at ``positions`` (a ``Subset``)."""
        starts = self.offsets[positions]
        counts = self.offsets[positions + 1] - starts
        offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        within = np.arange(int(offsets[-1]), dtype=np.int64) - np.repeat(offsets[:-1], counts)
        ids = self.ids[np.repeat(starts, counts) + within]
        return SampleRows(offsets, ids, self.aggregated, self.statistic)

    @staticmethod
    def concat(parts: Sequence[SampleRows]) -> SampleRows:
        """Return the rows of datasets concatenated along samples (a ``ConcatDataset``)."""
        counts = [np.diff(p.offsets) for p in parts]
        flat = np.concatenate(counts) if counts else _EMPTY
        return SampleRows(
            np.concatenate(([0], np.cumsum(flat))).astype(np.int64),
            np.concatenate([p.ids for p in parts]).astype(np.int64) if parts else _EMPTY,
            _union([p.aggregated for p in parts]),
            _union([p.statistic for p in parts]),
        )

    def adds_to(self, row_ids: IdArray) -> bool:
        """Whether these rows say more than one ``row_ids`` entry per sample."""
        if self.statistic.size or self.aggregated.size:
            return True
        return not (self.ids.size == row_ids.size and np.array_equal(self.ids, row_ids))


def _union(arrays: Sequence[IdArray]) -> IdArray:
    if not arrays:
        return _EMPTY
    return np.unique(np.concatenate(arrays)).astype(np.int64)


@dataclass(frozen=True)
class ResolvedRows:
    """One row id per sample, whether they are real row ids, and the samples' lineage."""

    row_ids: IdArray
    known: bool
    lineage: SampleRows | None = None


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


def _own_lineage(dataset: Any, caller: str) -> SampleRows | None:
    offsets = getattr(dataset, "sample_offsets", None)
    ids = getattr(dataset, "sample_ids", None)
    if offsets is None or ids is None:
        return None
    off = np.asarray(offsets, dtype=np.int64)
    flat = np.asarray(ids, dtype=np.int64)
    if off.ndim != 1 or off.size < 1 or off[0] != 0 or off[-1] != flat.size or np.any(
        np.diff(off) < 0
    ):
        raise InvalidInputError(
            f"sample_offsets of the dataset given to {caller} must be CSR offsets (start at "
            f"0, non-decreasing, end at len(sample_ids)={flat.size}); got "
            f"{off[:3].tolist()!r}... Build the dataset with rt.torch.dataset."
        )
    return SampleRows(
        off,
        flat,
        np.unique(np.asarray(getattr(dataset, "aggregated_ids", _EMPTY), dtype=np.int64)),
        np.unique(np.asarray(getattr(dataset, "statistic_ids", _EMPTY), dtype=np.int64)),
    )


def _attribute_lineage(dataset: Any, caller: str) -> SampleRows | None:
    own = _own_lineage(dataset, caller)
    if own is not None:
        return own
    indices = getattr(dataset, "indices", None)
    parent = getattr(dataset, "dataset", None)
    if indices is not None and parent is not None:  # Subset
        found = _attribute_lineage(parent, caller)
        return None if found is None else found.take(np.asarray(indices, dtype=np.int64))
    parts = getattr(dataset, "datasets", None)
    if parts is not None and hasattr(dataset, "cumulative_sizes"):  # ConcatDataset
        resolved = [_attribute_lineage(part, caller) for part in parts]
        if resolved and all(part is not None for part in resolved):
            return SampleRows.concat([p for p in resolved if p is not None])
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


def resolve_rows(
    workspace: LineageWorkspace, dataset: Any, *, row_ids: Any = None, name: str, caller: str
) -> ResolvedRows:
    """Return the row ids of ``dataset``'s samples, whether they are known, and their lineage.

    ``known`` is False when no ids were given or carried and the dataset's positions were
    registered as a stand-in source (see the module docstring).
    """
    try:
        n = len(dataset)
    except TypeError as exc:
        raise InvalidInputError(
            f"dataset of {caller} must have a length (map-style); got {type(dataset).__name__}"
        ) from exc
    if row_ids is not None:
        return ResolvedRows(check_row_ids(row_ids, n, caller=caller), True)
    found = _attribute_ids(dataset)
    if found is not None:
        ids = check_row_ids(found, n, caller=caller)
        lineage = _attribute_lineage(dataset, caller)
        if lineage is not None and (lineage.n_samples != n or not lineage.adds_to(ids)):
            lineage = None
        return ResolvedRows(ids, True, lineage)
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
    return ResolvedRows(info.row_ids(), False)


def dataset_row_ids(
    workspace: LineageWorkspace, dataset: Any, *, row_ids: Any = None, name: str, caller: str
) -> NDArray[np.int64]:
    """Return one row id per sample of ``dataset`` (see the module docstring for the order)."""
    return resolve_rows(workspace, dataset, row_ids=row_ids, name=name, caller=caller).row_ids


def is_stand_in(info: SourceInfo) -> bool:
    """Whether a source's rows are dataset positions registered for lack of row ids."""
    return info.format in _STAND_IN_FORMATS and "basis" in info.schema


def stand_in_sources(workspace: LineageWorkspace, ids: IdArray) -> list[int]:
    """Return the indices of the stand-in sources among the sources of ``ids``."""
    found = []
    for index in np.unique(ids >> ROW_BITS).tolist():
        try:
            info = get_source(workspace, int(index))
        except UnknownSourceError:
            continue
        if is_stand_in(info):
            found.append(int(index))
    return found


def encode_sample_rows(ledger: Any, rows: SampleRows) -> tuple[dict[str, Any], list[str]]:
    """Store ``rows`` as blobs; return the ``lineage`` payload of a split and its blob digests.

    Ids are stored minus ``id_base`` (the smallest id), as compact position blobs:
    ``sample_counts`` (rows per sample), ``sample_rows`` (the CSR ids, sample by sample),
    ``aggregated_rows`` and ``statistic_rows`` (sorted; absent when empty).
    """
    every = [a for a in (rows.ids, rows.aggregated, rows.statistic) if a.size]
    base = int(min(int(a.min()) for a in every)) if every else 0
    put = ledger.put_blob
    digests = {
        "sample_counts": put(encode_positions(np.diff(rows.offsets))),
        "sample_rows": put(encode_positions(rows.ids - base)),
        "aggregated_rows": put(encode_positions(rows.aggregated - base))
        if rows.aggregated.size else None,
        "statistic_rows": put(encode_positions(rows.statistic - base))
        if rows.statistic.size else None,
    }
    payload: dict[str, Any] = {"id_base": base, "n_links": int(rows.ids.size), **digests}
    return payload, [d for d in digests.values() if d is not None]


def decode_sample_rows(read: Any, payload: dict[str, Any]) -> SampleRows:
    """Rebuild :class:`SampleRows` from a split's ``lineage`` payload.

    ``read`` maps a blob digest to its decoded integers (the blobs are re-hashed on read).
    """
    base = np.int64(payload["id_base"])
    counts = read(payload["sample_counts"])
    offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    ids = read(payload["sample_rows"]) + base
    if int(offsets[-1]) != ids.size:
        raise StorageError(
            f"split lineage holds {ids.size} row ids but its counts sum to {int(offsets[-1])}"
        )
    extra = [
        _EMPTY if payload.get(key) is None else read(payload[key]) + base
        for key in ("aggregated_rows", "statistic_rows")
    ]
    return SampleRows(offsets, ids, extra[0], extra[1])
