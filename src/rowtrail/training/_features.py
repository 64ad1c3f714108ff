"""Gradient features: projected per-sample gradients at a checkpoint, in a memory-mapped store.

Per-sample gradients come from ``torch.func`` (``vmap(grad(loss_of_one_sample))`` over
``functional_call``), optionally for the last parameterised layer only; a seeded
:mod:`projector <rowtrail.training._projection>` maps them to ``proj_dim`` dimensions.

A feature set lives in ``<workspace>/features/<key>/``::

    meta.json       key, model digest, checkpoint, projector spec, shapes, rows done so far
    row_ids.npy     the row id of every feature row (int64)
    features.f16    (n, proj_dim) float16, memory-mapped (TRAK: float16 on disk, float32 math)
    p_correct.f64   (n,) float64: the probability the model gives each sample's label (with the
                    default loss only), so that scorers get the residual ``1 - p`` and TRAK's
                    ``p(1-p)`` kernel weights from the set itself (Park et al. 2023, §3.2)

The key is derived from the model digest, checkpoint id, projector (kind, seed, proj_dim),
layer selection, loss and the row ids, so the same request finds the same set. Work is
written in chunks and ``meta.json`` is replaced atomically after each chunk: a killed
featurization resumes at the first unfinished chunk. The mapping is msync'ed every 64 MiB
and at the end, not per chunk: writes to a shared mapping survive a killed process, but
after an OS crash a partial set may hold zeros after its last msync, so delete it and
recompute.

When complete, a ``features.computed`` ledger event binds the set (DESIGN §7): its ``files``
field records the digest and size of *all three* files, and nothing is written to the directory
after it. :func:`open_feature_set` finds the latest such event for the key and checks every file
against it before reading anything (see :mod:`rowtrail.training._bound`, which also caches a
successful check per process); :func:`verify_feature_stores` re-hashes every store. A directory
with no binding event is a featurization that has not finished; only :func:`featurize` resumes
it. Looking the event up first makes :func:`featurize` idempotent: a crash after the event was
appended leads to no second event on resume.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from rowtrail._faults import crashpoint
from rowtrail._optional import require
from rowtrail.errors import FileIntegrityError, InvalidInputError, StateError, StorageError
from rowtrail.hashing import canonical_json, sha256_digest
from rowtrail.training._bound import (
    Binding,
    describe_files,
    latest_bindings,
    load_json_file,
    load_npy_file,
)
from rowtrail.training._codec import encode_positions
from rowtrail.training._grads import PerSampleGradients, model_digest
from rowtrail.training._projection import Projector, make_projector
from rowtrail.training._rows import dataset_row_ids

if TYPE_CHECKING:
    import torch

__all__ = [
    "FeatureSet",
    "featurize",
    "list_feature_sets",
    "open_feature_set",
    "verify_feature_stores",
]

_DTYPE = np.float16
_SYNC_BYTES = 64 << 20
_KIND = "features.computed"
#: The event an erasure appends after overwriting a subject's rows of a feature set.
REDACTED_KIND = "erasure.redacted"
_KEY = re.compile(r"^[0-9a-f]{24}$")
_FILES = ("features.f16", "meta.json", "row_ids.npy")
_P_CORRECT = "p_correct.f64"
_FIX = (
    "Delete the feature set's directory and run featurize() again to recompute and record it."
)


@dataclass
class FeatureSet:
    """A (possibly partial) set of projected gradient features."""

    key: str
    path: Path
    meta: dict[str, Any]
    row_ids: NDArray[np.int64]
    features: np.memmap[Any, np.dtype[np.float16]]
    p_correct_map: np.memmap[Any, np.dtype[np.float64]] | None = None

    @property
    def p_correct(self) -> NDArray[np.float64] | None:
        """Probability of each sample's label under the model, or ``None`` when not recorded.

        Recorded when the features use the default loss (binary or multi-class cross-entropy):
        the loss gradient stored in :attr:`features` is then ``-(1 - p) * grad(margin)``.
        Sets computed with a custom ``loss_fn``, or before this was recorded, have none.
        """
        if self.p_correct_map is None:
            return None
        return np.asarray(self.p_correct_map, dtype=np.float64)

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
    os.chmod(tmp, 0o600)
    os.replace(tmp, path / "meta.json")


def _bindings(workspace: Any, key: str | None = None) -> dict[str, Binding]:
    """Return the latest binding per key: ``features.computed`` or a later redaction.

    An erasure that redacts a subject's rows in place (``erasure.redacted``, see
    :mod:`rowtrail.training._redact`) binds the rewritten files and nothing else.
    """
    found = latest_bindings(workspace.ledger, _KIND, "key", fix=_FIX, value=key)
    for name, later in latest_bindings(
        workspace.ledger, REDACTED_KIND, "key", fix=_FIX, value=key
    ).items():
        if name in found and later.index > found[name].index:
            found[name] = later
    return found


def _binding(workspace: Any, key: str) -> Binding | None:
    return _bindings(workspace, key).get(key)


def open_feature_set(workspace: Any, key: str, *, partial: bool = False) -> FeatureSet:
    """Open a stored feature set by key (read-only memory map), checked against the ledger.

    Every file is compared with the digests of the latest ``features.computed`` event for
    ``key`` before it is read.

    Parameters
    ----------
    workspace : Workspace
        Holds the store under ``<workspace>/features/<key>/`` and the ledger.
    key : str
        The feature set's key (``FeatureSet.key``, see :func:`list_feature_sets`).
    partial : bool
        Also open a set that no event binds yet (a featurization that was interrupted), without
        any check: for inspecting progress, never as evidence.

    Raises
    ------
    FileIntegrityError
        A bound file is missing, truncated, extended or altered, or malformed.
    StateError
        The set has no ``features.computed`` event and ``partial`` is false.
    """
    if not _KEY.match(str(key)):
        raise InvalidInputError(
            f"key of open_feature_set must be a feature set key (24 hex digits); got {key!r}; "
            f"known: {list_feature_sets(workspace)}"
        )
    path = _root(workspace) / key
    binding = _binding(workspace, key)
    if binding is None:
        if not (path / "meta.json").exists():
            known = list_feature_sets(workspace)
            raise InvalidInputError(
                f"key of open_feature_set must name a stored feature set; got {key!r}; "
                f"known: {known}"
            )
        if not partial:
            raise StateError(
                f"feature set {key} in {path} has no features.computed event in the ledger, so "
                "no record binds its files; run featurize() again with the same inputs to finish "
                "and record it, or delete the directory."
            )
        return _read(path, key)
    keys = binding.check(path, _bound_names(binding))
    feature_set = _read(path, key)
    binding.still_same(path, keys)
    feature_set.meta.update(
        ledger_index=binding.index, features_digest=binding.payload.get("features_digest")
    )
    return feature_set


def _bound_names(binding: Binding) -> tuple[str, ...]:
    """Return the files a set's event binds: the three of every set, and p(correct) if any."""
    recorded = {f.name for f in binding.files or ()}
    return _FILES + ((_P_CORRECT,) if _P_CORRECT in recorded else ())


def _set_names(meta: dict[str, Any]) -> tuple[str, ...]:
    return _FILES + ((_P_CORRECT,) if meta.get("p_correct") else ())


def _read(path: Path, key: str) -> FeatureSet:
    meta_path, ids_path, features_path = (path / n for n in ("meta.json", "row_ids.npy",
                                                              "features.f16"))
    meta = load_json_file(meta_path)
    try:
        shape = (int(meta["n_samples"]), int(meta["proj_dim"]))
        int(meta["n_done"])
    except (KeyError, TypeError, ValueError) as exc:
        raise FileIntegrityError(
            f"{meta_path} must hold integer n_samples, proj_dim and n_done; {exc!r}. {_FIX}",
            path=str(meta_path),
        ) from exc
    row_ids = load_npy_file(ids_path)
    if row_ids.shape != shape[:1] or row_ids.dtype != np.int64:
        raise FileIntegrityError(
            f"{ids_path} must hold {shape[0]} int64 row ids; got {row_ids.dtype} of shape "
            f"{row_ids.shape}. {_FIX}",
            path=str(ids_path),
        )
    expected = shape[0] * shape[1] * np.dtype(_DTYPE).itemsize
    try:
        size = features_path.stat().st_size
        if size != expected:
            raise FileIntegrityError(
                f"{features_path} has {size} bytes; a {shape[0]}x{shape[1]} float16 matrix "
                f"needs {expected} (truncated or extended). {_FIX}",
                path=str(features_path),
            )
        features = np.memmap(features_path, dtype=_DTYPE, mode="r", shape=shape)
    except FileNotFoundError:
        raise FileIntegrityError(f"{features_path} is missing. {_FIX}",
                                 path=str(features_path)) from None
    except ValueError as exc:
        raise FileIntegrityError(f"{features_path} cannot be mapped: {exc}. {_FIX}",
                                 path=str(features_path)) from exc
    except OSError as exc:
        raise StorageError(f"cannot read {features_path}: {exc}") from exc
    p_correct = None
    if meta.get("p_correct"):
        p_path = path / _P_CORRECT
        try:
            if p_path.stat().st_size != shape[0] * 8:
                raise FileIntegrityError(
                    f"{p_path} must hold {shape[0]} float64 probabilities (truncated or "
                    f"extended). {_FIX}",
                    path=str(p_path),
                )
            p_correct = np.memmap(p_path, dtype=np.float64, mode="r", shape=(shape[0],))
        except FileNotFoundError:
            raise FileIntegrityError(f"{p_path} is missing. {_FIX}", path=str(p_path)) from None
        except ValueError as exc:
            raise FileIntegrityError(f"{p_path} cannot be mapped: {exc}. {_FIX}",
                                     path=str(p_path)) from exc
        except OSError as exc:
            raise StorageError(f"cannot read {p_path}: {exc}") from exc
    return FeatureSet(key, path, meta, row_ids.astype(np.int64, copy=False), features, p_correct)


def list_feature_sets(workspace: Any) -> list[str]:
    """Return the keys of every feature set stored in the workspace."""
    root = _root(workspace)
    if not root.exists():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "meta.json").exists())


def _create(path: Path, meta: dict[str, Any], row_ids: NDArray[np.int64]) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.mkdir(mode=0o700, exist_ok=True)
    np.save(path / "row_ids.npy", row_ids)
    shape = (int(meta["n_samples"]), int(meta["proj_dim"]))
    np.memmap(path / "features.f16", dtype=_DTYPE, mode="w+", shape=shape).flush()
    private = ["row_ids.npy", "features.f16"]
    if meta.get("p_correct"):
        np.memmap(path / _P_CORRECT, dtype=np.float64, mode="w+", shape=shape[:1]).flush()
        private.append(_P_CORRECT)
    _write_meta(path, meta)
    for name in private:
        os.chmod(path / name, 0o600)  # private like the rest of the workspace


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
                 "param_dim": grads.dim, "dtype": "float16", "n_done": 0,
                 "p_correct": loss_fn is None})
    path = _root(workspace) / key
    created = not (path / "meta.json").exists()
    if created:
        _create(path, meta, ids)
    elif _binding(workspace, key) is not None:
        # Already recorded (perhaps by a run that crashed right after appending the event):
        # check the files against that event instead of appending a second one.
        return open_feature_set(workspace, key)
    # Unbound work in progress (or just created): read without a binding to check against.
    feature_set = _read(path, key)
    if not feature_set.complete:
        _run_chunks(feature_set, dataset, grads, proj, batch_size, progress, on_chunk)
        feature_set = _read(path, key)
    bound = _binding(workspace, key)
    if bound is None or not _matches(bound, path):
        # A set recomputed from scratch after its directory was deleted may differ in the last
        # bits from the recorded one; the newest event binds it.
        _record(workspace, feature_set)
    crashpoint("featurize.after_event")
    return open_feature_set(workspace, key)


def _matches(binding: Binding, path: Path) -> bool:
    try:
        binding.check(path, _bound_names(binding))
    except FileIntegrityError:
        return False
    return True


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
    p_out = (np.memmap(path / _P_CORRECT, dtype=np.float64, mode="r+", shape=(n,))
             if meta.get("p_correct") else None)
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
                if p_out is not None:
                    p_out[start:stop] = grads.p_correct(inputs, targets)
                # Writes to a shared mapping survive a killed process (the page cache keeps
                # them), so the resume point advances every chunk; msync, which only matters
                # for an OS crash, runs every _SYNC_BYTES and at the end.
                unsynced += (stop - start) * proj.proj_dim * 2
                if unsynced >= _SYNC_BYTES or stop == n:
                    out.flush()
                    if p_out is not None:
                        p_out.flush()
                    unsynced = 0
                meta["n_done"] = stop
                _write_meta(path, meta)
                bar.update(task, completed=stop)
                if on_chunk is not None:
                    on_chunk(stop)
    del out, p_out


def _record(workspace: Any, feature_set: FeatureSet) -> int:
    """Append the ``features.computed`` event that binds every file of a complete set."""
    path, meta, ids = feature_set.path, feature_set.meta, feature_set.row_ids
    if not feature_set.complete:
        raise StateError(
            f"feature set {feature_set.key} has {feature_set.n_done} of {ids.size} rows; "
            "only a complete set is recorded. Run featurize() again to finish it."
        )
    base = int(ids.min()) if ids.size else 0
    ids_digest = workspace.ledger.put_blob(encode_positions(ids - base))
    files = describe_files(path, _set_names(meta))
    payload = {
        "key": feature_set.key,
        "model_digest": meta["model_digest"],
        "checkpoint": meta["checkpoint"],
        "projector": meta["projector"],
        "last_layer": meta["last_layer"],
        "n_samples": meta["n_samples"],
        "proj_dim": meta["proj_dim"],
        "param_dim": meta["param_dim"],
        "features_digest": files["features.f16"]["digest"],
        "p_correct": bool(meta.get("p_correct")),
        "files": files,
        "id_base": base,
    }
    # Nothing is written to the directory after this: the event binds the files as they are.
    index: int = workspace.ledger.append(_KIND, payload, blobs=[ids_digest])
    return index


def verify_feature_stores(workspace: Any) -> int:
    """Re-hash every gradient feature store against its latest ``features.computed`` event.

    Checks that every directory under ``<workspace>/features/`` is bound by an event, and that
    every file of every key's latest event exists and matches its recorded size and digest
    (never using the per-process cache). Called by ``Workspace.verify``.

    Parameters
    ----------
    workspace : Workspace
        The workspace whose feature stores are checked.

    Returns
    -------
    int
        The number of files checked.

    Raises
    ------
    FileIntegrityError
        On the first unbound directory or missing, truncated, extended or altered file.
    """
    bindings = _bindings(workspace)
    root = _root(workspace)
    present = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    for name in present:
        if name not in bindings:
            path = root / name
            raise FileIntegrityError(
                f"{path} holds a feature store that no features.computed event binds (an "
                "interrupted featurization, or files placed there by hand); run featurize() "
                "again with the same inputs to finish and record it, or delete the directory.",
                path=str(path),
            )
    n_files = 0
    for key, binding in sorted(bindings.items()):
        if not _KEY.match(key):
            raise FileIntegrityError(
                f"ledger event {binding.index} ({_KIND}) names feature set {key!r}, which is not "
                "a valid key; no directory can be checked for it.",
                path=str(root),
            )
        path = root / key
        keys = binding.check(path, _bound_names(binding), use_cache=False)
        _read(path, key)
        binding.still_same(path, keys)
        n_files += len(keys)
    return n_files
