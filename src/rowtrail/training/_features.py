"""Gradient features: projected per-sample gradients at a checkpoint, in a memory-mapped store.

Per-sample gradients come from ``torch.func`` (``vmap(grad(loss_of_one_sample))`` over
``functional_call``), optionally for the last parameterised layer only; a seeded
:mod:`projector <rowtrail.training._projection>` maps them to ``proj_dim`` dimensions.

A feature set lives in ``<workspace>/features/<key>/``::

    meta.json       key, model digest, checkpoint, projector spec, shapes, rows done so far
    row_ids.npy     the row id of every feature row (int64)
    features.f16    (n, proj_dim) float16, memory-mapped (TRAK: float16 on disk, float32 math)

The key is derived from the model digest, checkpoint id, projector (kind, seed, proj_dim),
layer selection, loss and the row ids, so the same request finds the same set. Work is
written in chunks and ``meta.json`` is replaced atomically after each chunk: a killed
featurization resumes at the first unfinished chunk. The mapping is msync'ed every 64 MiB
and at the end, not per chunk: writes to a shared mapping survive a killed process, but
after an OS crash a partial set may hold zeros after its last msync, so delete it and
recompute (a complete set's file digest is in its ``features.computed`` event). When complete, a
``features.computed`` ledger event records the digest of the feature file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from rowtrail._optional import require
from rowtrail.errors import InvalidInputError, StateError
from rowtrail.hashing import canonical_json, file_digest, sha256_digest
from rowtrail.training._codec import encode_positions
from rowtrail.training._grads import PerSampleGradients, model_digest
from rowtrail.training._projection import Projector, make_projector
from rowtrail.training._rows import dataset_row_ids

if TYPE_CHECKING:
    import torch

__all__ = ["FeatureSet", "featurize", "list_feature_sets", "open_feature_set"]

_DTYPE = np.float16
_SYNC_BYTES = 64 << 20


@dataclass
class FeatureSet:
    """A (possibly partial) set of projected gradient features."""

    key: str
    path: Path
    meta: dict[str, Any]
    row_ids: NDArray[np.int64]
    features: np.memmap[Any, np.dtype[np.float16]]

    @property
    def n_done(self) -> int:
        """Rows computed so far."""
        return int(self.meta["n_done"])

    @property
    def complete(self) -> bool:
        """Whether every row has been computed."""
        return self.n_done == self.row_ids.size

    @property
    def proj_dim(self) -> int:
        """Feature dimension ``k``."""
        return int(self.meta["proj_dim"])

    def as_float32(self, rows: slice | NDArray[np.int64] | None = None) -> NDArray[np.float32]:
        """Return the features (or some rows) as float32 for the math."""
        picked = self.features if rows is None else self.features[rows]
        return np.asarray(picked, dtype=np.float32)

    def nbytes_on_disk(self) -> int:
        """Bytes of the feature file, the row-id file and the metadata."""
        return sum(f.stat().st_size for f in self.path.iterdir() if f.is_file())


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _root(workspace: Any) -> Path:
    return Path(workspace.path) / "features"


def _write_meta(path: Path, meta: dict[str, Any]) -> None:
    tmp = path / "meta.json.tmp"
    tmp.write_text(json.dumps(meta, sort_keys=True, indent=1), encoding="utf-8")
    os.replace(tmp, path / "meta.json")


def open_feature_set(workspace: Any, key: str) -> FeatureSet:
    """Open a stored feature set by key (read-only memory map)."""
    path = _root(workspace) / key
    try:
        meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        known = list_feature_sets(workspace)
        raise InvalidInputError(
            f"key of open_feature_set must name a stored feature set; got {key!r}; known: {known}"
        ) from exc
    row_ids = np.load(path / "row_ids.npy")
    features = np.memmap(path / "features.f16", dtype=_DTYPE, mode="r",
                         shape=(int(meta["n_samples"]), int(meta["proj_dim"])))
    return FeatureSet(key, path, meta, row_ids, features)


def list_feature_sets(workspace: Any) -> list[str]:
    """Return the keys of every feature set stored in the workspace."""
    root = _root(workspace)
    if not root.exists():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "meta.json").exists())


def _create(path: Path, meta: dict[str, Any], row_ids: NDArray[np.int64]) -> None:
    path.mkdir(parents=True, exist_ok=True)
    np.save(path / "row_ids.npy", row_ids)
    shape = (int(meta["n_samples"]), int(meta["proj_dim"]))
    np.memmap(path / "features.f16", dtype=_DTYPE, mode="w+", shape=shape).flush()
    _write_meta(path, meta)


def _batches(dataset: Any, start: int, stop: int) -> tuple[Any, Any]:
    tensors = getattr(dataset, "tensors", None)
    if tensors is not None and len(tensors) >= 2:
        return tensors[0][start:stop], tensors[1][start:stop]
    torch = require("torch", extra="torch", feature="featurize()")
    items = [dataset[i] for i in range(start, stop)]
    collated = torch.utils.data.default_collate(items)
    return collated[0], collated[1]


def featurize(
    workspace: Any,
    model: torch.nn.Module,
    dataset: Any,
    *,
    proj_dim: int = 4096,
    seed: int = 0,
    projector: str | Projector = "srht",
    loss_fn: Callable[[Any, Any], Any] | None = None,
    last_layer: bool = False,
    checkpoint: str | None = None,
    row_ids: Any = None,
    batch_size: int = 128,
    progress: bool = False,
    on_chunk: Callable[[int], None] | None = None,
) -> FeatureSet:
    """Compute (or resume) projected per-sample gradient features of ``dataset`` at ``model``.

    Parameters
    ----------
    workspace : Workspace
        Where the feature set and its ledger event go.
    model : torch.nn.Module
        The model at the checkpoint to featurize (load one with :func:`load_checkpoint`).
    dataset : map-style dataset of ``(input, target)``
        The samples, featurized in index order.
    row_ids : array_like of int64, optional
        Row id of each sample; default ``dataset.row_ids``, else the dataset's content
        identifies a source (as :meth:`TrainingRun.track` does).
    proj_dim, seed, projector
        The random projection: ``"srht"`` (default, O(p log p)) or ``"rademacher"``.
    loss_fn : callable, optional
        ``loss_fn(output, target)`` for a batch of one; default cross-entropy, or BCE with
        logits when the model has one output.
    last_layer : bool
        Differentiate only the last parameterised module (big models).
    checkpoint : str, optional
        The checkpoint id being featurized (part of the key).
    batch_size : int
        Samples per chunk; ``meta.json`` is updated after every chunk (resume point).
    progress : bool
        Show a rich progress bar.
    on_chunk : callable, optional
        Called with the number of rows done after every flushed chunk.
    """
    require("torch", extra="torch", feature="featurize()")
    if not _is_count(batch_size):
        raise InvalidInputError(f"batch_size of featurize must be an int >= 1; got {batch_size!r}")
    proj = make_projector(projector, proj_dim=proj_dim, seed=seed)
    grads = PerSampleGradients(model, loss_fn=loss_fn, last_layer=last_layer)
    ids = dataset_row_ids(workspace, dataset, row_ids=row_ids, name="features", caller="featurize")
    meta = {
        "model_digest": model_digest(model),
        "checkpoint": checkpoint,
        "projector": proj.spec(),
        "last_layer": last_layer,
        "params": grads.param_names,
        "loss": grads.loss_name,
        "row_ids_digest": sha256_digest(ids.tobytes()),
    }
    key = sha256_digest(canonical_json(meta))[7:31]
    meta.update({"key": key, "n_samples": int(ids.size), "proj_dim": proj.proj_dim,
                 "param_dim": grads.dim, "dtype": "float16", "n_done": 0})
    path = _root(workspace) / key
    if not (path / "meta.json").exists():
        _create(path, meta, ids)
    feature_set = open_feature_set(workspace, key)
    if not feature_set.complete:
        _run_chunks(feature_set, dataset, grads, proj, batch_size, progress, on_chunk)
        feature_set = open_feature_set(workspace, key)
    if feature_set.meta.get("ledger_index") is None:
        _record(workspace, feature_set)
    return open_feature_set(workspace, key)


def _run_chunks(
    feature_set: FeatureSet,
    dataset: Any,
    grads: PerSampleGradients,
    proj: Projector,
    batch_size: int,
    progress: bool,
    on_chunk: Callable[[int], None] | None,
) -> None:
    from rich.progress import Progress

    path, meta, n = feature_set.path, dict(feature_set.meta), feature_set.row_ids.size
    out = np.memmap(path / "features.f16", dtype=_DTYPE, mode="r+", shape=(n, proj.proj_dim))
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"features {feature_set.key[:8]}", total=n, completed=meta["n_done"])
        unsynced = 0
        with grads.evaluating():
            for start in range(int(meta["n_done"]), n, batch_size):
                stop = min(start + batch_size, n)
                inputs, targets = _batches(dataset, start, stop)
                features = proj.project(grads.compute(inputs, targets))
                # torch converts to float16 in hardware; NumPy's software path is ~10x slower
                # on the tiny (float16-subnormal) values that confident samples produce.
                out[start:stop] = features.half().numpy()
                # Writes to a shared mapping survive a killed process (the page cache keeps
                # them), so the resume point advances every chunk; msync, which only matters
                # for an OS crash, runs every _SYNC_BYTES and at the end.
                unsynced += (stop - start) * proj.proj_dim * 2
                if unsynced >= _SYNC_BYTES or stop == n:
                    out.flush()
                    unsynced = 0
                meta["n_done"] = stop
                _write_meta(path, meta)
                bar.update(task, completed=stop)
                if on_chunk is not None:
                    on_chunk(stop)
    del out


def _record(workspace: Any, feature_set: FeatureSet) -> None:
    path, meta, ids = feature_set.path, dict(feature_set.meta), feature_set.row_ids
    key = feature_set.key
    if meta.get("ledger_index") is not None:
        raise StateError(f"feature set {key} was already recorded")
    base = int(ids.min()) if ids.size else 0
    ids_digest = workspace.ledger.put_blob(encode_positions(ids - base))
    payload = {
        "key": key,
        "model_digest": meta["model_digest"],
        "checkpoint": meta["checkpoint"],
        "projector": meta["projector"],
        "last_layer": meta["last_layer"],
        "n_samples": meta["n_samples"],
        "proj_dim": meta["proj_dim"],
        "param_dim": meta["param_dim"],
        "features_digest": file_digest(path / "features.f16"),
        "id_base": base,
    }
    meta["ledger_index"] = workspace.ledger.append("features.computed", payload, blobs=[ids_digest])
    meta["features_digest"] = payload["features_digest"]
    _write_meta(path, meta)
