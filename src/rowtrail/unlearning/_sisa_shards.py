"""Shard assignment and the training of one shard, for sharded (SISA) training.

**Assignment.** Sample ``i`` goes to shard ``int(HMAC-SHA256(key, label_i)[:8]) mod n_shards``
where ``label_i`` is the sample's subject pseudonym (``"ps:..."``) or, for a sample without a
subject, ``"row:<row id>"``, and ``key`` is derived from the run's seed. A subject therefore
touches exactly one shard, and a sample's shard depends on nothing but its own label: removing
samples moves no other sample to another shard.

**Slices.** Within its shard, a sample goes to slice ``HMAC-SHA256(key, "slice:" + label_i)
mod n_slices``, so a subject also touches one slice, and removing samples moves no other sample.

**One shard's training** (:func:`train_shard_run`) runs ``n_slices`` stages; stage ``s`` trains
on the samples of slices ``0..s`` (SISA's incremental slicing) and is a pure function of the
weights after stage ``s - 1``, those samples in ascending dataset position, the stage seed
(:func:`stage_seed`; stage 0's is the shard seed), the batch size and the torch thread count:

1. the global torch RNG is forked and seeded with the shard seed, then ``make_model()`` builds
   the model (its initial weights draw from that stream);
2. for each stage ``s``: the global RNG is seeded with the stage seed (dropout draws from it),
   the loader is ``DataLoader(samples of slices 0..s, batch_size, shuffle=True,
   generator=torch.Generator().manual_seed(stage seed))`` and ``train_shard(model, loader,
   run)`` is called (so an optimizer created inside it starts afresh at every stage);
3. all of it inside one recorded ``TrainingRun`` with ``torch.use_deterministic_algorithms(True)``
   and the recorded thread count; with several slices the weights after every stage are a
   recorded checkpoint.

So retraining a shard without some samples, from the checkpoint before the first stage that
used them, *is* training that shard from scratch on the retained samples: the same
computation, bit for bit on CPU (Bourtoule et al. 2021, "Machine Unlearning", IEEE S&P, §IV:
sharded, isolated, sliced, aggregated training).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from rowtrail._optional import require
from rowtrail._types import IdArray
from rowtrail.errors import InvalidInputError, StateError, UnknownSourceError
from rowtrail.ids import ROW_BITS
from rowtrail.lineage import get_source

if TYPE_CHECKING:
    from rowtrail.lineage import LineageWorkspace
    from rowtrail.training import TrainingRun

__all__ = [
    "ShardTraining",
    "TrainedShard",
    "assign_shards",
    "assign_slices",
    "check_counts",
    "check_known_rows",
    "default_to_proba",
    "put_assignment",
    "run_params",
    "shard_seed",
    "stage_seed",
    "subjects_of",
    "train_shard_run",
]

_KEY_DOMAIN = b"rowtrail.sisa.v1:"
_ROW_MASK = (1 << ROW_BITS) - 1


def _key(seed: int) -> bytes:
    return hashlib.sha256(_KEY_DOMAIN + str(int(seed)).encode()).digest()


def shard_seed(seed: int, shard: int) -> int:
    """Return the deterministic 63-bit seed of ``shard`` of a sharded run seeded with ``seed``."""
    digest = hmac.new(_key(seed), f"shard:{int(shard)}".encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def stage_seed(shard_seed: int, stage: int) -> int:
    """Return the seed of slice stage ``stage`` of a shard (stage 0: the shard seed itself)."""
    if stage == 0:
        return shard_seed
    digest = hmac.new(_key(shard_seed), f"stage:{int(stage)}".encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _keyed_buckets(
    row_ids: IdArray, subjects: Sequence[str | None], n: int, key: bytes, prefix: str
) -> IdArray:
    out = np.empty(len(row_ids), dtype=np.int64)
    cache: dict[str, int] = {}
    for i, (row, subject) in enumerate(zip(row_ids.tolist(), subjects, strict=True)):
        label = prefix + (subject if subject is not None else f"row:{row}")
        found = cache.get(label)
        if found is None:
            digest = hmac.new(key, label.encode(), hashlib.sha256).digest()
            found = cache[label] = int.from_bytes(digest[:8], "little") % n
        out[i] = found
    return out


def assign_shards(
    row_ids: IdArray, subjects: Sequence[str | None], *, n_shards: int, seed: int
) -> IdArray:
    """Return the shard of every sample: a keyed hash of its subject pseudonym, else its row id.

    Parameters
    ----------
    row_ids : ndarray of int64
        One row id per sample.
    subjects : sequence of str or None
        The subject pseudonym of every sample (``None``: the sample has no subject).
    n_shards : int
        Number of shards.
    seed : int
        Seed of the sharded run; it keys the hash.

    Returns
    -------
    ndarray of int64
        Shard index in ``[0, n_shards)`` per sample.
    """
    return _keyed_buckets(row_ids, subjects, n_shards, _key(seed), "")


def assign_slices(
    row_ids: IdArray, subjects: Sequence[str | None], *, n_slices: int, seed: int
) -> IdArray:
    """Return the slice of every sample, keyed like :func:`assign_shards` (domain ``slice:``)."""
    return _keyed_buckets(row_ids, subjects, n_slices, _key(seed), "slice:")


@dataclass(frozen=True)
class ShardTraining:
    """What determines the training of every shard of one sharded model (besides its samples).

    Attributes
    ----------
    name : str
        Name of the sharded model; shard ``k``'s runs are named ``"<name>/shard-<k>"``.
    make_model : callable
        ``make_model() -> torch.nn.Module``, called with the torch RNG seeded by the shard seed.
    train_shard : callable
        ``train_shard(model, loader, run)``: an ordinary PyTorch loop over ``run.track(loader)``.
    dataset : torch.utils.data.Dataset
        The map-style dataset all shards draw their samples from.
    batch_size : int
        Batch size of every shard's loader.
    n_threads : int
        ``torch.set_num_threads`` value every shard is trained (and retrained) with.
    to_proba : callable
        Maps a shard model's output tensor to probabilities (aggregated by their mean).
    n_slices : int
        Slice stages per shard (1: no slicing).
    """

    name: str
    make_model: Callable[[], Any]
    train_shard: Callable[[Any, Any, TrainingRun], Any]
    dataset: Any
    batch_size: int
    n_threads: int
    to_proba: Callable[[Any], Any]
    n_slices: int = 1


@dataclass(frozen=True)
class TrainedShard:
    """One trained shard: its samples, seed, recorded run and final weights.

    Attributes
    ----------
    index : int
        Shard number.
    seed : int
        Shard seed (model init, loader order, dropout).
    positions : ndarray of int64
        Dataset positions of the shard's samples, ascending.
    row_ids : ndarray of int64
        Row id of each of those samples.
    slices : ndarray of int64
        Slice of each of those samples.
    run_id : str
        The recorded training run that produced the weights.
    model_digest : str
        Digest of the final weights blob (``training.completed``'s model digest).
    model : torch.nn.Module
        The trained model (not modified after training).
    stage_states : tuple of dict
        Weights after each slice stage (empty without slicing): where a retraining resumes.
    stage_digests : tuple of str
        Digests of those weights, each a recorded ``training.checkpoint``.
    resumed_from : int
        First stage this shard's latest run trained (0: from scratch).
    """

    index: int
    seed: int
    positions: IdArray
    row_ids: IdArray
    slices: IdArray
    run_id: str
    model_digest: str
    model: Any
    stage_states: tuple[Any, ...] = ()
    stage_digests: tuple[str, ...] = ()
    resumed_from: int = 0


def _subset(torch: Any, dataset: Any, positions: IdArray, row_ids: IdArray) -> Any:
    """Return ``Subset(dataset, positions)`` whose ``row_ids`` attribute the run records."""
    subset = torch.utils.data.Subset(dataset, positions.tolist())
    # Subset has a __dict__, so the row ids ride along; TrainingRun.track reads them first.
    subset.row_ids = row_ids
    return subset


@contextmanager
def _deterministic(torch: Any, n_threads: int, seed: int) -> Iterator[None]:
    """Seed a forked global RNG, pin the thread count, require deterministic kernels."""
    threads = torch.get_num_threads()
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    try:
        torch.set_num_threads(n_threads)
        torch.use_deterministic_algorithms(True)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield
    finally:
        torch.use_deterministic_algorithms(was_deterministic)
        torch.set_num_threads(threads)


def train_shard_run(
    workspace: LineageWorkspace,
    spec: ShardTraining,
    index: int,
    seed: int,
    positions: IdArray,
    *,
    row_ids: IdArray,
    slices: IdArray,
    params: dict[str, Any],
    resume: TrainedShard | None = None,
    start: int = 0,
    initial_state: Any = None,
) -> TrainedShard:
    """Train one shard as its own recorded run: stages ``start..n_slices-1`` (see module doc).

    ``start > 0`` resumes from ``resume``'s weights after stage ``start - 1``;
    ``initial_state`` (a warm start, not exact) replaces the initial weights.
    Raises :class:`~rowtrail.errors.StateError` when ``train_shard`` drew no batch through
    ``run.track(loader)`` (the run would not record what the shard was trained on).
    """
    from rowtrail.training import TrainingRun, model_digest

    torch = require("torch", extra="torch", feature="train_sharded()")
    if positions.size == 0:
        raise InvalidInputError(
            f"shard {index} of train_sharded must hold at least one sample; got none. "
            "Use fewer shards or keep at least one sample per shard."
        )
    states = [] if resume is None else list(resume.stage_states[:start])
    digests = [] if resume is None else list(resume.stage_digests[:start])
    with _deterministic(torch, spec.n_threads, seed):
        model = spec.make_model()
        if start > 0:
            model.load_state_dict(states[-1])
        elif initial_state is not None:
            model.load_state_dict(initial_state)
        with TrainingRun(
            workspace, f"{spec.name}/shard-{index}", model=model, params=params
        ) as run:
            for stage in range(start, spec.n_slices):
                _train_stage(torch, spec, model, run, stage_seed(seed, stage),
                             positions[slices <= stage], row_ids[slices <= stage])
                if spec.n_slices > 1:
                    run.checkpoint(reason=f"slice stage {stage}")
                    states.append({k: v.clone() for k, v in model.state_dict().items()})
                    digests.append(run.checkpoints[-1]["model_digest"])
            run.flush(wait=True)
            if run.batches.get("train", 0) == 0:
                raise StateError(
                    f"train_shard of train_sharded drew no batch of shard {index} through "
                    "run.track(loader); iterate `for batch in run.track(loader):` so the "
                    "shard's training is recorded"
                )
    model.eval()
    return TrainedShard(index, seed, positions, row_ids, slices, run.run_id, model_digest(model),
                        model, tuple(states), tuple(digests), start)


def _train_stage(
    torch: Any, spec: ShardTraining, model: Any, run: Any, seed: int, positions: IdArray,
    row_ids: IdArray,
) -> None:
    """Run one slice stage: reseed, build its loader, call the user's loop (none if empty)."""
    if positions.size == 0:
        return  # no sample in slices 0..s yet: nothing to train (a sampler refuses n = 0)
    torch.manual_seed(seed)
    loader = torch.utils.data.DataLoader(
        _subset(torch, spec.dataset, positions, row_ids),
        batch_size=spec.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    spec.train_shard(model, loader, run)


def check_known_rows(workspace: LineageWorkspace, row_ids: IdArray, caller: str) -> None:
    """Raise :class:`UnknownSourceError` unless every id is a row of a registered source."""
    for source in np.unique(row_ids >> ROW_BITS).tolist():
        try:
            info = get_source(workspace, int(source))
        except UnknownSourceError as exc:
            bad = row_ids[(row_ids >> ROW_BITS) == source][:5].tolist()
            raise UnknownSourceError(
                f"row_ids of {caller} must be row ids of registered sources; got {bad!r} "
                f"of source index {source}, which the workspace does not know"
            ) from exc
        rows = row_ids[(row_ids >> ROW_BITS) == source] & _ROW_MASK
        if rows.size and int(rows.max()) >= info.n_rows:
            raise UnknownSourceError(
                f"row_ids of {caller} must name existing rows; got row {int(rows.max())} of "
                f"source {info.name!r}, which has {info.n_rows} rows"
            )


def subjects_of(
    workspace: LineageWorkspace, ids: IdArray, subjects: Sequence[str | None] | None
) -> list[str | None]:
    """Return the subject pseudonym (or None) of every sample, given or looked up by row id."""
    if subjects is None:
        found = workspace.lineage_store.subjects_of_rows(ids.tolist())
        return [found.get(r) for r in ids.tolist()]
    given: list[object] = list(subjects)
    if len(given) != ids.size:
        raise InvalidInputError(
            f"subjects of train_sharded must give one pseudonym (or None) per sample "
            f"({ids.size}); got {len(given)}"
        )
    for value in given:
        if value is not None and not (isinstance(value, str) and value.startswith("ps:")):
            raise InvalidInputError(
                f"subjects of train_sharded must be subject pseudonyms ('ps:...') or None; got "
                f"{value!r}. Pass ws.pseudonymize(identifier) instead of the raw identifier."
            )
    return [None if value is None else str(value) for value in given]


def default_to_proba(output: Any) -> Any:
    """Sigmoid of a single logit (P(y=1), shape ``(n,)``), else softmax over the last axis."""
    torch = require("torch", extra="torch", feature="ShardedModel.predict_proba()")
    if output.dim() == 1 or output.shape[-1] == 1:
        return torch.sigmoid(output.reshape(output.shape[0]))
    return torch.softmax(output, dim=-1)


def put_assignment(workspace: LineageWorkspace, shards: Sequence[TrainedShard]) -> str:
    """Store the assignment and return its digest.

    Three int64 little-endian arrays of one entry per sample, shard by shard: row ids, shard,
    slice.
    """
    ids = np.concatenate([s.row_ids for s in shards]).astype("<i8")
    which = np.concatenate([np.full(s.row_ids.size, s.index, dtype="<i8") for s in shards])
    stage = np.concatenate([s.slices for s in shards]).astype("<i8")
    digest: str = workspace.ledger.put_blob(ids.tobytes() + which.tobytes() + stage.tobytes())
    return digest


def run_params(
    sharded_id: str, spec: ShardTraining, k: int, seed: int, method: str | None
) -> dict[str, Any]:
    """Return the params recorded with shard ``k``'s run (``method``: why it was retrained)."""
    return {"sisa": {"sharded": sharded_id, "shard": k, "shard_seed": seed,
                     "batch_size": spec.batch_size, "torch_threads": spec.n_threads,
                     "retrain": method}}


def check_counts(n_shards: object, batch_size: object, seed: object, slices: object) -> None:
    """Raise :class:`InvalidInputError` unless the counts of ``train_sharded`` are valid."""
    for label, value, low in (("n_shards", n_shards, 1), ("batch_size", batch_size, 1),
                              ("seed", seed, 0), ("slices", slices, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InvalidInputError(
                f"{label} of train_sharded must be an int >= {low}; got {value!r}"
            )
